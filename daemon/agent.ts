import { readFileSync, writeFileSync } from "node:fs";
import type { KubeConfig } from "@kubernetes/client-node";
import { TwillError } from "../lib/errors.ts";
import type { Logger } from "../lib/log.ts";
import { cidrWithin, parseCidr } from "../lib/net/cidr.ts";
import { readNodeFile, writeNodeFile, type NodeFile } from "../lib/node-file.ts";
import type { Backend, LocalNode } from "./backends/backend.ts";
import { publishAnnotations } from "./cluster/self.ts";
import { withoutCidrConflicts } from "./cluster/cidr-conflicts.ts";
import { LeftOutLog } from "./cluster/left-out.ts";
import { buildView } from "./cluster/view.ts";
import type { NodeWatch } from "./cluster/watch.ts";
import type { DaemonConfig, NodeSettings } from "./config.ts";
import type { DaemonEvents } from "./cluster/events.ts";
import type { DesiredState } from "./kernel/desired.ts";
import type { WireguardEncryption } from "./encryption/wireguard.ts";
import type { Metrics } from "./health/metrics.ts";
import { reconcileMasquerade } from "./kernel/masquerade.ts";
import { reconcile, totalChanges } from "./kernel/reconcile.ts";
import { findUnderlay, podGsoSizes } from "./kernel/underlay.ts";

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/**
 * Turns IPv4 forwarding on when it is off. Written only when needed: in the
 * DaemonSet's container /proc/sys is read-only (not privileged), and on a
 * node where forwarding is already on nothing needs writing.
 */
function ensureForwarding(): void {
  if (readFileSync(IP_FORWARD, "utf8").trim() === "1") return;
  try {
    writeFileSync(IP_FORWARD, "1");
  } catch (err) {
    throw new TwillError("IP_FORWARD", "IPv4 forwarding is off and /proc/sys is read-only here: turn on net.ipv4.ip_forward on the node (sysctl) or run the daemon with a writable /proc/sys", String(err));
  }
}

// The node daemon's loop: cluster view → desired state (the backend) → the
// kernel (reconcile), on every change and every resync period. It never names
// a backend. The node file the CNI plugin reads is written only once the
// dataplane is programmed, so the plugin never starts pods on a node that
// cannot reach the others.

/** A node whose pod CIDR lies outside the configured cluster CIDR means the config is wrong: touch nothing. */
function checkPodCidrs(clusterCIDR: string, podCIDRs: string[]): void {
  const cluster = parseCidr(clusterCIDR);
  for (const c of podCIDRs) {
    const pod = parseCidr(c);
    if (pod.family === cluster.family && !cidrWithin(pod, cluster)) {
      throw new TwillError("CONFIG_INVALID", `clusterCIDR ${clusterCIDR} does not contain this node's pod CIDR ${c}: fix clusterCIDR in the twill-config ConfigMap (it must match kube-controller-manager's --cluster-cidr)`);
    }
  }
}

export interface AgentDeps {
  cfg: DaemonConfig;
  node: NodeSettings;
  kc: KubeConfig;
  backend: Backend;
  watch: NodeWatch;
  log: Logger;
  metrics: Metrics;
  /** Kubernetes Events for what an operator must act on (a node left out). */
  events?: DaemonEvents;
  /** The pod notice socket (relative to the node file), advertised in the node file when served. */
  daemonSocket?: string;
  /** encryption: wireguard — wraps the backend's desired state (docs/encryption.md). */
  encryption?: WireguardEncryption;
}

/** What the last successful pass programmed, for the operator API (daemon/api). */
export interface PassSnapshot {
  desired: DesiredState;
  mtu: number;
  podCIDRs: string[];
  leftOut: { node: string; code: string; reason: string }[];
  /** The peers this pass connected: name, underlay address, pod CIDRs. */
  peers: { name: string; ip: string; podCIDRs: string[] }[];
}

export class Agent {
  private readonly d: AgentDeps;
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private lastTick = Date.now();
  private lastOk = 0;
  private nodeFileWritten = false;
  private prepared = false;
  private lastError = "";
  /** The next pass re-reads what event passes take from memory (underlay, masquerade table): set by the resync timer. */
  private verify = true;
  private underlay: LocalNode["underlay"] | undefined;
  private readonly leftOut = new LeftOutLog();
  private lastPass: PassSnapshot | undefined;

  constructor(deps: AgentDeps) {
    this.d = deps;
  }

  start(): void {
    this.d.watch.onChange(() => this.kick());
    this.d.backend.watch?.(() => this.kick());
    this.timer = setInterval(() => {
      this.verify = true;
      this.kick();
    }, this.d.node.resyncSeconds * 1000);
    this.kick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.d.watch.stop();
  }

  live(): boolean {
    return Date.now() - this.lastTick < Math.max(60_000, this.d.node.resyncSeconds * 3000);
  }

  ready(): boolean {
    return this.nodeFileWritten && Date.now() - this.lastOk < Math.max(60_000, this.d.node.resyncSeconds * 3000);
  }

  /** The last successful pass, its time (0: none yet) and the last error ("" after a success). */
  snapshot(): { pass: PassSnapshot | undefined; lastOk: number; lastError: string } {
    return { pass: this.lastPass, lastOk: this.lastOk, lastError: this.lastError };
  }

