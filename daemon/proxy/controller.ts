import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import type { Metrics } from "../health/metrics.ts";
import type { ResourceWatch } from "../cluster/resource-watch.ts";
import { PolicyTable } from "../policy/nft.ts";
import { compilePort, describeProxy, type Fragment } from "./compile.ts";
import { ConntrackFlusher, type Flush } from "./conntrack.ts";
import { HealthCheckServers, type HealthCheckService } from "./health-check.ts";
import { isInvalid, planService, serviceKey, SLICE_SERVICE_NAME, type Endpoint, type ServicePort } from "./model.ts";
import { chooseEndpoints, type Chosen, type ThisNode } from "./select.ts";
import type { ProxyWatches } from "./watches.ts";

// The service proxy's loop. Watches feed it; it finds which Services changed
// (a watch keeps an unchanged object's identity, so a changed one is a new
// object), re-plans only those, and applies the table's difference as one
// small nft transaction (the policy table's machinery: a persistent nft
// session, atomic diffs, a whole replace on start or after a failure). Every
// resync it compares the kernel's table with what it programmed and replaces
// it whole on any drift (someone flushed a chain, deleted an element).

export interface ProxyDeps {
  nodeName: string;
  watches: ProxyWatches;
  nodes: ResourceWatch<V1Node>;
  clusterCIDR: string;
  log: Logger;
  resyncSeconds: number;
  /** Network namespace to program (tests); default the daemon's own. */
  netns?: string;
  /** Serve healthCheckNodePorts and :10256/healthz on this node (off in tests that run several proxies in one process). */
  serveHealth?: boolean;
  /** Told the Service /32s this node should originate whenever they change (the bgp backend announces them). */
  onAdvertise?: (prefixes: string[]) => void;
  /** The daemon's metrics (apply duration, programmed and invalid Service ports). */
  metrics?: Pick<Metrics, "proxyApply" | "proxyServices">;
  /** Told after every apply (the bench measures event → kernel). */
  onApplied?: (r: { commands: number; mode: string; ms: number; changed: number }) => void;
}

interface Planned {
  svc: V1Service;
  slices: V1EndpointSlice[];
  ports: { port: ServicePort; chosen: Chosen; fragment: Fragment }[];
  error?: string;
}

const sliceService = (s: V1EndpointSlice) => serviceKey(s.metadata?.namespace ?? "", s.metadata?.labels?.[SLICE_SERVICE_NAME] ?? "");

export class ServiceProxy {
  private readonly d: ProxyDeps;
  private readonly table: PolicyTable;
  private readonly conntrack: ConntrackFlusher;
  private readonly health: HealthCheckServers;
  private readonly planned = new Map<string, Planned>();
  private seenServices = new Map<string, V1Service>();
  private seenSlices = new Map<string, V1EndpointSlice[]>();
  private node: ThisNode & { ips: string[] } = { name: "", ips: [] };
  private running = false;
  private again = false;
  private verifyDue = false;
  private resyncs = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastError = "";
  invalid = new Map<string, string>();

  constructor(deps: ProxyDeps) {
    this.d = deps;
    this.table = new PolicyTable(deps.netns, "service proxy");
    this.conntrack = new ConntrackFlusher(deps.log);
    this.health = new HealthCheckServers(deps.log);
  }

  start(): void {
    const kick = () => this.kick();
    this.d.watches.services.onChange(kick);
    this.d.watches.slices.onChange(kick);
    this.d.nodes.onChange(kick);
    // Every third resync reads the kernel's table back (listing 10,000 Services' chains and map costs about a
    // second of nft's CPU; kube-proxy never looks): drift heals within three resync periods.
    this.timer = setInterval(() => {
      if (++this.resyncs % 3 === 0) this.verifyDue = true;
      this.kick();
    }, this.d.resyncSeconds * 1000);
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.d.watches.services.stop();
    this.d.watches.slices.stop();
    this.health.close();
    this.table.close();
  }

