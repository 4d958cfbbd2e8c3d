import { execFileSync } from "node:child_process";
import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ociArchive, tar, type Entry } from "./images.ts";

// The Twill image, built by the lab from this checkout with no registry and
// no container engine — the same layout as the Containerfile: the pinned Node
// 24 at /opt/twill/node/bin/node, the daemon's TypeScript and production
// node_modules under /opt/twill, the CNI executable at /opt/twill/bin/twill,
// and `ip`, `bridge` and `nft` with the shared libraries they (and node) load, copied
// from this machine (Debian, like the Containerfile's base).

const REPO = resolve(import.meta.dirname, "../..");
/**
 * The checkout whose node_modules this one uses: a git worktree may link to another's, and npm only reads a
 * consistent tree where node_modules really is (from the link it reported the whole tree extraneous and failed).
 */
const MODULES_ROOT = dirname(realpathSync(join(REPO, "node_modules")));

/**
 * The lab's name for its image. Not the manifest's: the lab installs through
 * an overlay that swaps the image (docs/install.md), and kubelet, finding no
 * image under the manifest's name, would try to pull one and fail — so a
 * broken override stops the lab.
 */
export const LAB_TWILL_IMAGE = "docker.io/twill-lab/twill:dev";

/** Every file and symlink under `hostDir`, placed at `imageDir` (skipping what `skip` rejects). */
function tree(hostDir: string, imageDir: string, skip: (rel: string) => boolean = () => false): Entry[] {
  const out: Entry[] = [{ name: `${imageDir}/`, type: "dir", mode: 0o755 }];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      const rel = relative(hostDir, p);
      if (skip(rel)) continue;
      const st = lstatSync(p);
      const name = `${imageDir}/${rel}`;
      if (st.isSymbolicLink()) out.push({ name, type: "symlink", mode: 0o777, target: readlinkSync(p) });
      else if (st.isDirectory()) {
        out.push({ name: `${name}/`, type: "dir", mode: 0o755 });
        walk(p);
      } else if (st.isFile()) out.push({ name, type: "file", mode: st.mode & 0o777, data: readFileSync(p) });
    }
  };
  walk(hostDir);
  return out;
}

/** A file copied from the machine to the same path in the image (symlinks resolved). */
function hostFile(path: string): Entry {
  return { name: path.replace(/^\//, ""), type: "file", mode: 0o755, data: readFileSync(realpathSync(path)) };
}

/** Shared libraries a program loads, as ldd resolves them here. */
function libraries(program: string): string[] {
  const out = execFileSync("ldd", [program], { encoding: "utf8" });
  return [...out.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
}

/** Directories the production dependency tree lives in (npm's own view, dev dependencies left out). */
function productionModules(): string[] {
  const out = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: MODULES_ROOT, encoding: "utf8" });
  return out.split("\n").filter((p) => p.startsWith(join(MODULES_ROOT, "node_modules") + "/"));
}

export function twillImageLayer(): Buffer {
  const node = realpathSync(join(REPO, "node_modules/.bin/node"));
  // Every program the daemon executes (daemon/, lib/: ip, bridge for the VXLAN FDB, nft).
  const tools = ["/usr/sbin/ip", "/usr/sbin/bridge", "/usr/sbin/nft", "/usr/sbin/conntrack"];
  const programs = [node, ...tools];
  const libs = [...new Set(programs.flatMap(libraries))];
  const dirs = ["usr/", "usr/sbin/", "lib/", "lib/x86_64-linux-gnu/", "lib64/", "etc/", "tmp/", "run/", "var/", "opt/", "opt/twill/", "opt/twill/node/", "opt/twill/node/bin/", "opt/twill/bin/"];
  const entries: Entry[] = [
    ...dirs.map((name) => ({ name, type: "dir" as const, mode: name === "tmp/" ? 0o1777 : 0o755 })),
    ...libs.map(hostFile),
    ...tools.map(hostFile),
    { name: "opt/twill/node/bin/node", type: "file", mode: 0o755, data: readFileSync(node) },
    { name: "opt/twill/bin/twill", type: "file", mode: 0o755, data: readFileSync(join(REPO, "dist/cni/twill")) },
    { name: "opt/twill/package.json", type: "file", mode: 0o644, data: readFileSync(join(REPO, "package.json")) },
    { name: "etc/passwd", type: "file", mode: 0o644, data: Buffer.from("root:x:0:0:root:/root:/bin/sh\n") },
    ...tree(join(REPO, "daemon"), "opt/twill/daemon"),
    ...tree(join(REPO, "lib"), "opt/twill/lib"),
    { name: "opt/twill/node_modules/", type: "dir", mode: 0o755 },
  ];
  const modules = productionModules();
  const seen = new Set<string>();
  for (const m of modules) {
    const rel = relative(join(MODULES_ROOT, "node_modules"), m);
    // A scope directory (@kubernetes) first, then each package once.
    if (rel.startsWith("@") && !seen.has(rel.split("/")[0]!)) {
      seen.add(rel.split("/")[0]!);
      entries.push({ name: `opt/twill/node_modules/${rel.split("/")[0]}/`, type: "dir", mode: 0o755 });
    }
    if (seen.has(rel)) continue;
    seen.add(rel);
    // Nested node_modules are listed by npm on their own.
    entries.push(...tree(m, `opt/twill/node_modules/${rel}`, (r) => r === "node_modules" || r.startsWith("node_modules/")));
  }
  return tar(entries);
}

/** Writes the Twill image (OCI layout tar) into `dir`; returns its path and name. */
export function writeTwillImage(dir: string): { path: string; name: string } {
  const name = LAB_TWILL_IMAGE;
  const path = join(dir, "twill.oci.tar");
  writeFileSync(
    path,
    ociArchive(
      { name, entrypoint: ["/opt/twill/node/bin/node", "/opt/twill/daemon/main.ts"], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"] },
      twillImageLayer(),
    ),
  );
  return { path, name };
}
