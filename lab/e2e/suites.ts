// Which upstream specs the runner selects (ginkgo --focus/--skip are Go
// regular expressions over a spec's full text). docs/e2e.md says why each
// [sig-network] [Conformance] spec outside these is not run.

/** A spec's exact name as a regular expression (RE2 escapes; `^`/`$` are not added: ginkgo matches anywhere). */
export const exactly = (name: string) => name.replace(/[\\^$.|?*+()[\]{}]/g, (c) => `\\${c}`);

/** The Pod-network conformance specs: Pod↔Pod and node→Pod over HTTP and UDP. */
export const GRANULAR_PODS = String.raw`\[sig-network\] Networking Granular Checks: Pods should function for .* \[Conformance\]`;
/** hostPort through the conflist's portmap: same port, different hostIP/protocol. */
export const HOSTPORT = String.raw`\[sig-network\] HostPort validates that there is no conflict between pods with same hostPort`;
/** Every [sig-network] conformance spec (Services, DNS, EndpointSlices, Proxy, the API specs, the two above). */
export const NETWORK_CONFORMANCE = String.raw`\[sig-network\].*\[Conformance\]`;
/** Upstream's NetworkPolicy suite (test/e2e/network/netpol). */
export const NETPOL = String.raw`\[sig-network\] Netpol `;

/** What `npm run e2e` runs without --focus: the network conformance specs and the NetworkPolicy suite. */
export const DEFAULT_FOCUS = [NETWORK_CONFORMANCE, NETPOL].join("|");

/** Never selectable here: this kernel has no SCTP sockets (the 3 SCTPConnectivity netpol specs, SCTP hostPort/Service specs). */
export const DEFAULT_SKIP = String.raw`SCTP`;

const NP = "[sig-network] Netpol NetworkPolicy between server and client";
const NP_UDP = "[sig-network] Netpol [LinuxOnly] NetworkPolicy between server and client using UDP";

/** Ten NetworkPolicy specs for CI: default deny both ways, pod/namespace selectors, ports, CIDR blocks, UDP, updates. */
export const NETPOL_CI = [
  `${NP} should support a 'default-deny-ingress' policy [Feature:NetworkPolicy]`,
  `${NP} should support a 'default-deny-all' policy [Feature:NetworkPolicy]`,
  `${NP} should enforce policy to allow traffic from pods within server namespace based on PodSelector [Feature:NetworkPolicy]`,
  `${NP} should enforce policy based on NamespaceSelector with MatchExpressions [Feature:NetworkPolicy]`,
  `${NP} should enforce policy based on Ports [Feature:NetworkPolicy]`,
  `${NP} should allow ingress access on one named port [Feature:NetworkPolicy]`,
  `${NP} should deny egress from all pods in a namespace [Feature:NetworkPolicy]`,
  `${NP} should enforce except clause while egress access to server in CIDR block [Feature:NetworkPolicy]`,
  `${NP} should stop enforcing policies after they are deleted [Feature:NetworkPolicy]`,
  `${NP_UDP} should support a 'default-deny-ingress' policy [Feature:NetworkPolicy]`,
];

/** The CI subset (test/e2e/upstream.test.ts): the Pod-network checks, HostPort, ten NetworkPolicy specs. */
export const CI_FOCUS = [GRANULAR_PODS, HOSTPORT, ...NETPOL_CI.map(exactly)].join("|");
/** 4 Granular Checks: Pods + 1 HostPort + the NetworkPolicy ten: exactly this many must run. */
export const CI_EXPECTED = 4 + 1 + NETPOL_CI.length;