  /** Runs a reconcile now, or right after the one in progress. */
  kick(): void {
    this.lastTick = Date.now();
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.reconcileOnce()
      .catch((err: unknown) => {
        // After a failure the next pass trusts nothing from memory.
        this.verify = true;
        this.d.metrics.reconcileErrors.inc({ controller: "dataplane" });
        const msg = (err as Error).message;
        const details = (err as { details?: string }).details;
        // Log a failure once, not every resync.
        if (msg !== this.lastError) this.d.log.error({ code: (err as { code?: string }).code, details }, msg);
        this.lastError = msg;
      })
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async reconcileOnce(): Promise<void> {
    const { cfg, node, backend, log, metrics } = this.d;
    if (!this.d.watch.synced()) return;
    const t0 = performance.now();
    const view = buildView(this.d.watch.list());
    const self = view.nodes.get(node.nodeName);
    if (!self) {
      metrics.nodesSkipped.set(view.skipped.size);
      const why = view.skipped.get(node.nodeName)?.reason ?? `node ${node.nodeName} is not registered`;
      throw Object.assign(new Error(`waiting for this node: ${why}`), { code: "NODE_NOT_READY" });
    }
    checkPodCidrs(cfg.clusterCIDR, self.podCIDRs);
    // Each `ip` a pass spawns costs 20–50 ms here, so a pass woken by a
    // cluster event (a node joining) takes the underlay and the masquerade
    // table as the last verifying pass found them; the resync timer's passes
    // read both again, so drift still heals within one resync period.
    const verify = this.verify;
    this.verify = false;
    if (verify || this.underlay?.address !== self.ip) this.underlay = await findUnderlay(self.ip);
    const local: LocalNode = { info: self, underlay: this.underlay };
    if (!this.prepared) {
      const annotations = await backend.prepare(local);
      if (await publishAnnotations(this.d.kc, self, annotations)) log.info({ annotations }, "published this node's annotations");
      this.prepared = true;
    }
    const enc = this.d.encryption;
    const plainMtu = cfg.mtu || local.underlay.mtu - backend.overhead;
    const podMtu = enc ? enc.podMtu(plainMtu, local) : plainMtu;
    const usable = withoutCidrConflicts(view, self.name);
    const plain = backend.desired(usable.view, local, podMtu);
    // With encryption, peers' pod CIDRs go into the WireGuard device (or a blackhole) instead.
    const encrypted = enc ? await enc.apply(plain, usable.view, local, verify) : undefined;
    const desired = encrypted?.state ?? plain;
    const leftOut = new Map(view.skipped);
    for (const p of [...usable.leftOut, ...desired.leftOut]) leftOut.set(p.node, { code: p.code, reason: p.reason });
    this.leftOut.update(leftOut, log, (n, why) => this.d.events?.nodeLeftOut(n, why.code, why.reason));
    metrics.nodesSkipped.set(leftOut.size);
    metrics.watched.set({ resource: "nodes" }, view.nodes.size + view.skipped.size);
    const changes = await reconcile(desired);
    const tunnels = desired.links.map((l) => ({ address: l.local, port: l.port }));
    const masq = await reconcileMasquerade(cfg.masquerade, [cfg.clusterCIDR], tunnels, !verify);
    const guard = enc ? await enc.reconcileGuard(cfg.clusterCIDR, local, !verify) : 0;
    ensureForwarding();
    if (encrypted?.changes) metrics.kernelChanges.inc({ kind: "wireguard" }, encrypted.changes);
    if (encrypted) metrics.programmed.set({ kind: "wireguard_peers" }, encrypted.peers);
    if (guard) metrics.kernelChanges.inc({ kind: "nft" }, guard);
    for (const [kind, n] of Object.entries(changes)) if (n) metrics.kernelChanges.inc({ kind }, n);
    if (masq) metrics.kernelChanges.inc({ kind: "nft" }, masq);
    metrics.programmed.set({ kind: "routes" }, desired.routes.length);
    metrics.programmed.set({ kind: "neighbours" }, desired.neighbours.length);
    metrics.programmed.set({ kind: "fdb" }, desired.fdb.length);
    const gso = cfg.bigTcp ? podGsoSizes(local.underlay.limits, backend.overhead > 0) : undefined;
    this.writeNodeFile({ version: 1, nodeName: self.name, podCIDRs: self.podCIDRs, mtu: podMtu, clusterCIDRs: [cfg.clusterCIDR], ...(gso ? { gso } : {}), ...(this.d.daemonSocket ? { daemonSocket: this.d.daemonSocket } : {}) });
    const seconds = (performance.now() - t0) / 1000;
    metrics.reconcileDuration.observe({ controller: "dataplane" }, seconds);
    metrics.lastSync.set(Date.now() / 1000);
    this.lastOk = Date.now();
    this.lastPass = { desired, mtu: podMtu, podCIDRs: self.podCIDRs, leftOut: [...leftOut].map(([n, l]) => ({ node: n, code: l.code, reason: l.reason })), peers: [...usable.view.nodes.values()].filter((n) => n.name !== self.name && !leftOut.has(n.name)).map((n) => ({ name: n.name, ip: n.ip, podCIDRs: n.podCIDRs })) };
    if (this.lastError) log.info({}, "reconcile succeeded again");
    this.lastError = "";
    const wg = (encrypted?.changes ?? 0) + guard;
    if (totalChanges(changes) + masq + wg > 0) {
      log.info({ changes, masquerade: masq, ...(enc ? { wireguard: wg } : {}), peers: view.nodes.size - 1, ms: Math.round(seconds * 1000) }, "dataplane reconciled");
    }
  }

  private writeNodeFile(want: NodeFile): void {
    const have = readNodeFile(this.d.node.nodeFile);
    if (!have || JSON.stringify(have) !== JSON.stringify(want)) {
      writeNodeFile(want, this.d.node.nodeFile);
      this.d.log.info({ path: this.d.node.nodeFile, mtu: want.mtu, podCIDRs: want.podCIDRs, ...(want.gso ? { gso: want.gso } : {}) }, "node file written");
    }
    this.nodeFileWritten = true;
  }
}
