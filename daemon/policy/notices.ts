import type { V1Pod } from "@kubernetes/client-node";
import { cidrContains, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import type { AddNotice, Notice, NoticeReply } from "../../lib/pod-notice.ts";

// Pod addresses the CNI plugin told this daemon before kubelet wrote them to
// the Pod's status (lib/pod-notice.ts). kubelet writes podIPs only once the
// pod's containers have started, at about the moment it reports the pod
// Ready; a daemon that waited for the status left Ready pods fail-closed for
// tens to hundreds of milliseconds (bench:pods). With the notice, the
// controller programs the pod's elements and its `ready` element while ADD
// is still running, and answers the plugin once they are in the kernel.
//
// Only this node's tables use notice addresses. Other nodes learn the pod's
// address from its status as before, so a policy on another node that names
// this pod as a peer admits it only once the status is written: that is
// traffic the pod sends or receives across nodes, later than Ready by the
// status → kernel time there. The local isolation is what Ready must not
// outrun, and it is what the handshake covers.
//
// The status wins: once the Pod's status has addresses, the notice is
// dropped (and a notice that disagrees with a status already written is
// refused). A notice for a pod the watch has not delivered yet is held until
// it does, or until the plugin's wait is nearly over (UNKNOWN_POD).

interface Waiter {
  notice: AddNotice;
  t0: number;
  /** Accepted: its addresses are in `accepted`; the reply waits for an apply that holds them. */
  accepted: boolean;
  resolve: (r: NoticeReply) => void;
  timer: NodeJS.Timeout;
}

const ipsOf = (p: V1Pod): string[] => (p.status?.podIPs?.length ? p.status.podIPs.map((x) => x.ip) : p.status?.podIP ? [p.status.podIP] : []);
const canonical = (ip: string): string => {
  try {
    return parseIp(ip).value.toString() + (ip.includes(":") ? "/6" : "/4");
  } catch {
    return ip;
  }
};
const sameIps = (a: string[], b: string[]): boolean => a.length === b.length && a.map(canonical).sort().join() === b.map(canonical).sort().join();

export class PodNotices {
  /** uid → the notice whose addresses stand in for the pod's status. */
  private readonly accepted = new Map<string, AddNotice>();
  private waiters: Waiter[] = [];
  /** pod object from the watch → its copy with the notice's addresses (stable, so unchanged pods compare equal). */
  private copies = new WeakMap<V1Pod, { notice: AddNotice; pod: V1Pod }>();
  /** Moves whenever `accepted` does: part of the controller's "did inputs change" key. */
  revision = 0;

  private readonly nodeName: string;
  private readonly changed: () => void;

  constructor(nodeName: string, changed: () => void) {
    this.nodeName = nodeName;
    this.changed = changed;
  }

  /** Handles one notice; the promise settles when the reply is due (the controller's next applies decide). */
  handle(n: Notice, waitMs: number): Promise<NoticeReply> {
    // A failed ADD allocated nothing that policy holds (its metrics are the observer's, daemon/health/cni.ts).
    if (n.op === "failed") return Promise.resolve({ ok: true, noted: true });
    if (n.op === "del") {
      const had = this.accepted.get(n.pod.uid);
      // A secondary attachment's DEL (another ifname) leaves the pod's notice alone.
      if (had && had.containerId === n.containerId && (n.ifname === undefined || n.ifname === had.ifname)) {
        this.accepted.delete(n.pod.uid);
        this.revision++;
        this.changed();
      }
      for (const w of this.waiters.filter((x) => x.notice.pod.uid === n.pod.uid && x.notice.containerId === n.containerId)) {
        this.settle(w, { ok: false, code: "NOT_PROGRAMMED", message: "the pod's sandbox was deleted before its policy was programmed" });
      }
      return Promise.resolve({ ok: true, forgotten: true });
    }
    return new Promise((resolve) => {
      const w: Waiter = { notice: n, t0: performance.now(), accepted: false, resolve, timer: setTimeout(() => this.expire(w), waitMs) };
      this.waiters.push(w);
      this.changed();
    });
  }

  private expire(w: Waiter): void {
    this.settle(
      w,
      w.accepted
        ? { ok: false, code: "NOT_PROGRAMMED", message: "the daemon has not programmed the pod's policy yet; fail-closed keeps the pod isolated until it does" }
        : { ok: false, code: "UNKNOWN_POD", message: `pod ${w.notice.pod.namespace}/${w.notice.pod.name} (uid ${w.notice.pod.uid}) is not in the daemon's pod watch yet; its policy follows the Pod's status` },
    );
  }

  private settle(w: Waiter, r: NoticeReply): void {
    clearTimeout(w.timer);
    this.waiters = this.waiters.filter((x) => x !== w);
    w.resolve(r);
  }

  /**
   * The pods as the controller compiles them: a pod this node holds a notice
   * for, with no addresses in its status yet, gets the notice's. Waiting
   * notices whose pod has arrived are checked and accepted or refused here.
   */
  view(pods: V1Pod[], podCidrs: string[]): V1Pod[] {
    if (this.waiters.some((w) => !w.accepted)) this.admit(pods, podCidrs);
    if (this.accepted.size === 0) return pods;
    const seen = new Set<string>();
    const out = pods.map((p) => {
      const uid = p.metadata?.uid;
      const n = uid ? this.accepted.get(uid) : undefined;
      if (!n) return p;
      seen.add(uid!);
      if (ipsOf(p).length > 0) {
        // The status has spoken: it wins from here on.
        this.accepted.delete(uid!);
        this.revision++;
        return p;
      }
      const c = this.copies.get(p);
      if (c?.notice === n) return c.pod;
      const v4 = n.ips.find((ip) => !ip.includes(":"));
      const pod: V1Pod = { ...p, status: { ...p.status, ...(v4 ? { podIP: v4 } : { podIP: n.ips[0] }), podIPs: n.ips.map((ip) => ({ ip })) } };
      this.copies.set(p, { notice: n, pod });
      return pod;
    });
    // The pod is gone from the apiserver: so is its notice.
    for (const uid of [...this.accepted.keys()]) {
      if (!seen.has(uid) && !this.waiters.some((w) => w.notice.pod.uid === uid)) {
        this.accepted.delete(uid);
        this.revision++;
      }
    }
    return out;
  }

  private admit(pods: V1Pod[], podCidrs: string[]): void {
    const byUid = new Map<string, V1Pod>();
    const wanted = new Set(this.waiters.filter((w) => !w.accepted).map((w) => w.notice.pod.uid));
    for (const p of pods) if (p.metadata?.uid && wanted.has(p.metadata.uid)) byUid.set(p.metadata.uid, p);
    const cidrs = podCidrs.map(parseCidr);
    for (const w of this.waiters.filter((x) => !x.accepted)) {
      const n = w.notice;
      const p = byUid.get(n.pod.uid);
      if (!p || !p.spec?.nodeName) continue;
      const refuse = (code: "NOTICE_INVALID" | "POD_NOT_ON_NODE" | "STATUS_DIFFERS" | "ADDRESS_OUTSIDE_POD_CIDR", message: string) => this.settle(w, { ok: false, code, message });
      if (p.metadata?.namespace !== n.pod.namespace || p.metadata?.name !== n.pod.name) {
        refuse("NOTICE_INVALID", `uid ${n.pod.uid} is pod ${p.metadata?.namespace}/${p.metadata?.name}, not ${n.pod.namespace}/${n.pod.name}`);
        continue;
      }
      if (p.spec.nodeName !== this.nodeName) {
        refuse("POD_NOT_ON_NODE", `pod ${n.pod.namespace}/${n.pod.name} is scheduled on ${p.spec.nodeName}, not on ${this.nodeName}`);
        continue;
      }
      const outside = n.ips.find((ip) => {
        const a = parseIp(ip);
        return !cidrs.some((c) => c.family === a.family && cidrContains(c, a.family, a.value));
      });
      if (outside) {
        refuse("ADDRESS_OUTSIDE_POD_CIDR", `address ${outside} is not in this node's pod CIDRs (${podCidrs.join(", ") || "none assigned yet"})`);
        continue;
      }
      const status = ipsOf(p);
      if (status.length > 0 && !sameIps(status, n.ips)) {
        refuse("STATUS_DIFFERS", `the Pod's status already gives ${status.join(", ")}; the status wins`);
        continue;
      }
      w.accepted = true;
      if (status.length === 0) {
        // A newer sandbox of the same pod replaces the older one's addresses.
        this.accepted.set(n.pod.uid, n);
        this.revision++;
      }
    }
  }

  /** After an apply: every accepted notice whose addresses are all in `programmed` (this node's `ready` addresses) is answered. */
  programmed(programmed: Set<string>): void {
    const accepted = this.waiters.filter((x) => x.accepted);
    if (accepted.length === 0) return;
    // Canonical: the status may spell an IPv6 address differently from the notice.
    const have = new Set([...programmed].map(canonical));
    for (const w of accepted) {
      if (w.notice.ips.every((ip) => have.has(canonical(ip)))) this.settle(w, { ok: true, programmed: true, ms: +(performance.now() - w.t0).toFixed(1) });
    }
  }

  /** Answers everyone still waiting (the daemon is stopping). */
  close(): void {
    for (const w of [...this.waiters]) this.settle(w, { ok: false, code: "NOT_PROGRAMMED", message: "the daemon is stopping" });
  }

  pending(): number {
    return this.waiters.length;
  }
}
