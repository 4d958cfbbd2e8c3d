import { getLinkByName, parseReply } from "../../lib/netlink/rtnl.ts";
import type { RtnlSocket } from "./netlink-socket.ts";

/** Interface indexes by name, one RTM_GETLINK each (absent: no such device). */
export async function linkIndexes(names: Iterable<string>, sock: RtnlSocket): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const name of names) {
    const r = await sock.request((seq) => getLinkByName(seq, name), `device ${name}`, (buf, m) => parseReply(buf.subarray(m.offset), m.length));
    if ("kind" in r && r.kind === "link") out.set(name, r.index);
  }
  return out;
}
