import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { allocate, collectGarbage, release } from "../../cni/ipam/allocator.ts";
import { parseRange } from "../../cni/ipam/ranges.ts";
import { IpamStore } from "../../lib/ipam/store.ts";

// The IPAM store on a real directory: the owner index is written before each
// record, so DEL reads no other record; what has no index entry is still found.

const root = mkdtempSync(join(tmpdir(), "cni-store-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const cfg = () => ({ rangeSets: [[parseRange({ subnet: "10.77.0.0/29" })]], routes: [], dataDir: join(root, `net${n++}`) });
const records = (dir: string) => readdirSync(dir).filter((f) => /^\d/.test(f)).sort();

describe("IPAM store", () => {
  it("each claim leaves an index entry, and release frees exactly the attachment's addresses", () => {
    const c = cfg();
    const a = allocate(c, "ca", "eth0")[0]!.ip;
    const b = allocate(c, "ca", "net1")[0]!.ip;
    expect(a).not.toBe(b);
    expect(readdirSync(c.dataDir).filter((f) => f.startsWith(".owner."))).toHaveLength(2);
    expect(release(c, "ca", "net1")).toEqual([b]);
    expect(records(c.dataDir)).toEqual([a]);
  });

  it("a record without an index entry (a host-local directory adopted) is still found and freed", () => {
    const c = cfg();
    new IpamStore(c.dataDir);
    writeFileSync(join(c.dataDir, "10.77.0.3"), "adopted\neth0");
    expect(release(c, "adopted", "eth0")).toEqual(["10.77.0.3"]);
    expect(records(c.dataDir)).toEqual([]);
  });

  it("after a collision the taken addresses are skipped and the range is still used to its end", () => {
    const c = cfg();
    new IpamStore(c.dataDir);
    // Taken by someone the hint does not know about.
    for (const ip of ["10.77.0.1", "10.77.0.2", "10.77.0.4"]) writeFileSync(join(c.dataDir, ip), `other\neth0`);
    const got = ["p1", "p2", "p3"].map((id) => allocate(c, id, "eth0")[0]!.ip);
    expect(got).toEqual(["10.77.0.3", "10.77.0.5", "10.77.0.6"]);
    expect(() => allocate(c, "p4", "eth0")).toThrow(/no free address/);
  });

  it("GC drops the index entries of attachments it frees and keeps the valid ones'", () => {
    const c = cfg();
    allocate(c, "keep", "eth0");
    allocate(c, "drop", "eth0");
    collectGarbage(c, new Set(["keep/eth0"]));
    expect(readdirSync(c.dataDir).filter((f) => f.startsWith(".owner."))).toHaveLength(1);
    expect(records(c.dataDir)).toHaveLength(1);
  });
});
