import { TwillError } from "../../lib/errors.ts";
import { errnoSentence } from "../../lib/netlink/errno.ts";
import { dumpAddresses, parseAddress, parseLink, type DumpedLink } from "../../lib/netlink/link.ts";
import { AF, getLinkByName, IFF_UP, parseReply } from "../../lib/netlink/rtnl.ts";
import type { VxlanLink } from "./desired.ts";
import { batch } from "./ip.ts";
import type { RtnlSocket } from "./netlink-socket.ts";

// Twill's VXLAN devices against the kernel: read over rtnetlink every pass
// (a pass that spawned `ip -d addr show` for it paid 20–50 ms), written
// through one `ip -batch` when something differs, which is rare (start-up,
// a changed VNI, port or underlay, a device deleted by hand).

const ERRNO_ENODEV = 19;

/** The VXLAN devices Twill may own (one per backend that uses one). */
const OWNED_LINKS = ["twill.vxlan"];

/** Interface indexes by name, one RTM_GETLINK each (absent: no such device). */
export async function linkIndexes(names: Iterable<string>, sock: RtnlSocket): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const name of names) {
    const r = await sock.request((seq) => getLinkByName(seq, name), `device ${name}`, (buf, m) => parseReply(buf.subarray(m.offset), m.length));
    if ("kind" in r && r.kind === "link") out.set(name, r.index);
  }
  return out;
}

/** A device as the kernel describes it; undefined when there is no such device. */
export async function readLink(name: string, sock: RtnlSocket): Promise<DumpedLink | undefined> {
  const r = await sock.request((seq) => getLinkByName(seq, name), `device ${name}`, parseLink);
  if (r && "errno" in r) {
    if (r.errno === ERRNO_ENODEV) return undefined;
    throw new TwillError("KERNEL_READ", `reading device ${name} from the kernel failed: ${errnoSentence(r.errno)}`);
  }
  return r;
}

/** The IPv4 addresses on device `index`, as "address/prefix". */
async function ipv4Addresses(index: number, sock: RtnlSocket): Promise<Set<string>> {
  const out = new Set<string>();
  await sock.dump((seq) => dumpAddresses(seq, AF.INET), "the IPv4 addresses", (buf, m) => {
    const a = parseAddress(buf, m);
    if (a && a.family === AF.INET && a.index === index) out.add(`${a.local}/${a.prefixLength}`);
  });
  return out;
}

/** Brings Twill's devices to `want` (a device that differs in what `link add` fixes is made again); returns the number of `ip` commands run. */
export async function reconcileLinks(want: VxlanLink[], sock: RtnlSocket): Promise<number> {
  const lines: string[] = [];
  for (const name of OWNED_LINKS.filter((n) => !want.some((l) => l.name === n))) {
    if (await readLink(name, sock)) lines.push(`link del ${name}`);
  }
  for (const l of want) {
    const have = await readLink(l.name, sock);
    const v = have?.vxlan;
    const underlay = v ? (await linkIndexes([l.dev], sock)).get(l.dev) : undefined;
    const same = have && v && v.vni === l.vni && v.local === l.local && v.link === underlay && v.port === l.port && !v.learning;
    if (have && !same) lines.push(`link del ${l.name}`);
    if (!have || !same) {
      lines.push(`link add ${l.name} address ${l.mac} mtu ${l.mtu} type vxlan id ${l.vni} local ${l.local} dev ${l.dev} dstport ${l.port} nolearning`);
      lines.push(`link set ${l.name} up`);
      for (const a of l.addresses) lines.push(`addr add ${a} dev ${l.name}`);
      continue;
    }
    if (have.mac !== l.mac) lines.push(`link set ${l.name} address ${l.mac}`);
    if (have.mtu !== l.mtu) lines.push(`link set ${l.name} mtu ${l.mtu}`);
    if (!(have.flags & IFF_UP)) lines.push(`link set ${l.name} up`);
    const addrs = await ipv4Addresses(have.index, sock);
    for (const a of l.addresses) if (!addrs.has(a)) lines.push(`addr add ${a} dev ${l.name}`);
    for (const a of addrs) if (!l.addresses.includes(a)) lines.push(`addr del ${a} dev ${l.name}`);
  }
  return batch("ip", lines);
}
