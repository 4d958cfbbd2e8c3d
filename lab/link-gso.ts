// Run inside a lab namespace: `node lab/link-gso.ts SIZE DEV...` sets each
// device's GSO and GRO limits (both families) to SIZE, as an operator raises
// a BIG TCP-capable NIC's with `ip link set DEV gso_ipv4_max_size …` (the
// iproute2 here predates the IPv4 keywords, so this speaks rtnetlink).
import { errnoSentence } from "../lib/netlink/errno.ts";
import { setLinkGso } from "../lib/netlink/rtnl.ts";
import { rtnl } from "../daemon/kernel/netlink-socket.ts";

const [size, ...devs] = process.argv.slice(2);
const n = Number(size);
if (!Number.isInteger(n) || n <= 0 || devs.length === 0) {
  console.error("usage: link-gso.ts SIZE DEV...");
  process.exit(2);
}
for (const dev of devs) {
  const r = await rtnl.request((seq) => setLinkGso(seq, dev, { ipv4: n, ipv6: n }), `the size limits of ${dev}`, () => undefined);
  if (r && r.errno !== 0) {
    console.error(`setting ${dev}'s GSO/GRO limits to ${n} failed: ${errnoSentence(r.errno)}`);
    process.exit(1);
  }
}
rtnl.close();
