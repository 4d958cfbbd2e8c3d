import { verifyAttachment } from "../attach/inspect.ts";
import { CniError, compareVersions, ErrorCode, parseResult } from "../spec.ts";
import { bareIp, ipamFor, requireNetns, type Invocation } from "./context.ts";

export async function cmdCheck(inv: Invocation): Promise<void> {
  const { env, conf } = inv;
  if (compareVersions(conf.cniVersion, "0.4.0") < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, `CHECK needs cniVersion 0.4.0 or later (config has ${conf.cniVersion})`);
  }
  if (conf.prevResult === undefined) {
    throw new CniError(ErrorCode.InvalidConfig, "CHECK needs prevResult (the result of ADD)");
  }
  const prev = parseResult(conf.prevResult);
  requireNetns(env.netns);
  const ips = prev.ips.map((ip) => bareIp(ip.address));
  await ipamFor(inv).check(ips);
  await verifyAttachment({ network: conf.name, containerId: env.containerId, ifname: env.ifname, netns: env.netns, ips });
}
