// `node daemon/cleanup.ts [--node-file F] [--ipam-dir D] [--cni-bin-dir D] [--cni-conf-dir D] [--wireguard-key-file F]`
// Removes everything Twill put on this node: its VXLAN and WireGuard devices (wireguard-go exits with its device), its routes
// (both route protocol numbers), the pods' host veths, its nftables tables and
// its files. For uninstalling; run inside the node's network namespace.
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { exec } from "../lib/kernel/exec.ts";
import { RTPROT_TWILL, RTPROT_TWILL_POD } from "../lib/kernel/protocols.ts";
import { CTL_SOCKET_NAME } from "../lib/ctl-api.ts";
import { DAEMON_SOCKET_NAME, DEFAULT_NODE_FILE } from "../lib/node-file.ts";
import { readJson } from "./kernel/ip.ts";

const { values } = parseArgs({
  options: {
    "node-file": { type: "string", default: DEFAULT_NODE_FILE },
    "ipam-dir": { type: "string", default: "/var/lib/twill/ipam" },
    "cni-bin-dir": { type: "string", default: "/opt/cni/bin" },
    "cni-conf-dir": { type: "string", default: "/etc/cni/net.d" },
    "wireguard-key-file": { type: "string", default: "/var/lib/twill/wireguard/private.key" },
  },
});

const removed: string[] = [];
const links = await readJson<{ ifname: string }>(["ip", "-j", "link", "show"]);
for (const l of links.filter((x) => x.ifname === "twill.vxlan" || x.ifname === "twill.wg" || /^twl[0-9a-f]{11}$/.test(x.ifname))) {
  await exec(["ip", "link", "del", l.ifname], { allowFailure: true });
  removed.push(`link ${l.ifname}`);
}
for (const proto of [RTPROT_TWILL, RTPROT_TWILL_POD]) {
  for (const family of ["-4", "-6"]) {
    const r = await exec(["ip", family, "route", "flush", "proto", String(proto)], { allowFailure: true });
    if (r.code === 0) removed.push(`routes ${family} proto ${proto}`);
  }
}
const tables = (await exec(["nft", "list", "tables"], { allowFailure: true })).stdout;
for (const m of tables.matchAll(/^table (\S+) (twill[\w-]*)$/gm)) {
  await exec(["nft", "delete", "table", m[1]!, m[2]!]);
  removed.push(`nft table ${m[1]} ${m[2]}`);
}
// The node file, and beside it the daemon's sockets (the CNI plugin's notices, twillctl's API).
const runDir = dirname(values["node-file"]);
for (const path of [values["node-file"], join(runDir, DAEMON_SOCKET_NAME), join(runDir, CTL_SOCKET_NAME), values["ipam-dir"], values["wireguard-key-file"], join(values["cni-bin-dir"], "twill"), join(values["cni-bin-dir"], "twill-ipam"), join(values["cni-conf-dir"], "10-twill.conflist")]) {
  rmSync(path, { recursive: true, force: true });
}
removed.push("files");
console.error(JSON.stringify({ level: 30, name: "twill-cleanup", msg: "removed Twill from this node", removed }));
