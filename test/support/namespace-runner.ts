import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { exec } from "../../lib/kernel/exec.ts";
import { addNetns, deleteNetns } from "../../lib/kernel/netns.ts";

// A namespace of the test's own with a veth pair made inside it (the first
// end addressed, both up), and a runner script started in it that answers
// each JSON line on its stdin with one JSON line: kernel code exercised in
// the namespace, asked from the test. A failed set-up removes what it made.

export interface NamespaceRunner<Q, A> {
  ask(q: Q): Promise<A>;
  close(): Promise<void>;
}

export async function startNamespaceRunner<Q, A>(ns: string, veth: [string, string], address: string, script: string): Promise<NamespaceRunner<Q, A>> {
  await addNetns(ns);
  try {
    await exec(["ip", "-n", ns, "link", "add", veth[0], "type", "veth", "peer", "name", veth[1]]);
    await exec(["ip", "-n", ns, "addr", "add", address, "dev", veth[0]]);
    for (const d of veth) await exec(["ip", "-n", ns, "link", "set", d, "up"]);
  } catch (err) {
    await deleteNetns(ns);
    throw err;
  }
  const runner = startRunnerIn<Q, A>(ns, script);
  return {
    ask: (q) => runner.ask(q),
    async close() {
      await runner.close();
      await deleteNetns(ns);
    },
  };
}

/** The runner script alone, in a namespace the test built itself (closing it leaves the namespace). */
export function startRunnerIn<Q, A>(ns: string, script: string): NamespaceRunner<Q, A> {
  const proc = spawn("ip", ["netns", "exec", ns, process.execPath, script]);
  const rl = createInterface({ input: proc.stdout });
  const lines = rl[Symbol.asyncIterator]();
  return {
    async ask(q) {
      proc.stdin.write(`${JSON.stringify(q)}\n`);
      const next = await lines.next();
      if (next.done) throw new Error(`${script} ended without answering`);
      return JSON.parse(next.value) as A;
    },
    async close() {
      rl.close();
      proc.kill();
    },
  };
}