  /** True once the table has been programmed from synced watches. */
  programmed(): boolean {
    return this.table.current() !== undefined;
  }

  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.pass()
      .catch((err: unknown) => {
        const msg = (err as Error).message;
        if (msg !== this.lastError) this.d.log.error({ code: (err as { code?: string }).code ?? "PROXY_FAILED", details: (err as { details?: string }).details }, msg);
        this.lastError = msg;
        this.table.forget();
      })
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private readNode(): boolean {
    const self = this.d.nodes.list().find((n) => n.metadata?.name === this.d.nodeName);
    const ips = (self?.status?.addresses ?? []).filter((a) => (a.type === "InternalIP" || a.type === "ExternalIP") && /^\d+\.\d+\.\d+\.\d+$/.test(a.address)).map((a) => a.address);
    const zone = self?.metadata?.labels?.["topology.kubernetes.io/zone"];
    const next = { name: this.d.nodeName, ips: [...new Set(ips)].sort(), ...(zone ? { zone } : {}) };
    const changed = JSON.stringify(next) !== JSON.stringify(this.node);
    this.node = next;
    return changed;
  }

  /** Service keys whose Service or slices changed since the last pass. */
  private changedKeys(): Set<string> {
    const changed = new Set<string>();
    const services = new Map<string, V1Service>();
    for (const s of this.d.watches.services.list()) services.set(serviceKey(s.metadata?.namespace ?? "", s.metadata?.name ?? ""), s);
    for (const [k, s] of services) if (this.seenServices.get(k) !== s) changed.add(k);
    for (const k of this.seenServices.keys()) if (!services.has(k)) changed.add(k);
    const slices = new Map<string, V1EndpointSlice[]>();
    for (const s of this.d.watches.slices.list()) {
      const k = sliceService(s);
      const l = slices.get(k);
      if (l) l.push(s);
      else slices.set(k, [s]);
    }
    for (const [k, l] of slices) {
      const old = this.seenSlices.get(k);
      if (!old || old.length !== l.length || l.some((s, i) => s !== old[i])) changed.add(k);
    }
    for (const k of this.seenSlices.keys()) if (!slices.has(k)) changed.add(k);
    this.seenServices = services;
    this.seenSlices = slices;
    return changed;
  }

  private plan(key: string, flushes: Flush[]): void {
    const svc = this.seenServices.get(key);
    const slices = this.seenSlices.get(key) ?? [];
    const before = this.planned.get(key);
    this.planned.delete(key);
    this.invalid.delete(key);
    const next: Planned | undefined = svc ? { svc, slices, ports: [] } : undefined;
    const plan = svc ? planService(svc, slices) : undefined;
    if (isInvalid(plan)) {
      this.invalid.set(key, plan.reason);
      this.d.log.warn({ code: plan.code, service: key }, `Service ${key} is not proxied: ${plan.reason}`);
    } else if (plan && next) {
      for (const port of plan.ports) {
        const chosen = chooseEndpoints(port, this.node);
        next.ports.push({ port, chosen, fragment: compilePort(port, chosen, this.d.clusterCIDR, this.d.nodeName) });
      }
      this.planned.set(key, next);
    }
    flushes.push(...udpFlushes(before?.ports ?? [], next?.ports ?? []));
  }

  private async pass(): Promise<void> {
    const { watches, nodes, log } = this.d;
    if (!watches.services.synced() || !watches.slices.synced() || !nodes.synced()) return;
    const t0 = performance.now();
    const nodeChanged = this.readNode();
    const changed = this.changedKeys();
    // This node's name, zone or addresses changed: every choice may differ.
    const keys = nodeChanged ? new Set([...changed, ...this.planned.keys(), ...this.seenServices.keys()]) : changed;
    const flushes: Flush[] = [];
    for (const k of keys) this.plan(k, flushes);
    const verify = this.verifyDue;
    this.verifyDue = false;
    if (keys.size > 0 || !this.table.current()) {
      const desc = describeProxy(this.fragments(), this.node.ips);
      const r = await this.table.apply(desc);
      this.updateHealth();
      let ports = 0;
      for (const p of this.planned.values()) ports += p.ports.length;
      this.d.metrics?.proxyServices.set({ state: "programmed" }, ports);
      this.d.metrics?.proxyServices.set({ state: "invalid" }, this.invalid.size);
      this.d.onAdvertise?.(advertised(this.planned.values()));
      const ms = performance.now() - t0;
      if (r.mode !== "none") {
        this.d.metrics?.proxyApply.observe(ms / 1000);
        this.d.onApplied?.({ commands: r.commands, mode: r.mode, ms, changed: keys.size });
        log.debug({ mode: r.mode, commands: r.commands, services: keys.size, ms: Math.round(ms) }, "service proxy table applied");
      }
      // After the apply: new datagrams take the new endpoints, none can re-create an entry to the old ones.
      if (flushes.length) {
        const n = await this.conntrack.flush(flushes);
        if (n) log.info({ deleted: n }, "deleted UDP conntrack entries of changed endpoints");
      }
    } else if (verify) {
      const { drift, result } = await this.table.heal(false);
      if (drift.length) log.warn({ code: "PROXY_DRIFT", drift: drift.slice(0, 10), replaced: result?.commands }, "the service proxy table differed from what was programmed; replaced it");
    }
    this.health.synced();
    if (this.lastError) log.info({}, "service proxy programmed again");
    this.lastError = "";
  }

