import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// Each lab node's kubelet gets its own cgroup root, /<lab>/<node>, in every
// cgroup hierarchy of the machine (cgroup v1 controllers plus the empty v2
// `unified` mount of a hybrid host): several kubelets on one machine must not
// share one. Teardown kills whatever still runs in the lab's tree (pod
// processes live in pod netns the node teardown does not reach) and removes
// it, leaves first.

const CGROUP_FS = "/sys/fs/cgroup";

export function hierarchies(): string[] {
  if (!existsSync(CGROUP_FS)) return [];
  return readdirSync(CGROUP_FS)
    .map((d) => join(CGROUP_FS, d))
    .filter((p) => existsSync(join(p, "cgroup.procs")));
}

export const cgroupRoot = (lab: string, node: string) => `/${lab}/${node}`;

/** Creates /<lab>/<node> everywhere (kubelet refuses a cgroup root that does not exist). */
export function createCgroupRoot(lab: string, node: string): string {
  const root = cgroupRoot(lab, node);
  for (const h of hierarchies()) {
    let path = h;
    for (const part of root.split("/").filter(Boolean)) {
      const parent = path;
      path = join(path, part);
      if (existsSync(path)) continue;
      mkdirSync(path);
      // A new v1 cpuset starts with no CPUs and no memory nodes; a task can join it only once both are set.
      if (existsSync(join(path, "cpuset.cpus"))) {
        writeFileSync(join(path, "cpuset.cpus"), readFileSync(join(parent, "cpuset.cpus")));
        writeFileSync(join(path, "cpuset.mems"), readFileSync(join(parent, "cpuset.mems")));
      }
    }
  }
  return root;
}

function subtree(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    try {
      if (statSync(p).isDirectory()) out.push(...subtree(p), p);
    } catch {
      // removed meanwhile
    }
  }
  return out;
}

function pidsOf(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Kills every process under /<lab> and removes the lab's cgroups. Returns what could not be removed. */
export async function removeLabCgroups(lab: string): Promise<string[]> {
  const left: string[] = [];
  for (const h of hierarchies()) {
    const top = join(h, lab);
    if (!existsSync(top)) continue;
    const dirs = [...subtree(top), top];
    for (let round = 0; round < 50; round++) {
      const pids = dirs.flatMap(pidsOf);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const d of dirs) {
      try {
        rmdirSync(d);
      } catch {
        if (existsSync(d)) left.push(d);
      }
    }
  }
  return left;
}

/** Labs with a cgroup tree, for stale-lab cleanup. */
export function labsWithCgroups(prefix: string): string[] {
  const names = new Set<string>();
  for (const h of hierarchies()) for (const d of readdirSync(h)) if (d.startsWith(prefix)) names.add(d);
  return [...names];
}
