import { TwillError } from "../../lib/errors.ts";
import { readJson } from "./ip.ts";

interface KAddr {
  ifname: string;
  mtu: number;
  addr_info?: { local: string; prefixlen: number }[];
}

/** The device holding the node's underlay address, its prefix and MTU (read every reconcile: MTU can change). */
export async function findUnderlay(ip: string): Promise<{ dev: string; address: string; prefix: number; mtu: number }> {
  for (const link of await readJson<KAddr>(["ip", "-j", "addr", "show"])) {
    const a = link.addr_info?.find((x) => x.local === ip);
    if (a) return { dev: link.ifname, address: ip, prefix: a.prefixlen, mtu: link.mtu };
  }
  throw new TwillError("UNDERLAY_NOT_FOUND", `no interface on this node holds its address ${ip} (InternalIP or twill.dev/public-ip)`);
}
