import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { exec } from "../../lib/kernel/exec.ts";
import { REPO } from "./report.ts";

/**
 * Builds the CNI plugin as a Node single-executable application (bundle with
 * Bun for Node, a SEA blob with code cache, injected by postject) — the
 * alternative to the shipped Bun binary, built only to be measured.
 */
export async function buildNodeSea(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const bun = join(REPO, "node_modules/@oven/bun-linux-x64/bin/bun");
  const bundle = join(dir, "twill.cjs");
  await exec([bun, "build", "--target=node", "--format=cjs", "--minify", join(REPO, "cni/main.ts"), "--outfile", bundle]);
  const seaConfig = join(dir, "sea.json");
  const blob = join(dir, "sea.blob");
  writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
  await exec([process.execPath, "--experimental-sea-config", seaConfig]);
  const bin = join(dir, "twill");
  copyFileSync(process.execPath, bin);
  await exec([join(REPO, "node_modules/.bin/postject"), bin, "NODE_SEA_BLOB", blob, "--sentinel-fuse", "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"]);
  return bin;
}
