import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { processAlive } from "../process.ts";
import { containerdPaths, importImage, startContainerd, writeContainerdConfig } from "./containerd.ts";

// Every lab node's containerd starts with the lab's images already in its
// store, as a node booted from an image with preloaded images does (kind's
// nodes work that way). Importing the ~400 MB of archives into each node's
// containerd was most of a cluster lab's start-up (three nodes side by side:
// ~20 s of hashing, copying and unpacking on two cores), so it happens once:
// a seed containerd imports them into a root of its own, is stopped, and that
// root is kept in the machine's cache under a key of the images' manifest
// digests. A node's root is then a hard-linked copy of the seed: content blobs
// and unpacked layers are never written in place (layers are overlayfs lower
// directories; a container's changes go to its own upper directory), while the
// two bolt databases, which containerd does write, are real copies.

const CACHE = join(process.env.TWILL_CACHE_DIR ?? "/var/cache/twill", "containerd-seed");
/** Bump when what a seed holds changes shape (containerd's config, the snapshotter). */
const SEED_FORMAT = 1;
/** Seeds kept besides the one in use; each is a few hundred MB (a changed daemon is a new Twill image). */
const KEEP = 3;

/** The manifest digest an OCI archive (lab/kubelet/images.ts ociArchive) names in its index.json. */
export function archiveDigest(archive: string): string {
  const fd = openSync(archive, "r");
  try {
    for (let off = 0; ; ) {
      const h = Buffer.alloc(512);
      if (readSync(fd, h, 0, 512, off) < 512 || h[0] === 0) break;
      const name = h.toString("utf8", 0, 100).replace(/\0.*$/s, "");
      const size = parseInt(h.toString("utf8", 124, 136).replace(/\0.*$/s, "").trim() || "0", 8);
      if (name === "index.json") {
        const data = Buffer.alloc(size);
        readSync(fd, data, 0, size, off + 512);
        const index = JSON.parse(data.toString("utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
        return index.manifests.map((m) => `${m.annotations?.["io.containerd.image.name"] ?? ""}@${m.digest}`).join(",");
      }
      off += 512 + Math.ceil(size / 512) * 512;
    }
  } finally {
    closeSync(fd);
  }
  throw new TwillError("LAB_IMAGE_SEED", `${archive} holds no index.json`);
}

export function seedKey(archives: string[]): string {
  const ids = archives.map(archiveDigest).sort();
  return createHash("sha256").update(JSON.stringify({ SEED_FORMAT, ids })).digest("hex").slice(0, 16);
}


/** Drops the oldest seeds beyond KEEP (never `keep`), and builds whose lab process died. */
function prune(keep: string): void {
  for (const d of readdirSync(CACHE).filter((d) => d.startsWith(".build-"))) {
    if (!processAlive(Number(d.split("-").pop()))) rmSync(join(CACHE, d), { recursive: true, force: true });
  }
  const seeds = readdirSync(CACHE)
    .filter((d) => !d.startsWith(".") && d !== keep)
    .map((d) => ({ d, t: statSync(join(CACHE, d)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { d } of seeds.slice(KEEP)) rmSync(join(CACHE, d), { recursive: true, force: true });
}

/**
 * The seed root for these archives, made (in the given node's namespaces: unpacking mounts) when the cache has
 * none. Several labs at once may make the same seed; each builds in its own directory and the first rename wins.
 */
export async function seedRoot(archives: string[], netns: string, mountNs: string, log: (m: string) => void): Promise<string> {
  const key = seedKey(archives);
  const dir = join(CACHE, key);
  mkdirSync(CACHE, { recursive: true });
  const root = containerdPaths(dir).root;
  if (existsSync(root)) {
    const now = new Date();
    utimesSync(dir, now, now);
    return root;
  }
  const t0 = performance.now();
  const tmp = join(CACHE, `.build-${key}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  const p = writeContainerdConfig(tmp);
  const proc = await startContainerd(netns, mountNs, p, join(tmp, "containerd.log"), "the image seed");
  try {
    await Promise.all(archives.map((a) => importImage(p, a, mountNs, netns)));
  } finally {
    // A clean stop closes the databases; nothing ran, so there are no shims or mounts to wait for.
    process.kill(proc.pid, "SIGTERM");
    const deadline = Date.now() + 10_000;
    while (!proc.exited() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!proc.exited()) process.kill(proc.pid, "SIGKILL");
  }
  try {
    renameSync(tmp, dir);
  } catch {
    // Another lab's seed for the same images won.
    rmSync(tmp, { recursive: true, force: true });
  }
  prune(key);
  log(`images imported once into a seed containerd (${((performance.now() - t0) / 1000).toFixed(1)} s), cached in ${dir}`);
  return root;
}

/** A node's containerd root as a copy of the seed: hard links for blobs and layers, real copies of the databases. */
export async function cloneSeed(seed: string, nodeDir: string): Promise<void> {
  const root = containerdPaths(nodeDir).root;
  rmSync(root, { recursive: true, force: true });
  await exec(["cp", "-al", seed, root]);
  for (const db of ["io.containerd.metadata.v1.bolt/meta.db", "io.containerd.snapshotter.v1.overlayfs/metadata.db"]) {
    if (existsSync(join(seed, db))) await exec(["cp", "--remove-destination", join(seed, db), join(root, db)]);
  }
}
