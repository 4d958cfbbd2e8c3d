// Run by bench/cni.ts under Bun (node has no wait4): executes each plugin
// call it is sent and answers with the wall-clock time and the CPU time of
// the call's whole process tree. The rusage wait4(2) returns for a child
// counts the child and every descendant it waited for (a CNI plugin waits
// for the IPAM and delegate plugins it runs), which is the plugin's cost as
// a runtime pays it. One JSON line per request on stdin, one per answer on
// stdout; calls run concurrently.

// The part of Bun's API used here (the project's types are Node's).
interface BunChild {
  stdout: ReadableStream<Uint8Array>;
  exited: Promise<number>;
  resourceUsage(): { cpuTime: { user: bigint; system: bigint } } | undefined;
}
declare const Bun: {
  spawn(argv: string[], o: { env: Record<string, string>; stdin: Uint8Array; stdout: "pipe"; stderr: "ignore" }): BunChild;
  stdin: { stream(): AsyncIterable<Uint8Array> };
};

interface Call {
  id: number;
  argv: string[];
  env: Record<string, string>;
  input: string;
}

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");

async function run(c: Call): Promise<void> {
  const t0 = performance.now();
  const p = Bun.spawn(c.argv, { env: c.env, stdin: new TextEncoder().encode(c.input), stdout: "pipe", stderr: "ignore" });
  const stdout = await new Response(p.stdout).text();
  const code = await p.exited;
  const wallMs = performance.now() - t0;
  const cpu = p.resourceUsage()?.cpuTime;
  out({ id: c.id, code, stdout, wallMs, userMs: Number(cpu?.user ?? 0n) / 1000, sysMs: Number(cpu?.system ?? 0n) / 1000 });
}

let buf = "";
for await (const chunk of Bun.stdin.stream()) {
  buf += new TextDecoder().decode(chunk);
  for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (line.trim()) void run(JSON.parse(line) as Call).catch((err: unknown) => out({ id: (JSON.parse(line) as Call).id, code: -1, stdout: String(err), wallMs: 0, userMs: 0, sysMs: 0 }));
  }
}
