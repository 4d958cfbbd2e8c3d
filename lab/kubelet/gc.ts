import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { netnsPath } from "../../lib/kernel/netns.ts";
import type { LabNode } from "../cluster.ts";
import { ctr, type ContainerdPaths } from "./containerd.ts";

// CNI GC for a kubelet node, as a runtime that speaks CNI 1.1 does it:
// containerd 1.6 never calls GC, so the lab sends it the list containerd
// itself holds — every pod sandbox it knows — as cni.dev/valid-attachments.
// Whatever Twill attached for a sandbox containerd has forgotten (containerd
// killed mid RunPodSandbox) is then removed.

const REPO = resolve(import.meta.dirname, "../..");

/** Ids of the pod sandboxes containerd knows (the CRI labels them). */
export async function sandboxIds(cd: ContainerdPaths): Promise<string[]> {
  const { stdout } = await ctr(cd, ["containers", "ls", "-q", "labels.\"io.cri-containerd.kind\"==sandbox"]);
  return stdout.split("\n").map((l) => l.trim()).filter(Boolean);
}

/** The Twill plugin's own entry of the conflist `twill install` put on the node. */
function twillPluginConf(cd: ContainerdPaths): Record<string, unknown> {
  const list = JSON.parse(readFileSync(join(cd.cniConf, "10-twill.conflist"), "utf8")) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
  return { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0]! };
}

/** Ids of containers (sandboxes included) whose task is running. */
export async function runningTaskIds(cd: ContainerdPaths): Promise<Set<string>> {
  const { stdout } = await ctr(cd, ["tasks", "ls"]);
  return new Set(stdout.split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[2] === "RUNNING").map((f) => f[0]!));
}

/**
 * An ADD by the node's installed plugin for a container containerd never
 * heard of: what a runtime that lost its state leaves behind. Returns the address.
 */
export async function strayAttachment(node: LabNode, containerId: string, netns: string): Promise<string> {
  const cd = node.kubelet!.containerd;
  const r = await exec(["nsenter", `--net=${netnsPath(node.ns)}`, join(cd.cniBin, "twill")], {
    input: JSON.stringify(twillPluginConf(cd)),
    env: { PATH: process.env.PATH, CNI_COMMAND: "ADD", CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: "eth0", CNI_PATH: cd.cniBin },
    allowFailure: true,
  });
  if (r.code !== 0) throw new TwillError("LAB_CNI_ADD", `CNI ADD for ${containerId} on ${node.name} failed`, r.stdout + r.stderr);
  return (JSON.parse(r.stdout) as { ips: { address: string }[] }).ips[0]!.address.split("/")[0]!;
}

export async function cniGc(node: LabNode): Promise<string[]> {
  const cd = node.kubelet!.containerd;
  const valid = await sandboxIds(cd);
  // GC is CNI 1.1; the node's conflist says 1.0.0 for containerd 1.6 (node.ts), a 1.1 runtime would send 1.1.0.
  const conf = { ...twillPluginConf(cd), cniVersion: "1.1.0", "cni.dev/valid-attachments": valid.map((containerID) => ({ containerID, ifname: "eth0" })) };
  const r = await exec(["nsenter", `--net=${netnsPath(node.ns)}`, join(cd.cniBin, "twill")], {
    input: JSON.stringify(conf),
    env: { PATH: process.env.PATH, CNI_COMMAND: "GC", CNI_PATH: cd.cniBin },
    allowFailure: true,
  });
  if (r.code !== 0) throw new TwillError("LAB_CNI_GC", `CNI GC on ${node.name} failed; see ${node.kubelet!.cniLog}`, r.stdout + r.stderr);
  return valid;
}
