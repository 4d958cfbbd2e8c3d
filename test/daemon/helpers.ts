import { CoreV1Api } from "@kubernetes/client-node";
import { exec } from "../../lib/kernel/exec.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import type { LabPod } from "../../lab/cluster.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { allPairs, probeMatrix } from "../../lab/matrix.ts";
import { rawRequest } from "../../lab/kube.ts";

export async function eventually<T>(fn: () => Promise<T | undefined | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Pairs that cannot reach each other by ping (empty when the matrix is complete). */
export async function unreachablePairs(pods: LabPod[]): Promise<string[]> {
  const probes = await probeMatrix(pods, allPairs);
  return probes.filter((p) => !p.ok).map((p) => `${p.from.name}->${p.to.name}`);
}

/** A TCP exchange between two pods: the server echoes the client's address as it sees it. */
export async function tcpPeerAddress(client: LabPod, serverNs: string, serverIp: string, port: number): Promise<string> {
  await execIn(serverNs, ["sh", "-c", `nohup socat -T5 TCP-LISTEN:${port},reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR' >/dev/null 2>&1 &`]);
  return eventually(async () => {
    const r = await execIn(client.ns, ["socat", "-T2", "-", `TCP:${serverIp}:${port},connect-timeout=2`], { allowFailure: true });
    return r.stdout.trim() || undefined;
  }, `TCP ${client.name} -> ${serverIp}:${port}`);
}

export async function routesOf(ns: string, proto = 211): Promise<string> {
  return (await execIn(ns, ["ip", "route", "show", "proto", String(proto)])).stdout;
}

export async function kernelView(ns: string): Promise<string> {
  const parts = await Promise.all([
    execIn(ns, ["ip", "route", "show", "proto", "211"]),
    execIn(ns, ["ip", "neigh", "show", "dev", "twill.vxlan", "nud", "permanent"], { allowFailure: true }),
    execIn(ns, ["bridge", "fdb", "show", "dev", "twill.vxlan"], { allowFailure: true }),
  ]);
  return parts.map((p) => p.stdout).join("\n");
}

export async function deleteNodeObject(lab: RunningLab, name: string): Promise<void> {
  await lab.kc.makeApiClient(CoreV1Api).deleteNode({ name });
}

export async function sh(cmd: string): Promise<string> {
  return (await exec(["sh", "-c", cmd])).stdout;
}

/** Waits until the lab's apiserver answers /readyz again (after a test stopped or restarted it). */
export async function waitApiserver(l: RunningLab, timeoutMs = 120_000): Promise<void> {
  await eventually(async () => (await rawRequest(l.forwarder.port, l.state.admin, "GET", "/readyz").catch(() => ({ status: 0 }))).status === 200, "the apiserver to be ready again", timeoutMs);
}
