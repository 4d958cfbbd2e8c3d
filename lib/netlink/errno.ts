import { constants } from "node:os";

// Kernel errnos from netlink replies as sentences an operator can act on,
// for the errors route, link, neighbour and FDB requests actually return; the
// rest by name.

const SENTENCES: Record<number, string> = {
  1: "not permitted: the daemon needs CAP_NET_ADMIN in the node's network namespace",
  2: "no such route or object in the kernel (already gone)",
  3: "no such route in the kernel (already gone)",
  12: "the kernel is out of memory",
  13: "permission denied: the daemon needs CAP_NET_ADMIN",
  17: "it already exists",
  19: "the output device does not exist",
  22: "the kernel rejected the request as invalid (a bad prefix, next hop or route type)",
  97: "the address family does not fit (an IPv6 address for an IPv4 device, or the reverse)",
  101: "the next hop is not reachable: no address on the output device covers it (onlink would be needed)",
  105: "the kernel had no buffer space for the request",
  113: "no route to the next hop",
};

const byNumber = new Map(Object.entries(constants.errno as Record<string, number>).map(([name, n]) => [n, name]));

/** "the output device does not exist (ENODEV)". */
export function errnoSentence(errno: number): string {
  const name = byNumber.get(errno) ?? `errno ${errno}`;
  const sentence = SENTENCES[errno];
  return sentence ? `${sentence} (${name})` : name;
}
