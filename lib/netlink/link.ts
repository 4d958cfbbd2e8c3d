import { TwillError } from "../errors.ts";
import { formatAddress, formatMac } from "./address.ts";
import { AF, eachAttr, familyDump, IFLA, IFLA_INFO, readS32, readU32, RTM, type GsoSizes, type MessageHeader } from "./rtnl.ts";

// A device and its addresses as the kernel describes them (RTM_NEWLINK,
// RTM_NEWADDR; include/uapi/linux/{if_link,if_addr}.h): what `ip -d link
// show` and `ip addr show` read, for the VXLAN device check. Pure, like rtnl.ts.

const IFLA_VXLAN = { ID: 1, LINK: 3, LOCAL: 4, LEARNING: 7, PORT: 15, LOCAL6: 17 } as const;
const IFA = { ADDRESS: 1, LOCAL: 2 } as const;
const IFINFOMSG = 16;
const IFADDRMSG = 8;

export interface VxlanInfo {
  vni: number;
  /** Interface index of the underlay device (0: none given). */
  link: number;
  /** Source address; "" when none. */
  local: string;
  /** UDP destination port. */
  port: number;
  learning: boolean;
}

export interface DumpedLink {
  index: number;
  /** IFLA_IFNAME. */
  name: string;
  /** IFF_* bits. */
  flags: number;
  mtu: number;
  mac: string;
  /** IFLA_INFO_KIND ("vxlan", "veth"…); "" for a device without one. */
  kind: string;
  vxlan?: VxlanInfo;
  /** GSO and GRO size limits (BIG TCP); 0 where the kernel does not say (IPv4's before Linux 6.3). */
  gso: GsoSizes;
  gro: GsoSizes;
}

const malformed = (what: string) => (why: string) => new TwillError("KERNEL_READ", `${what} from the kernel is malformed: ${why}`);
const linkMalformed = malformed("a device description");

function header(buf: Uint8Array, m: MessageHeader, size: number, fail: (why: string) => Error): number {
  if (m.length < 16 + size) throw fail(`a message of ${m.length} bytes is shorter than its header`);
  if (m.offset + m.length > buf.length) throw fail(`a message of ${m.length} bytes runs past the end of its datagram`);
  return m.offset + 16;
}

/** Reads a fixed-size attribute's payload; a shorter one is malformed. */
function need<T>(len: number, want: number, what: string, read: () => T): T {
  if (len < want) throw linkMalformed(`${what} of ${len} bytes, ${want} expected`);
  return read();
}

function parseVxlan(buf: Uint8Array, start: number, end: number): VxlanInfo {
  const v: VxlanInfo = { vni: 0, link: 0, local: "", port: 0, learning: false };
  eachAttr(buf, start, end, linkMalformed, (type, at, len) => {
    switch (type) {
      case IFLA_VXLAN.ID:
        v.vni = need(len, 4, "a VNI", () => readU32(buf, at));
        break;
      case IFLA_VXLAN.LINK:
        v.link = need(len, 4, "a device index", () => readU32(buf, at));
        break;
      case IFLA_VXLAN.LOCAL:
        v.local = need(len, 4, "an IPv4 address", () => formatAddress(AF.INET, buf, at));
        break;
      case IFLA_VXLAN.LOCAL6:
        v.local = need(len, 16, "an IPv6 address", () => formatAddress(AF.INET6, buf, at));
        break;
      case IFLA_VXLAN.LEARNING:
        v.learning = need(len, 1, "a flag", () => buf[at] !== 0);
        break;
      case IFLA_VXLAN.PORT:
        // In network byte order (nla_put_be16).
        v.port = need(len, 2, "a port", () => (buf[at]! << 8) | buf[at + 1]!);
        break;
    }
  });
  return v;
}