  private *fragments(): Iterable<Fragment> {
    for (const p of this.planned.values()) for (const x of p.ports) yield x.fragment;
  }

  private updateHealth(): void {
    if (this.d.serveHealth === false) return;
    this.health.startHealthz(this.node.ips[0] ?? "0.0.0.0");
    const want = new Map<number, HealthCheckService>();
    for (const p of this.planned.values()) {
      for (const x of p.ports) {
        const hc = x.port.healthCheckNodePort;
        if (hc) want.set(hc, { namespace: x.port.namespace, name: x.port.service, localEndpoints: Math.max(want.get(hc)?.localEndpoints ?? 0, x.chosen.local.length) });
      }
    }
    this.health.update(want);
  }
}

/**
 * Service addresses this node announces: ClusterIPs, externalIPs and LoadBalancer addresses of every proxied
 * port; under externalTrafficPolicy Local only while this node has a local endpoint (upstream routers then send
 * the traffic only where it is served, and the client's address survives), as Calico and MetalLB do.
 */
export function advertised(planned: Iterable<{ ports: { port: ServicePort; chosen: Chosen }[] }>): string[] {
  const out = new Set<string>();
  for (const p of planned) {
    for (const { port, chosen } of p.ports) {
      if (port.externalLocal && chosen.local.length === 0) continue;
      for (const ip of [...port.clusterIPs, ...port.externalIPs]) out.add(`${ip}/32`);
    }
  }
  return [...out].sort();
}

const epKey = (e: Endpoint) => `${e.ip}:${e.port}`;

/** UDP entries to delete for a Service's change from `before` to `after` (kube-proxy's rules). */
export function udpFlushes(before: { port: ServicePort; chosen: Chosen }[], after: { port: ServicePort; chosen: Chosen }[]): Flush[] {
  const out: Flush[] = [];
  const next = new Map(after.map((x) => [x.port.id, x]));
  for (const b of before) {
    if (b.port.protocol !== "udp") continue;
    const a = next.get(b.port.id);
    const keep = new Set(a ? [...a.chosen.cluster, ...a.chosen.local].map(epKey) : []);
    for (const e of [...b.chosen.cluster, ...b.chosen.local]) {
      if (keep.has(epKey(e))) continue;
      keep.add(epKey(e));
      for (const vip of [...b.port.clusterIPs, ...b.port.externalIPs]) out.push({ kind: "endpoint", vip, endpoint: e.ip });
      if (b.port.nodePort) out.push({ kind: "nodeport-endpoint", nodePort: b.port.nodePort, endpoint: e.ip });
    }
  }
  const prev = new Map(before.map((x) => [x.port.id, x]));
  for (const a of after) {
    if (a.port.protocol !== "udp" || !a.chosen.reachable || prev.get(a.port.id)?.chosen.reachable) continue;
    for (const vip of [...a.port.clusterIPs, ...a.port.externalIPs]) out.push({ kind: "vip", vip });
    if (a.port.nodePort) out.push({ kind: "nodeport", nodePort: a.port.nodePort });
  }
  return out;
}
