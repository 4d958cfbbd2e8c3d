import { TwillError } from "../../lib/errors.ts";
import { parseCidr, parseIp } from "../../lib/net/cidr.ts";
import { readNodeFile, type NodeFile } from "../../lib/node-file.ts";
import { parseRange, type RangeSet, type RangeSpec } from "./ranges.ts";

// twill-ipam's configuration: host-local's fields (`ranges`, the legacy
// single `subnet`/`rangeStart`/`rangeEnd`/`gateway`, `routes`, `dataDir`),
// plus `"subnet": "usePodCidr"` (also the default when nothing is given),
// which takes this node's pod CIDRs from the file the daemon writes.

export const USE_POD_CIDR = "usePodCidr";
export const DEFAULT_DATA_DIR = "/var/lib/twill/ipam";

export interface IpamRoute {
  dst: string;
  gw?: string;
}

export interface IpamConfig {
  rangeSets: RangeSet[];
  routes: IpamRoute[];
  /** Directory of this network's allocations. */
  dataDir: string;
}

function bad(msg: string, details?: string): TwillError {
  return new TwillError("IPAM_CONFIG_INVALID", msg, details);
}

function asSpec(v: unknown, where: string): RangeSpec {
  if (typeof v !== "object" || v === null) throw bad(`${where} must be an object with a "subnet"`);
  const o = v as Record<string, unknown>;
  for (const k of ["subnet", "rangeStart", "rangeEnd", "gateway"]) {
    if (o[k] !== undefined && typeof o[k] !== "string") throw bad(`${where}.${k} must be a string`);
  }
  if (typeof o.subnet !== "string") throw bad(`${where} needs a "subnet"`);
  return o as unknown as RangeSpec;
}

export type NodeFileReader = (path: string) => NodeFile | undefined;

function podCidrSpecs(nodeFile: string, read: NodeFileReader): RangeSpec[] {
  const node = read(nodeFile);
  if (!node) {
    throw new TwillError(
      "NODE_FILE_MISSING",
      `this node's pod CIDR is not known yet: ${nodeFile} does not exist (the Twill daemon writes it once the node is ready)`,
    );
  }
  return node.podCIDRs.map((subnet) => ({ subnet }));
}

export function parseIpamConfig(raw: Record<string, unknown>, networkName: string, nodeFile: string, read: NodeFileReader = readNodeFile): IpamConfig {
  let specSets: RangeSpec[][];
  if (raw.ranges !== undefined) {
    if (!Array.isArray(raw.ranges) || raw.ranges.length === 0) throw bad('"ranges" must be a non-empty list of range sets');
    specSets = raw.ranges.map((set, i) => {
      if (!Array.isArray(set) || set.length === 0) throw bad(`ranges[${i}] must be a non-empty list of ranges`);
      return set.map((r, j) => asSpec(r, `ranges[${i}][${j}]`));
    });
  } else if (raw.subnet !== undefined && raw.subnet !== USE_POD_CIDR) {
    specSets = [[asSpec(raw, "ipam")]];
  } else {
    specSets = [[{ subnet: USE_POD_CIDR }]];
  }
  // "usePodCidr" expands to one range set per pod CIDR of the node (dual-stack).
  const expanded: RangeSpec[][] = [];
  for (const set of specSets) {
    if (set.some((s) => s.subnet === USE_POD_CIDR)) {
      for (const spec of podCidrSpecs(nodeFile, read)) expanded.push([spec]);
    } else {
      expanded.push(set);
    }
  }
  const rangeSets = expanded.map((set) => set.map(parseRange));
  for (const [i, set] of rangeSets.entries()) {
    if (set.some((r) => r.subnet.family !== set[0]!.subnet.family)) {
      throw bad(`ranges[${i}] mixes IPv4 and IPv6; use one range set per family`);
    }
  }
  const fams = rangeSets.map((s) => s[0]!.subnet.family);
  if (new Set(fams).size !== fams.length) throw bad("two range sets have the same IP family; a pod gets one address per family");

  const routes: IpamRoute[] = [];
  if (raw.routes !== undefined) {
    if (!Array.isArray(raw.routes)) throw bad('"routes" must be a list of {"dst", "gw"}');
    for (const [i, r] of raw.routes.entries()) {
      const o = r as Record<string, unknown>;
      if (typeof o?.dst !== "string" || (o.gw !== undefined && typeof o.gw !== "string")) {
        throw bad(`routes[${i}] needs a string "dst" (and an optional string "gw")`);
      }
      parseCidr(o.dst);
      if (typeof o.gw === "string") parseIp(o.gw);
      routes.push({ dst: o.dst, ...(typeof o.gw === "string" ? { gw: o.gw } : {}) });
    }
  }
  if (raw.dataDir !== undefined && typeof raw.dataDir !== "string") throw bad('"dataDir" must be a path');
  const base = (raw.dataDir as string | undefined) ?? DEFAULT_DATA_DIR;
  return { rangeSets, routes, dataDir: `${base}/${networkName}` };
}