/** An RTM_NEWLINK message (the answer to getLinkByName, or a dump's), or undefined for other messages; throws a KERNEL_READ TwillError for one that does not hold together. */
export function parseLink(buf: Uint8Array, m: MessageHeader): DumpedLink | undefined {
  if (m.type !== RTM.NEWLINK) return undefined;
  const ifi = header(buf, m, IFINFOMSG, linkMalformed);
  const out: DumpedLink = {
    index: readS32(buf, ifi + 4),
    name: "",
    flags: readU32(buf, ifi + 8),
    mtu: 0,
    mac: "",
    kind: "",
    gso: { ipv4: 0, ipv6: 0 },
    gro: { ipv4: 0, ipv6: 0 },
  };
  let data: [number, number] | undefined;
  const size = (len: number, at: number) => need(len, 4, "a size limit", () => readU32(buf, at));
  eachAttr(buf, ifi + IFINFOMSG, m.offset + m.length, linkMalformed, (type, at, len) => {
    if (type === IFLA.IFNAME) out.name = new TextDecoder().decode(buf.subarray(at, at + len)).replace(/\0.*$/s, "");
    else if (type === IFLA.MTU) out.mtu = need(len, 4, "an MTU", () => readU32(buf, at));
    else if (type === IFLA.GSO_MAX_SIZE) out.gso.ipv6 = size(len, at);
    else if (type === IFLA.GRO_MAX_SIZE) out.gro.ipv6 = size(len, at);
    else if (type === IFLA.GSO_IPV4_MAX_SIZE) out.gso.ipv4 = size(len, at);
    else if (type === IFLA.GRO_IPV4_MAX_SIZE) out.gro.ipv4 = size(len, at);
    else if (type === IFLA.ADDRESS) out.mac = formatMac(buf, at, len);
    else if (type === IFLA.LINKINFO) {
      eachAttr(buf, at, at + len, linkMalformed, (t, a, l) => {
        // The kind is a NUL-terminated string.
        if (t === IFLA_INFO.KIND) out.kind = new TextDecoder().decode(buf.subarray(a, a + l)).replace(/\0.*$/s, "");
        else if (t === IFLA_INFO.DATA) data = [a, a + l];
      });
    }
  });
  if (data && out.kind === "vxlan") out.vxlan = parseVxlan(buf, data[0], data[1]);
  return out;
}

/** `ip link show`: every device of the namespace. */
export const dumpLinks = (seq: number): Uint8Array => familyDump(RTM.GETLINK, IFINFOMSG, 0, seq);

/** `ip addr show` for one family: every device's (an older kernel ignores a device filter here; the caller filters). */
export const dumpAddresses = (seq: number, family: number): Uint8Array => familyDump(RTM.GETADDR, IFADDRMSG, family, seq);

export interface DumpedAddress {
  family: number;
  index: number;
  prefixLength: number;
  /** IFA_LOCAL (else IFA_ADDRESS): the device's own address. */
  local: string;
}

const addressMalformed = malformed("an address description");

/** An RTM_NEWADDR message of a dump, or undefined for other messages; throws a KERNEL_READ TwillError for one that does not hold together. */
export function parseAddress(buf: Uint8Array, m: MessageHeader): DumpedAddress | undefined {
  if (m.type !== RTM.NEWADDR) return undefined;
  const ifa = header(buf, m, IFADDRMSG, addressMalformed);
  const family = buf[ifa]!;
  const size = family === AF.INET ? 4 : 16;
  let local = "";
  let address = "";
  eachAttr(buf, ifa + IFADDRMSG, m.offset + m.length, addressMalformed, (type, at, len) => {
    if (type !== IFA.LOCAL && type !== IFA.ADDRESS) return;
    if (len !== size) throw addressMalformed(`an address of ${len} bytes in family ${family}`);
    if (type === IFA.LOCAL) local = formatAddress(family, buf, at);
    else address = formatAddress(family, buf, at);
  });
  return { family, index: readU32(buf, ifa + 4), prefixLength: buf[ifa + 1]!, local: local || address };
}
