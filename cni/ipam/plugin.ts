import { CniError, ErrorCode, type Result } from "../spec.ts";
import { requireVersion } from "../commands/versions.ts";
import type { Invocation } from "../commands/context.ts";
import { LocalIpam } from "./local.ts";

/** twill-ipam as its own executable, for other plugins to delegate to. */
export async function runIpamPlugin(inv: Invocation): Promise<Result | undefined> {
  const ipam = new LocalIpam({ env: inv.env, conf: inv.conf, stdin: inv.stdin });
  switch (inv.env.command) {
    case "ADD":
      return ipam.add();
    case "DEL":
      await ipam.del();
      return undefined;
    case "CHECK": {
      requireVersion(inv.conf.cniVersion, "0.4.0", "CHECK");
      const prev = inv.conf.prevResult as { ips?: { address?: string }[] } | undefined;
      const ips = (prev?.ips ?? []).map((ip) => String(ip.address ?? "").split("/")[0]!).filter(Boolean);
      await ipam.check(ips);
      return undefined;
    }
    case "STATUS":
      requireVersion(inv.conf.cniVersion, "1.1.0", "STATUS");
      await ipam.status();
      return undefined;
    case "GC":
      requireVersion(inv.conf.cniVersion, "1.1.0", "GC");
      await ipam.gc();
      return undefined;
    default:
      throw new CniError(ErrorCode.InvalidEnvironment, `unexpected command ${inv.env.command}`);
  }
}
