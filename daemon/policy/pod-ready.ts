import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

// When the CNI plugin allocated an address on this node: the IPAM record's
// modification time. twill-ipam and host-local share the layout
// (<dataDir>/<network>/<address>), so this works with either.

export function allocationTime(ipamDir: string, ip: string): number | undefined {
  let networks: string[];
  try {
    networks = readdirSync(ipamDir);
  } catch {
    return undefined;
  }
  for (const net of networks) {
    try {
      return statSync(join(ipamDir, net, ip)).mtimeMs;
    } catch {
      // not in this network
    }
  }
  return undefined;
}
