import { exec } from "../../lib/kernel/exec.ts";
import { TwillError } from "../../lib/errors.ts";
import { parseCidr } from "../../lib/net/cidr.ts";
import { WG_DEVICE } from "./peers.ts";

// Fail closed, in the kernel: table `inet twill-wg` drops any packet for
// another node's pods (the cluster CIDR minus this node's pod CIDR) that
// would leave by any device but the WireGuard one, whether forwarded from a
// pod or sent by the node. Routes already send such traffic into the device
// or a blackhole; this rule holds when they do not (a route deleted by hand,
// the device gone, the daemon stopped), since nft tables outlive the daemon.
// Written as `nft list table` prints it; a verifying pass compares the
// kernel's listing and rewrites a table changed by hand.

export const GUARD_TABLE = "twill-wg";

export function guardRuleset(clusterCIDR: string, localPodCIDRs: string[]): string {
  const cluster = parseCidr(clusterCIDR);
  const fam = cluster.family === 4 ? "ip" : "ip6";
  const own = localPodCIDRs.filter((c) => parseCidr(c).family === cluster.family);
  const except = own.length === 0 ? "" : ` ${fam} daddr != ${own.length === 1 ? own[0] : `{ ${own.join(", ")} }`}`;
  const rule = `${fam} daddr ${clusterCIDR}${except} oifname != "${WG_DEVICE}" drop`;
  const chain = (name: string, hook: string) => `\tchain ${name} {\n\t\ttype filter hook ${hook} priority filter; policy accept;\n\t\t${rule}\n\t}\n`;
  return `table inet ${GUARD_TABLE} {\n${chain("forward", "forward")}\n${chain("output", "output")}}\n`;
}

async function listing(): Promise<string | undefined> {
  const r = await exec(["nft", "list", "table", "inet", GUARD_TABLE], { allowFailure: true });
  return r.code === 0 ? r.stdout : undefined;
}

/** Keeps the guard table as wanted; returns 1 when it was (re)written. */
export class Guard {
  private written = "";

  async reconcile(want: string, trustMemory: boolean): Promise<number> {
    if (trustMemory && want === this.written) return 0;
    if ((await listing()) === want) {
      this.written = want;
      return 0;
    }
    // One transaction: the table is never absent in between.
    const r = await exec(["nft", "-f", "-"], { input: `table inet ${GUARD_TABLE}\ndelete table inet ${GUARD_TABLE}\n${want}`, allowFailure: true });
    if (r.code !== 0) throw new TwillError("KERNEL_WRITE", `writing nft table inet ${GUARD_TABLE} (WireGuard fail-closed rule) failed`, r.stderr.trim());
    this.written = want;
    return 1;
  }
}

/** Removes the table (encryption turned off); returns whether there was one. */
export async function removeGuard(): Promise<boolean> {
  return (await exec(["nft", "delete", "table", "inet", GUARD_TABLE], { allowFailure: true })).code === 0;
}
