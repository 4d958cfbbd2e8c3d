import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NftSession } from "../../daemon/policy/nft-session.ts";
import { addNetns, deleteNetns, execIn } from "../../lib/kernel/netns.ts";

// The persistent nft session: one input line is one transaction (all or
// nothing), rejections are reported with nft's message, and the session
// carries on after one.

const ns = `twnfts${process.pid.toString(36)}`;
const session = new NftSession(ns);
const elements = async () => (await execIn(ns, ["nft", "list", "set", "inet", "t", "s"])).stdout;

beforeAll(async () => {
  await addNetns(ns);
  await execIn(ns, ["nft", "add table inet t; add set inet t s { type ipv4_addr; }"]);
});
afterAll(async () => {
  session.close();
  await deleteNetns(ns);
});

describe("nft session", () => {
  it("commits a multi-command transaction", async () => {
    await session.run("add element inet t s { 10.0.0.1 }\nadd element inet t s { 10.0.0.2 }");
    expect(await elements()).toMatch(/10\.0\.0\.1, 10\.0\.0\.2/);
  });

  it("rejects a transaction whole when one command fails, and keeps working", async () => {
    await expect(session.run("delete element inet t s { 10.0.0.1 }\nadd element inet t nosuchset { 10.0.0.3 }")).rejects.toThrow(/nft rejected/);
    expect(await elements()).toContain("10.0.0.1");
    // A kernel-side failure (deleting an element that is not there) also leaves everything as it was.
    await expect(session.run("add element inet t s { 10.0.0.4 }\ndelete element inet t s { 10.0.0.9 }")).rejects.toThrow(/nft rejected/);
    expect(await elements()).not.toContain("10.0.0.4");
    await session.run("delete element inet t s { 10.0.0.1 }");
    expect(await elements()).not.toContain("10.0.0.1");
  });
});
