import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { netnsPath } from "../../lib/kernel/netns.ts";
import { startIn, tail, type LabProcess } from "../process.ts";
import { PAUSE_IMAGE } from "./images.ts";

// One containerd per kubelet node, in the node's network and mount
// namespaces, with everything it owns under the node's directory: root, state,
// socket, runc's state. Its CRI plugin finds the CNI plugins and conflist in
// the node's own directories, where `twill install` put them.

export interface ContainerdPaths {
  dir: string;
  config: string;
  socket: string;
  root: string;
  state: string;
  cniBin: string;
  cniConf: string;
}

export function containerdPaths(nodeDir: string): ContainerdPaths {
  const dir = join(nodeDir, "containerd");
  return {
    dir,
    config: join(dir, "config.toml"),
    socket: join(dir, "containerd.sock"),
    root: join(dir, "root"),
    state: join(dir, "state"),
    cniBin: join(nodeDir, "cni", "bin"),
    cniConf: join(nodeDir, "cni", "net.d"),
  };
}

export function containerdConfig(p: ContainerdPaths): string {
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return `version = 2
root = "${p.root}"
state = "${p.state}"
# Other snapshotters probe the machine's disks or are not built in.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${p.socket}"

[ttrpc]
  address = "${p.socket}.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(p.dir, "opt")}"

[${cri}]
  sandbox_image = "${PAUSE_IMAGE}"
  disable_apparmor = true
  enable_selinux = false
  # Pod netns files under the state dir, not the machine's /var/run/netns.
  netns_mounts_under_state_dir = true
  # This machine's processes lack CAP_SYS_RESOURCE (not even in the bounding set), so nothing may lower an
  # oom_score_adj: the sandbox's -998 made runc's init fail ("can't get final child's PID from pipe").
  # Restricted, scores never go below containerd's own.
  restrict_oom_score_adj = true

[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[${cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "${join(p.dir, "runc")}"

[${cri}.cni]
  bin_dir = "${p.cniBin}"
  conf_dir = "${p.cniConf}"
  max_conf_num = 1
`;
}

export function writeContainerdConfig(nodeDir: string): ContainerdPaths {
  const p = containerdPaths(nodeDir);
  for (const d of [p.dir, p.root, p.state, p.cniBin, p.cniConf]) mkdirSync(d, { recursive: true });
  writeFileSync(p.config, containerdConfig(p));
  return p;
}

/** Starts containerd in the node's namespaces; returns once its socket answers. */
export async function startContainerd(netns: string, mountNs: string, p: ContainerdPaths, log: string, name: string): Promise<LabProcess> {
  const proc = startIn(netns, `containerd on ${name}`, [`--mount=${mountNs}`, "containerd", "--config", p.config], log);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exited()) throw new TwillError("LAB_CONTAINERD", `containerd on ${name} exited during start-up; see ${log}`, tail(log));
    if (existsSync(p.socket)) {
      const r = await ctr(p, ["version"], true);
      if (r.code === 0) return proc;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new TwillError("LAB_CONTAINERD", `containerd on ${name} did not answer on ${p.socket} within 30 s`, tail(log));
}

/** Runs `ctr` against a node's containerd, in the CRI's namespace. */
export function ctr(p: ContainerdPaths, args: string[], allowFailure = false) {
  return exec(["ctr", "-a", p.socket, "-n", "k8s.io", ...args], { allowFailure });
}

export async function importImage(p: ContainerdPaths, archive: string, mountNs: string, netns: string): Promise<void> {
  // Unpacking mounts the snapshot: it must happen in the node's mount namespace.
  const r = await exec(["nsenter", `--net=${netnsPath(netns)}`, `--mount=${mountNs}`, "ctr", "-a", p.socket, "-n", "k8s.io", "images", "import", archive], { allowFailure: true });
  if (r.code !== 0) throw new TwillError("LAB_IMAGE_IMPORT", `importing ${archive} into containerd failed`, r.stderr || r.stdout);
}
