import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { EXIT } from "../../lib/ctl-api.ts";
import { exec } from "../../lib/kernel/exec.ts";

// The built executable's command line, without a daemon: every command's
// --help, the plugin name kubectl runs it by, and usage errors' exit code.

const DIST = join(resolve(import.meta.dirname, "../.."), "dist/ctl");
const run = (bin: string, args: string[]) => exec([join(DIST, bin), ...args], { allowFailure: true });
const COMMANDS = ["status", "ipam", "ipam gc", "routes", "peers", "policy explain", "trace", "drops"];

describe("twillctl command line", () => {
  it("--help on every command: its usage and options, exit 0", async () => {
    const overview = await run("twillctl", ["--help"]);
    expect(overview.code).toBe(EXIT.OK);
    for (const c of COMMANDS) {
      expect(overview.stdout).toContain(`  ${c} `);
      const r = await run("twillctl", [...c.split(" "), "--help"]);
      expect(r.code, c).toBe(EXIT.OK);
      expect(r.stdout.split("\n")[0]).toMatch(new RegExp(`^twillctl ${c}( |$)`));
      expect(r.stdout).toContain("--output table|json|yaml");
    }
  });

  it("answers to kubectl's plugin name", async () => {
    expect((await run("kubectl-twill", ["--version"])).stdout.trim()).toMatch(/^kubectl twill \d+\.\d+\.\d+$/);
  });

  it("usage errors are exit 2 with the reason on stderr and nothing on stdout", async () => {
    for (const args of [["statsu"], ["status", "--bogus"], ["status", "-o", "xml"], ["trace", "a/b", "c/d", "99999/tcp"], ["policy", "explain", "10.0.0.1", "a/b", "80"]]) {
      const r = await run("twillctl", args);
      expect(r.code, args.join(" ")).toBe(EXIT.USAGE);
      expect(r.stderr).toMatch(/^twillctl: /);
      expect(r.stdout).toBe("");
    }
  });
});
