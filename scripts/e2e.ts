// npm run e2e [-- --focus REGEX] [--skip REGEX] [--backend vxlan|host-gw|bgp] [--proxy kube-proxy|twill] [--proxy-mode nftables|iptables] [--nodes N]
// Upstream's network e2e specs against a fresh real-cluster lab (docs/e2e.md):
// streams each spec as it finishes, ends with one line "N passed, N failed,
// N skipped", records the results in bench-results/e2e.json and docs/e2e.md,
// exits non-zero when any spec failed or did not run.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { destroyLab, type Backend } from "../lab/lab.ts";
import { DEFAULT_FOCUS, DEFAULT_SKIP } from "../lab/e2e/suites.ts";
import { mergeResults, readResults, updateDoc, writeResults } from "../lab/e2e/results.ts";
import { summaryLine } from "../lab/e2e/report.ts";
import { runUpstreamE2e, type ProxyMode } from "../lab/e2e/run.ts";

const REPO = resolve(import.meta.dirname, "..");
const say = (m: string) => console.log(`[e2e] ${m}`);

async function main(): Promise<number> {
  setInterval(() => {}, 2 ** 30); // the lab's handles are unref'd (see lab/main.ts)
  const { values } = parseArgs({
    options: {
      focus: { type: "string", default: DEFAULT_FOCUS },
      skip: { type: "string", default: DEFAULT_SKIP },
      backend: { type: "string", default: "vxlan" },
      "proxy-mode": { type: "string", default: "nftables" },
      // twill: no kube-proxy, the Twill daemon proxies Services.
      proxy: { type: "string", default: "kube-proxy" },
      nodes: { type: "string", default: "2" },
      "timeout-minutes": { type: "string", default: "180" },
      "no-record": { type: "boolean", default: false },
    },
  });
  const backend = values.backend as Backend;
  if (!["vxlan", "host-gw", "bgp"].includes(backend)) {
    console.error(`unknown backend "${backend}": use vxlan, host-gw or bgp`);
    return 2;
  }
  if (values.proxy !== "kube-proxy" && values.proxy !== "twill") {
    console.error(`unknown proxy "${values.proxy}": use kube-proxy or twill`);
    return 2;
  }
  const proxyMode = (values.proxy === "twill" ? "twill" : values["proxy-mode"]) as ProxyMode;
  if (!["nftables", "iptables", "twill"].includes(proxyMode)) {
    console.error(`unknown proxy mode "${proxyMode}": use nftables or iptables`);
    return 2;
  }
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 5) {
    console.error("--nodes takes 2 to 5 (the specs need two nodes; this machine has 2 cores)");
    return 2;
  }
  const abort = new AbortController();
  let labName: string | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say("stopping: ending e2e.test and tearing the lab down");
    abort.abort();
    // Still starting up: nothing else will remove it.
    setTimeout(async () => {
      if (labName) await destroyLab(labName).catch(() => {});
      process.exit(130);
    }, 15_000).unref();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const date = new Date().toISOString();
  try {
    const r = await runUpstreamE2e({
      focus: values.focus,
      skip: values.skip,
      backend,
      proxyMode,
      nodes,
      timeoutMinutes: Number(values["timeout-minutes"]),
      log: say,
      onName: (n) => (labName = n),
      onSpec: (s) => console.log(`${s.outcome === "passed" ? "✓" : s.outcome === "failed" ? "✗" : "-"} ${s.state.padEnd(7)} ${s.seconds.toFixed(1).padStart(7)} s  ${s.name}`),
      signal: abort.signal,
    });
    for (const s of r.specs.filter((x) => x.outcome === "failed")) console.log(`\nFAILED ${s.name}${s.state ? ` (${s.state})` : ""}\n${s.message ?? ""}`);
    if (r.missing.length) console.log(`\n${r.missing.length} selected specs have no result (the run stopped early):\n${r.missing.join("\n")}`);
    if (r.pulled.length) console.log(`\nspecs asked for images the lab does not build (containerd tried to pull them): ${r.pulled.join(", ")}`);
    if (!values["no-record"] && !stopping) {
      const file = resolve(REPO, "bench-results/e2e.json");
      const merged = mergeResults(readResults(file), r.specs, { date, backend, proxy: r.proxy, focus: values.focus, skip: values.skip, nodes, ...r.counts, seconds: Math.round(r.seconds) });
      writeResults(file, merged);
      updateDoc(resolve(REPO, "docs/e2e.md"), merged);
      say(`results in bench-results/e2e.json and docs/e2e.md (${Math.round(r.seconds)} s in all)`);
    }
    if (r.keptDir) say(`kept for the failures: ${r.keptDir} (e2e.log, report.json, lab-logs/)`);
    console.log(summaryLine(r.counts));
    return r.counts.failed === 0 && r.missing.length === 0 && r.pulled.length === 0 && r.exitCode === 0 ? 0 : 1;
  } catch (err) {
    console.error(`[e2e] failed: ${(err as Error).message}`);
    const details = (err as { details?: string }).details;
    if (details) console.error(details);
    return 1;
  }
}

process.exit(await main());
