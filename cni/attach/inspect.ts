import { execSync as exec } from "../../lib/kernel/exec-sync.ts";
import { RTPROT_TWILL_POD } from "../../lib/kernel/protocols.ts";
import { CniError, ErrorCode } from "../spec.ts";
import { HOST_VETH_PREFIX, hostVethName, parseAttachmentAlias, type AttachmentId } from "./names.ts";

interface IpLink {
  ifname: string;
  ifalias?: string;
  flags?: string[];
  addr_info?: { local: string; prefixlen: number }[];
}

async function ipJson<T>(argv: string[]): Promise<T[] | undefined> {
  const r = await exec(argv, { allowFailure: true });
  if (r.code !== 0) return undefined;
  return r.stdout.trim() ? (JSON.parse(r.stdout) as T[]) : [];
}

/** Host veths Twill created, with the attachment their alias records. */
export async function listHostVeths(): Promise<{ ifname: string; attachment: AttachmentId | undefined }[]> {
  const links = (await ipJson<IpLink>(["ip", "-j", "link", "show", "type", "veth"])) ?? [];
  return links
    .filter((l) => l.ifname.startsWith(HOST_VETH_PREFIX))
    .map((l) => ({ ifname: l.ifname, attachment: l.ifalias ? parseAttachmentAlias(l.ifalias) : undefined }));
}

function fail(msg: string, details = ""): CniError {
  return new CniError(ErrorCode.CheckFailed, msg, details);
}

/** CHECK: the attachment is programmed as ADD left it. Throws a CheckFailed error naming what differs. */
export async function verifyAttachment(a: AttachmentId & { netns: string; ips: string[] }): Promise<void> {
  const host = hostVethName(a.containerId, a.ifname);
  const hostLinks = await ipJson<IpLink>(["ip", "-j", "link", "show", "dev", host]);
  const hostLink = hostLinks?.[0];
  if (!hostLink) throw fail(`host interface ${host} of this pod is missing`);
  if (!hostLink.flags?.includes("UP")) throw fail(`host interface ${host} is down`);
  const routes = (await ipJson<{ dst: string }>(["ip", "-j", "route", "show", "dev", host, "proto", String(RTPROT_TWILL_POD)])) ?? [];
  const routed = new Set(routes.map((r) => r.dst));
  for (const ip of a.ips) {
    if (!routed.has(ip)) throw fail(`the host has no route to pod address ${ip} via ${host}`);
  }
  const podAddrs = await ipJson<IpLink>(["nsenter", `--net=${a.netns}`, "ip", "-j", "addr", "show", "dev", a.ifname]);
  const pod = podAddrs?.[0];
  if (!pod) {
    throw new CniError(ErrorCode.UnknownContainer, `interface ${a.ifname} does not exist in ${a.netns}`);
  }
  if (!pod.flags?.includes("UP")) throw fail(`pod interface ${a.ifname} is down`);
  const have = new Set((pod.addr_info ?? []).map((x) => x.local));
  for (const ip of a.ips) {
    if (!have.has(ip)) throw fail(`pod interface ${a.ifname} lacks address ${ip}`);
  }
}
