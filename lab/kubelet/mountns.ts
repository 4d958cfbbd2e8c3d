import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec } from "../../lib/kernel/exec.ts";

// A kubelet node is a network namespace plus a mount namespace, held open by
// a bind-mounted ns file in the lab's directory. Its containerd and kubelet
// share it, so every mount they make (container root filesystems, pod netns
// files, kubelet volumes) lives and dies with the node: unmounting the ns
// file after the node's processes are gone drops them all, and nothing is
// ever mounted in the machine's own mount namespace. Host mounts propagate in
// (slave), none propagate out.
//
// The node namespace also gets its own view of three sysctls: kubelet insists
// on vm.overcommit_memory=1, kernel.panic=10 and kernel.panic_on_oops=1 and
// would otherwise write them machine-wide (a shared machine must not start
// panicking on an oops because a lab ran). Files holding kubelet's values are
// bind-mounted over those /proc/sys entries inside the node only, and kubelet
// runs with protectKernelDefaults, so it checks and never writes.

export const KUBELET_SYSCTLS: Record<string, string> = {
  "vm/overcommit_memory": "1",
  "kernel/panic": "10",
  "kernel/panic_on_oops": "1",
};

/** The private mount the lab's ns files live on (unshare refuses a shared parent); once per lab, though nodes start at once. */
const nsDirs = new Map<string, Promise<string>>();
function ensureNsDir(labDir: string): Promise<string> {
  let p = nsDirs.get(labDir);
  if (!p) nsDirs.set(labDir, (p = mountNsDir(labDir)));
  return p;
}

async function mountNsDir(labDir: string): Promise<string> {
  const dir = join(labDir, "mnt");
  mkdirSync(dir, { recursive: true });
  const mounted = readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === dir);
  if (!mounted) {
    await exec(["mount", "--bind", dir, dir]);
    await exec(["mount", "--make-private", dir]);
  }
  return dir;
}

/**
 * Creates node `node`'s mount namespace: /run/containerd (where containerd's
 * shims put their sockets, a fixed path) becomes the node's own directory, and
 * kubelet's sysctls are overlaid. Returns the ns file.
 */
export async function createNodeMountNs(labDir: string, node: string, nodeDir: string, binds: Record<string, string> = {}): Promise<string> {
  const dir = await ensureNsDir(labDir);
  const file = join(dir, node);
  writeFileSync(file, "");
  const run = join(nodeDir, "run-containerd");
  mkdirSync(run, { recursive: true });
  // The mount point must exist; an empty directory is all the machine sees.
  mkdirSync("/run/containerd", { recursive: true });
  const sysctlDir = join(nodeDir, "sysctl");
  mkdirSync(sysctlDir, { recursive: true });
  const cmds: string[] = [`mount --bind ${run} /run/containerd`];
  // The node's own view of machine paths (the DaemonSet's hostPath volumes): node dir → path inside the node.
  for (const [path, sub] of Object.entries(binds)) {
    mkdirSync(path, { recursive: true });
    mkdirSync(join(nodeDir, sub), { recursive: true });
    cmds.push(`mount --bind ${join(nodeDir, sub)} ${path}`);
  }
  for (const [key, value] of Object.entries(KUBELET_SYSCTLS)) {
    const f = join(sysctlDir, key.replace("/", "."));
    writeFileSync(f, `${value}\n`);
    cmds.push(`mount --bind ${f} /proc/sys/${key}`);
  }
  await exec(["unshare", `--mount=${file}`, "--propagation", "slave", "sh", "-ec", cmds.join("; ")]);
  return file;
}

/** Drops every node mount namespace of a lab (its processes must be gone first), then the ns dir. */
export async function removeMountNamespaces(labDir: string): Promise<void> {
  const dir = join(labDir, "mnt");
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) await exec(["umount", join(dir, f)], { allowFailure: true });
  await exec(["umount", dir], { allowFailure: true });
  nsDirs.delete(labDir);
}
