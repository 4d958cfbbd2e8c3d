import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NodeFixture } from "../support/cni.ts";

export function writeNode(node: NodeFixture, podCIDRs = ["10.90.1.0/24"], mtu = 1450): string {
  const path = join(node.dir, "node.json");
  writeFileSync(path, JSON.stringify({ version: 1, nodeName: node.ns, podCIDRs, mtu, clusterCIDRs: ["10.90.0.0/16"] }));
  return path;
}

/** A twill plugin config as the runtime hands it over (name and cniVersion injected). */
export function twillConf(node: NodeFixture, extra: Record<string, unknown> = {}, cniVersion = "1.1.0"): Record<string, unknown> {
  return {
    cniVersion,
    name: "twill",
    type: "twill",
    nodeFile: join(node.dir, "node.json"),
    ipam: { type: "twill-ipam", dataDir: join(node.dir, "ipam") },
    ...extra,
  };
}
