import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TWILL_BIN } from "../support/cni.ts";

// The DaemonSet's install step, run as the program it is.

const root = mkdtempSync(join(tmpdir(), "twill-install-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dirs = () => {
  n += 1;
  return { bin: join(root, `bin${n}`), conf: join(root, `conf${n}`) };
};

function installSync(args: string[]) {
  return spawnSync(TWILL_BIN, ["install", ...args], { encoding: "utf8", env: { PATH: process.env.PATH } });
}

/** What a runtime would load: files ending in .conf, .conflist or .json. */
function loadable(dir: string): string[] {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return []; // killed before it even made the directory
  }
  return files.filter((f) => /\.(conf|conflist|json)$/.test(f));
}

describe("twill install", () => {
  it("installs the plugin, twill-ipam and a valid conflist into empty directories", () => {
    const d = dirs();
    const r = installSync(["--bin-dir", d.bin, "--conf-dir", d.conf]);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(d.bin).sort()).toEqual(["twill", "twill-ipam"]);
    const version = spawnSync(join(d.bin, "twill-ipam"), [], { env: { CNI_COMMAND: "VERSION" }, input: "{}", encoding: "utf8" });
    expect(JSON.parse(version.stdout).supportedVersions).toContain("1.1.0");
    const conf = JSON.parse(readFileSync(join(d.conf, "10-twill.conflist"), "utf8"));
    expect(conf.plugins[0]).toMatchObject({ type: "twill", ipam: { type: "twill-ipam" } });
    expect(loadable(d.conf)).toEqual(["10-twill.conflist"]);
  });

  it("upgrades over an older install, even while the old plugin is running", async () => {
    const d = dirs();
    mkdirSync(d.bin, { recursive: true });
    mkdirSync(d.conf, { recursive: true });
    writeFileSync(join(d.bin, "twill"), "#!/bin/sh\nsleep 3\n");
    chmodSync(join(d.bin, "twill"), 0o755);
    writeFileSync(join(d.conf, "10-twill.conflist"), '{"cniVersion":"0.4.0","name":"old","plugins":[{"type":"twill"}]}');
    const running = spawn(join(d.bin, "twill"));
    try {
      const custom = join(root, "custom.conflist");
      writeFileSync(custom, JSON.stringify({ cniVersion: "1.0.0", name: "twill", plugins: [{ type: "twill", mtu: 1400, ipam: { type: "twill-ipam" } }] }));
      const r = installSync(["--bin-dir", d.bin, "--conf-dir", d.conf, "--conflist", custom]);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(d.conf, "10-twill.conflist"), "utf8")).plugins[0].mtu).toBe(1400);
      expect(readFileSync(join(d.bin, "twill")).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    } finally {
      running.kill("SIGKILL");
    }
  });

  it("refuses an invalid conflist and changes nothing", () => {
    const d = dirs();
    const bad = join(root, "bad.conflist");
    writeFileSync(bad, JSON.stringify({ cniVersion: "1.0.0", name: "x", plugins: [{ type: "bridge" }] }));
    const r = installSync(["--bin-dir", d.bin, "--conf-dir", d.conf, "--conflist", bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("CONFLIST_INVALID");
    expect(() => readdirSync(d.conf)).toThrow();
  });

  it("an install killed at any point never leaves a partial conflist where a runtime would read it", async () => {
    const d = dirs();
    const big = join(root, "big.conflist");
    // Large enough that writing it takes a measurable moment.
    const conf = { cniVersion: "1.1.0", name: "twill", plugins: [{ type: "twill", ipam: { type: "twill-ipam" }, padding: "x".repeat(4_000_000) }] };
    writeFileSync(big, JSON.stringify(conf));
    let interrupted = 0;
    for (let i = 0; i < 12; i++) {
      const child = spawn(TWILL_BIN, ["install", "--bin-dir", d.bin, "--conf-dir", d.conf, "--conflist", big]);
      const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
      setTimeout(() => child.kill("SIGKILL"), 5 + i * 8);
      if ((await exited) === null) interrupted += 1;
      for (const f of loadable(d.conf)) {
        // Whatever a runtime can see is complete.
        expect(JSON.parse(readFileSync(join(d.conf, f), "utf8")).name).toBe("twill");
      }
    }
    expect(interrupted).toBeGreaterThan(0);
    // The next install sweeps the temp files killed runs left.
    expect(installSync(["--bin-dir", d.bin, "--conf-dir", d.conf]).status).toBe(0);
    expect(readdirSync(d.conf)).toEqual(["10-twill.conflist"]);
    expect(readdirSync(d.bin).sort()).toEqual(["twill", "twill-ipam"]);
  });

  it("uninstall removes what install put there", () => {
    const d = dirs();
    expect(installSync(["--bin-dir", d.bin, "--conf-dir", d.conf]).status).toBe(0);
    const r = spawnSync(TWILL_BIN, ["uninstall", "--bin-dir", d.bin, "--conf-dir", d.conf], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(d.bin)).toEqual([]);
    expect(readdirSync(d.conf)).toEqual([]);
  });
});
