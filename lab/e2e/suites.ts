// Which upstream specs the runner selects (ginkgo --focus/--skip are Go
// regular expressions over a spec's full text). docs/e2e.md says why each
// [sig-network] [Conformance] spec outside these is not run.

/** The Pod-network conformance specs: Pod↔Pod and node→Pod over HTTP and UDP, within and across nodes. */
export const GRANULAR_PODS = String.raw`\[sig-network\] Networking Granular Checks: Pods should function for .* \[Conformance\]`;
/** hostPort through the conflist's portmap: same port, different hostIP/protocol. */
export const HOSTPORT = String.raw`\[sig-network\] HostPort validates that there is no conflict between pods with same hostPort`;

/** What `npm run e2e` runs without --focus: every target that works in the lab today. */
export const DEFAULT_FOCUS = [GRANULAR_PODS, HOSTPORT].join("|");

/** Never selectable here: this kernel has no SCTP sockets. */
export const DEFAULT_SKIP = String.raw`SCTP`;

/** The CI subset (test/e2e/upstream.test.ts): its focus and the number of specs it must run. */
export const CI_FOCUS = DEFAULT_FOCUS;
export const CI_EXPECTED = 5;
