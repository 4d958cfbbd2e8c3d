import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { execIn } from "../../lib/kernel/netns.ts";
import type { LabNode, LabPod } from "../../lab/cluster.ts";
import { startDaemon } from "../../lab/daemons.ts";
import { pidsIn, type RunningLab } from "../../lab/lab.ts";
import { socketPath } from "../../daemon/encryption/device.ts";
import { uapiGet, type WgDeviceState } from "../../daemon/encryption/uapi.ts";
import { WG_ANNOTATION } from "../../daemon/encryption/peers.ts";
import { eventually } from "../daemon/helpers.ts";

/** What node's WireGuard device holds, read over its UAPI socket (the lab gives each node its own /run). */
export const wgState = (node: LabNode): Promise<WgDeviceState> => uapiGet(socketPath(join(node.dir, "run")));

export async function nodeAnnotations(lab: RunningLab, name: string): Promise<Record<string, string>> {
  return (await lab.kc.makeApiClient(CoreV1Api).readNode({ name })).metadata?.annotations ?? {};
}

export async function annotate(lab: RunningLab, name: string, annotations: Record<string, string>): Promise<void> {
  await lab.kc.makeApiClient(CoreV1Api).patchNode({ name, body: { metadata: { annotations } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
}

export const publicKeyOn = async (lab: RunningLab, name: string) => (await nodeAnnotations(lab, name))[WG_ANNOTATION.publicKey];

/** Sends `marker` from one pod to another over TCP; resolves with what the receiver got. */
export async function sendMarker(from: LabPod, to: LabPod, port: number, marker: string): Promise<string> {
  const got = execIn(to.ns, ["timeout", "8", "socat", "-u", `TCP-LISTEN:${port},reuseaddr`, "-"], { allowFailure: true });
  await eventually(async () => (await execIn(from.ns, ["sh", "-c", `printf '%s\\n' '${marker}' | socat -u - TCP:${to.ip}:${port},connect-timeout=1`], { allowFailure: true })).code === 0, `${from.name} to send to ${to.name}:${port}`, 10_000);
  return (await got).stdout.trim();
}

export async function killDaemon(node: LabNode): Promise<void> {
  for (const pid of await pidsIn(node.ns, "daemon/main.ts")) process.kill(pid, "SIGKILL");
}

/** The daemon's log from `mark` (a length read before) on. */
export const logSince = (node: LabNode, mark: number) => readFileSync(join(node.dir, "daemon.log"), "utf8").slice(mark);
export const logLength = (node: LabNode) => readFileSync(join(node.dir, "daemon.log"), "utf8").length;

/** Restarts a node's daemon, optionally with another config.yaml text. */
export function restartDaemon(lab: RunningLab, node: LabNode, configText?: string): void {
  const files = lab.state.daemonFiles!;
  if (configText === undefined) {
    startDaemon(node, files);
    return;
  }
  const config = join(lab.state.dir, `twill-config-${node.name}.yaml`);
  writeFileSync(config, configText);
  startDaemon(node, { ...files, config });
}

/** ping's "N packets transmitted, M received". */
export function pingCounts(out: string): { sent: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  return { sent: Number(m[1]), received: Number(m[2]) };
}
