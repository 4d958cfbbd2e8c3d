import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LeftOutLog } from "../../daemon/cluster/left-out.ts";
import { createLogger } from "../../lib/log.ts";

const dir = mkdtempSync(join(tmpdir(), "twill-left-out-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("left-out log", () => {
  it("logs a node when it drops out, again only when its reason changes, and once when it is back", () => {
    const file = join(dir, "log");
    const log = createLogger({ name: "t", file });
    const lines = () => readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { level: number; msg: string; node: string; code?: string });
    const left = new LeftOutLog();
    const clash = { code: "VTEP_MAC_CONFLICT", reason: "node b's MAC is node a's" };
    for (let pass = 0; pass < 3; pass++) left.update(new Map([["b", clash]]), log);
    expect(lines().map((l) => [l.node, l.code, l.msg])).toEqual([["b", "VTEP_MAC_CONFLICT", clash.reason]]);
    left.update(new Map([["b", { code: "NODE_BAD_ANNOTATION", reason: "not a MAC" }]]), log);
    left.update(new Map(), log);
    left.update(new Map(), log);
    expect(lines().map((l) => [l.node, l.code, l.msg])).toEqual([
      ["b", "VTEP_MAC_CONFLICT", clash.reason],
      ["b", "NODE_BAD_ANNOTATION", "not a MAC"],
      ["b", undefined, "node no longer left out"],
    ]);
    expect(lines().map((l) => l.level)).toEqual([40, 40, 30]);
  });
});
