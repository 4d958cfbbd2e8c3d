import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

// The Kubernetes binaries the lab runs, built from lab/k8s's Go modules by
// scripts/build-controlplane.sh into a machine-wide cache (docs/lab.md).

const REPO = resolve(import.meta.dirname, "..");

/** Builds (first run) or finds the control-plane binaries; build progress streams as it happens. */
export function controlPlaneBinaries(log: (m: string) => void, kubelet = false): Promise<string> {
  return new Promise((resolvePath, reject) => {
    const env = { ...process.env, ...(kubelet ? { TWILL_BUILD_KUBELET: "1" } : {}) };
    const child = spawn("bash", [join(REPO, "scripts/build-controlplane.sh")], { stdio: ["ignore", "pipe", "pipe"], env });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      for (const line of d.split("\n").filter(Boolean)) log(line.replace(/^\[lab\] /, ""));
    });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolvePath(out.trim()) : reject(new Error(`building the control plane failed:\n${err}`))));
  });
}

/**
 * The kubectl built with the control plane (v1.36.3, kustomize inside), never
 * the machine's own. Built with kubelet's set, so a machine that has only run
 * the netns lab builds that set once here.
 */
export async function kubectlBinary(log: (m: string) => void = () => {}): Promise<string> {
  const dir = await controlPlaneBinaries(log);
  if (existsSync(join(dir, "kubectl"))) return join(dir, "kubectl");
  return join(await controlPlaneBinaries(log, true), "kubectl");
}
