import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec } from "../../../lib/kernel/exec.ts";
import { addNetns, deleteNetns } from "../../../lib/kernel/netns.ts";

// A throwaway L2 segment for BGP tests: one namespace holding a bridge and one
// namespace per node, joined by veths, 10.77.0.N/24 on each node. Nothing is
// created in the machine's own namespace; close() removes everything.

export interface Lan {
  /** Namespace name of node i (1-based, its address is 10.77.0.i). */
  ns(i: number): string;
  addr(i: number): string;
  dir: string;
  close(): Promise<void>;
}

export async function createLan(nodes: number): Promise<Lan> {
  const tag = `twbgp${randomBytes(3).toString("hex")}`;
  const sw = `${tag}-sw`;
  const names = Array.from({ length: nodes }, (_, i) => `${tag}-n${i + 1}`);
  const dir = mkdtempSync(join(tmpdir(), `${tag}-`));
  // Daemons that drop privileges (FRR runs as frr) read their config from here.
  chmodSync(dir, 0o755);
  const lan: Lan = {
    ns: (i) => names[i - 1]!,
    addr: (i) => `10.77.0.${i}`,
    dir,
    close: async () => {
      for (const n of [...names, sw]) await deleteNetns(n);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await addNetns(sw);
    await exec(["ip", "-n", sw, "link", "add", "br0", "type", "bridge"]);
    await exec(["ip", "-n", sw, "link", "set", "br0", "up"]);
    for (const [i, n] of names.entries()) {
      await addNetns(n);
      // Created inside the switch namespace, one end then moved: never in the root namespace.
      await exec(["ip", "-n", sw, "link", "add", `p${i + 1}`, "type", "veth", "peer", "name", "eth0", "netns", n]);
      await exec(["ip", "-n", sw, "link", "set", `p${i + 1}`, "master", "br0", "up"]);
      await exec(["ip", "-n", n, "addr", "add", `${lan.addr(i + 1)}/24`, "dev", "eth0"]);
      await exec(["ip", "-n", n, "link", "set", "eth0", "up"]);
    }
  } catch (err) {
    await lan.close();
    throw err;
  }
  return lan;
}

/** Polls `probe` until it returns a value other than undefined; the limit only bounds a hang. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, limitMs = 60_000): Promise<T> {
  const end = Date.now() + limitMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
