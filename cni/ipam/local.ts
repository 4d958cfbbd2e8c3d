import { TwillError } from "../../lib/errors.ts";
import { CniError, ErrorCode, type Result } from "../spec.ts";
import { allocate, collectGarbage, inRangeSet, release } from "./allocator.ts";
import { DEFAULT_DATA_DIR, parseIpamConfig, type IpamConfig } from "./config.ts";
import type { IpamContext, IpamDriver } from "./driver.ts";
import { describeRange, rangeSetSize } from "./ranges.ts";
import { IpamStore } from "../../lib/ipam/store.ts";

/** The valid attachments a GC call lists (spec 1.1 `cni.dev/valid-attachments`), as "containerId/ifname". */
export function validAttachments(raw: Record<string, unknown>): Set<string> {
  const list = raw["cni.dev/valid-attachments"];
  if (list === undefined) return new Set();
  if (!Array.isArray(list)) {
    throw new CniError(ErrorCode.InvalidConfig, '"cni.dev/valid-attachments" must be a list of {"containerID", "ifname"}');
  }
  const out = new Set<string>();
  for (const a of list) {
    const o = a as Record<string, unknown>;
    if (typeof o?.containerID !== "string" || typeof o.ifname !== "string") {
      throw new CniError(ErrorCode.InvalidConfig, 'each valid attachment needs string "containerID" and "ifname"');
    }
    out.add(`${o.containerID}/${o.ifname}`);
  }
  return out;
}

/** twill-ipam run inside the calling plugin's process. */
export class LocalIpam implements IpamDriver {
  private readonly ctx: IpamContext;

  constructor(ctx: IpamContext) {
    this.ctx = ctx;
  }

  private config(): IpamConfig {
    return parseIpamConfig(this.ctx.conf.ipam, this.ctx.conf.name, this.ctx.conf.nodeFile, this.ctx.readNode);
  }

  /** The data directory, known without the node file (DEL and GC must work before the daemon is up). */
  private dataDir(): { dataDir: string } {
    const base = typeof this.ctx.conf.ipam.dataDir === "string" ? this.ctx.conf.ipam.dataDir : DEFAULT_DATA_DIR;
    return { dataDir: `${base}/${this.ctx.conf.name}` };
  }

  async add(): Promise<Result> {
    const cfg = this.config();
    const leases = allocate(cfg, this.ctx.env.containerId, this.ctx.env.ifname);
    return {
      interfaces: [],
      ips: leases.map((l) => ({ address: l.address, ...(l.gateway ? { gateway: l.gateway } : {}) })),
      routes: cfg.routes,
      dns: {},
    };
  }

  async del(): Promise<void> {
    release(this.dataDir(), this.ctx.env.containerId, this.ctx.env.ifname);
  }

  async check(ips: string[]): Promise<void> {
    const held = new IpamStore(this.dataDir().dataDir).findByOwner(this.ctx.env.containerId, this.ctx.env.ifname, "thorough");
    const missing = ips.filter((ip) => !held.includes(ip));
    if (missing.length > 0) {
      throw new CniError(ErrorCode.CheckFailed, `IPAM holds no allocation of ${missing.join(", ")} for this container`);
    }
  }

  async status(): Promise<void> {
    let cfg: IpamConfig;
    try {
      cfg = this.config();
    } catch (err) {
      if (err instanceof TwillError && err.code === "NODE_FILE_MISSING") {
        throw new CniError(ErrorCode.PluginNotAvailable, err.message);
      }
      throw err;
    }
    const held = new IpamStore(cfg.dataDir).list();
    for (const set of cfg.rangeSets) {
      const size = rangeSetSize(set);
      if (BigInt(held.filter((a) => inRangeSet(set, a.ip)).length) >= size) {
        throw new CniError(ErrorCode.PluginNotAvailable, `all ${size} addresses of ${set.map(describeRange).join(", ")} are allocated`);
      }
    }
  }

  async gc(): Promise<void> {
    collectGarbage(this.dataDir(), validAttachments(this.ctx.conf.raw));
  }
}
