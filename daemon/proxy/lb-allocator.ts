import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Node, type V1Service } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import { watchResource, type ListPage, type ResourceWatch } from "../cluster/resource-watch.ts";
import { allocate, parsePool, type LbPool, type PoolObject } from "./lb-pool.ts";

// Writes LoadBalancer addresses from Twill's pools into Services'
// status.loadBalancer.ingress. One daemon writes: the one on the node whose
// name sorts first (every daemon computes the same allocation, lb-pool.ts,
// so a hand-over is seamless). There is no lease: while that node's daemon is
// down and its Node object remains, new LoadBalancer Services wait for an
// address (docs/services.md). Every node proxies the address once written.

const GROUP = "twill.dev";
const VERSION = "v1alpha1";
const PLURAL = "loadbalancerpools";
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export interface AllocatorDeps {
  kc: KubeConfig;
  nodeName: string;
  nodes: ResourceWatch<V1Node>;
  services: ResourceWatch<V1Service>;
  log: Logger;
  onWatchError: (err: unknown) => void;
}

export class LoadBalancerAllocator {
  private readonly d: AllocatorDeps;
  private readonly pools: ResourceWatch<PoolObject>;
  private running = false;
  private again = false;
  private readonly badPools = new Map<string, string>();

  constructor(d: AllocatorDeps) {
    this.d = d;
    const api = d.kc.makeApiClient(CustomObjectsApi);
    this.pools = watchResource<PoolObject & { metadata?: { name?: string; namespace?: string } }>({
      kc: d.kc,
      log: d.log,
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      what: PLURAL,
      listPage: (cont) => api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, limit: 500, ...(cont ? { _continue: cont } : {}) }) as Promise<ListPage<PoolObject>>,
      slim: (o) => ({ metadata: { name: o.metadata?.name ?? "" }, spec: o.spec ?? {} }),
      onError: d.onWatchError,
    });
  }

  start(): void {
    const kick = () => this.kick();
    this.pools.onChange(kick);
    this.d.services.onChange(kick);
    this.d.nodes.onChange(kick);
    this.kick();
  }

  stop(): void {
    this.pools.stop();
  }

  /** This daemon writes addresses: its node's name sorts first. */
  private writer(): boolean {
    const names = this.d.nodes.list().map((n) => n.metadata?.name ?? "").filter(Boolean).sort();
    return names[0] === this.d.nodeName;
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.pass()
      .catch((err: unknown) => this.d.log.warn({ code: "LB_ALLOCATE", details: String((err as Error).message ?? err) }, "writing LoadBalancer addresses failed; retrying on the next change"))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async pass(): Promise<void> {
    if (!this.pools.synced() || !this.d.services.synced() || !this.d.nodes.synced() || !this.writer()) return;
    const pools: LbPool[] = [];
    for (const o of this.pools.list()) {
      const p = parsePool(o);
      if ("error" in p) {
        if (this.badPools.get(p.name) !== p.error) this.d.log.error({ code: "LB_POOL_INVALID", pool: p.name }, `LoadBalancerPool ${p.name} is left out: ${p.error}`);
        this.badPools.set(p.name, p.error);
      } else pools.push(p);
    }
    if (pools.length === 0) return;
    const services = this.d.services.list();
    const want = allocate(pools, services);
    const core = this.d.kc.makeApiClient(CoreV1Api);
    for (const s of services) {
      const namespace = s.metadata?.namespace ?? "";
      const name = s.metadata?.name ?? "";
      const ip = want.get(`${namespace}/${name}`);
      if (!ip || s.status?.loadBalancer?.ingress?.[0]?.ip === ip) continue;
      await core.patchNamespacedServiceStatus({ name, namespace, body: { status: { loadBalancer: { ingress: [{ ip, ipMode: "VIP" }] } } } }, merge);
      this.d.log.info({ service: `${namespace}/${name}`, ip }, "LoadBalancer address assigned from a Twill pool");
    }
  }
}
