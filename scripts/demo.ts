// npm run demo — the CNI plugin on its own, as a runtime would call it: one
// node namespace, two pod namespaces attached by dist/cni/twill, a ping
// between them, then DEL and cleanup. Needs nothing but root.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { exec } from "../lib/kernel/exec.ts";
import { addNetns, deleteNetns, execIn, netnsPath } from "../lib/kernel/netns.ts";
import { writeNodeFile } from "../lib/node-file.ts";

const repo = resolve(import.meta.dirname, "..");
const tag = `twdemo${process.pid.toString(36)}`;
const node = `${tag}-node`;
const pods = [`${tag}-a`, `${tag}-b`];
const dir = mkdtempSync(join(tmpdir(), "twill-demo-"));
const conf = {
  cniVersion: "1.1.0",
  name: "twill",
  type: "twill",
  nodeFile: join(dir, "node.json"),
  ipam: { type: "twill-ipam", dataDir: join(dir, "ipam") },
};

function cni(command: string, pod: string) {
  return exec(["nsenter", `--net=${netnsPath(node)}`, join(repo, "dist/cni/twill")], {
    input: JSON.stringify(conf),
    env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: pod, CNI_NETNS: netnsPath(pod), CNI_IFNAME: "eth0", CNI_PATH: join(repo, "dist/cni") },
  });
}

async function main(): Promise<number> {
  await addNetns(node);
  await execIn(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  writeNodeFile({ version: 1, nodeName: node, podCIDRs: ["10.244.0.0/24"], mtu: 1500, clusterCIDRs: ["10.244.0.0/16"] }, conf.nodeFile);
  const ips: string[] = [];
  for (const pod of pods) {
    await addNetns(pod);
    const t0 = performance.now();
    const r = await cni("ADD", pod);
    const result = JSON.parse(r.stdout) as { ips: { address: string }[] };
    ips.push(result.ips[0]!.address.split("/")[0]!);
    console.log(`pod ${pod}: ${result.ips[0]!.address} (CNI ADD ${(performance.now() - t0).toFixed(0)} ms)`);
  }
  const ping = await execIn(pods[0]!, ["ping", "-c3", "-W2", ips[1]!], { allowFailure: true });
  console.log(ping.stdout.trim().split("\n").slice(-2).join("\n"));
  console.log(ping.code === 0 ? `OK: ${pods[0]} reaches ${pods[1]} through Twill` : "FAILED: no reply");
  for (const pod of pods) await cni("DEL", pod);
  return ping.code === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} finally {
  for (const ns of [...pods, node]) await deleteNetns(ns);
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
