import { spawn } from "node:child_process";
import { cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { TwillError } from "../../lib/errors.ts";
import { netnsPath } from "../../lib/kernel/netns.ts";
import type { ProxyMode } from "../addons/kube-proxy.ts";
import { startLab, type Backend, type LabState, type RunningLab } from "../lab.ts";
import { adminKubeconfig } from "../kube.ts";
import { CLUSTER_DOMAIN, CONTROL_PLANE_IP, routerNs } from "../names.ts";
import { writeE2eImages } from "../kubelet/e2e-images.ts";
import { routeControlPlaneToPods } from "./control-plane-routes.ts";
import { countOutcomes, dryRunSpecs, parseGinkgoReport, ProgressParser, type Counts, type Outcome, type SpecResult } from "./report.ts";

// Upstream's network e2e specs (lab/k8s/e2e, built as e2e.test) against a
// fresh real-cluster lab: kubelets + containerd, Twill as its DaemonSet,
// kube-proxy and CoreDNS, the specs' images imported into every node (no
// registry). The binary runs in
// the lab's router namespace — outside the cluster, as a CI runner is: it
// reaches the apiserver and the nodes over the underlay, never through this
// machine's own network namespace.

const REPO = resolve(import.meta.dirname, "../..");

export type { ProxyMode };

export interface E2eOptions {
  focus: string;
  skip?: string;
  backend: Backend;
  proxyMode: ProxyMode;
  nodes?: number;
  /** Ginkgo's whole-suite timeout. */
  timeoutMinutes?: number;
  log?: (m: string) => void;
  /** Each spec as it finishes (from the binary's verbose output). */
  onSpec?: (s: { name: string; outcome: Outcome; state: string; seconds: number }) => void;
  /** Told the lab's name as soon as it has one (to tear it down on a signal). */
  onName?: (lab: string) => void;
  /** Aborting stops the e2e binary; the lab is then torn down as after any run. */
  signal?: AbortSignal;
}

export interface E2eRun {
  lab: string;
  /** kube-proxy's mode in the lab. */
  proxy: ProxyMode;
  specs: SpecResult[];
  counts: Counts;
  /** How many specs the focus selected (the dry run's count): each must appear in `specs`. */
  expected: number;
  /** Names the focus selected that have no result (the binary stopped early). */
  missing: string[];
  /** Images some node's containerd was asked to pull (each a spec's image the lab does not build): must be empty. */
  pulled: string[];
  /** Where the e2e log, ginkgo's report and (on failure) the lab's logs are kept; removed when all passed. */
  keptDir?: string;
  exitCode: number;
  seconds: number;
}

/** The cached control-plane build with kubelet, add-ons and e2e.test (scripts/build-controlplane.sh). */
export function e2eBinaries(log: (m: string) => void): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn("bash", [join(REPO, "scripts/build-controlplane.sh")], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TWILL_BUILD_KUBELET: "1", TWILL_BUILD_E2E: "1" } });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => d.split("\n").filter(Boolean).forEach((l) => log(l.replace(/^\[lab\] /, ""))));
    child.on("error", fail);
    child.on("close", (code) => (code === 0 ? done(out.trim()) : fail(new TwillError("E2E_BUILD", "building the control plane and e2e.test failed"))));
  });
}

/** The kubeconfig e2e.test reads: the apiserver's underlay address, as admin (client certificate). */
export function e2eKubeconfig(s: LabState): string {
  return adminKubeconfig(s, `https://${CONTROL_PLANE_IP}:6443`);
}

/** The flags e2e.test runs with (test/e2e/framework/test_context.go). */
export function e2eArgs(o: { bin: string; kubeconfig: string; focus: string; skip?: string; report: string; outputDir: string; timeoutMinutes: number; dryRun?: boolean }): string[] {
  return [
    `--kubeconfig=${o.kubeconfig}`,
    // skeleton: no cloud, no SSH; specs needing either skip themselves.
    "--provider=skeleton",
    `--kubectl-path=${join(o.bin, "kubectl")}`,
    `--dns-domain=${CLUSTER_DOMAIN}`,
    "--allowed-not-ready-nodes=0",
    `--e2e-output-dir=${o.outputDir}`,
    `--ginkgo.focus=${o.focus}`,
    ...(o.skip ? [`--ginkgo.skip=${o.skip}`] : []),
    `--ginkgo.json-report=${o.report}`,
    `--ginkgo.timeout=${o.timeoutMinutes}m`,
    "--ginkgo.v",
    "--ginkgo.no-color",
    ...(o.dryRun ? ["--ginkgo.dry-run"] : []),
  ];
}

function runProcess(argv: string[], opts: { cwd: string; log: string; onLine?: (l: string) => void; signal?: AbortSignal }): Promise<number> {
  return new Promise((done, fail) => {
    const out = createWriteStream(opts.log, { flags: "a" });
    const child = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const abort = () => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // gone already
      }
    };
    opts.signal?.addEventListener("abort", abort, { once: true });
    for (const stream of [child.stdout, child.stderr]) {
      stream.pipe(out, { end: false });
      if (opts.onLine) createInterface({ input: stream }).on("line", opts.onLine);
    }
    child.on("error", fail);
    child.on("close", (code, sig) => {
      opts.signal?.removeEventListener("abort", abort);
      out.end(() => done(code ?? (sig ? 128 : 1)));
    });
  });
}

/** The specs a focus/skip selects, from a dry run in a network namespace of its own (it opens no connection). */
export async function selectedSpecs(bin: string, focus: string, skip: string | undefined, dir: string): Promise<{ name: string; labels: string[] }[]> {
  const report = join(dir, "dry-run.json");
  const args = e2eArgs({ bin, kubeconfig: "/dev/null", focus, ...(skip ? { skip } : {}), report, outputDir: dir, timeoutMinutes: 5, dryRun: true });
  const code = await runProcess(["unshare", "--net", join(bin, "e2e.test"), ...args], { cwd: dir, log: join(dir, "dry-run.log") });
  if (!existsSync(report)) throw new TwillError("E2E_DRY_RUN", `e2e.test --ginkgo.dry-run failed (exit ${code}); see ${join(dir, "dry-run.log")}`);
  return dryRunSpecs(readFileSync(report, "utf8"));
}

/** Every image a node's containerd was asked to pull (its log says `PullImage "NAME"`): the lab imports all it runs. */
export function pulledImages(s: LabState): string[] {
  const names = new Set<string>();
  for (const n of s.nodes) {
    const log = n.kubelet?.containerdLog;
    if (!log || !existsSync(log)) continue;
    for (const m of readFileSync(log, "utf8").matchAll(/PullImage \\"([^"\\]+)\\""/g)) names.add(m[1]!);
  }
  return [...names].sort();
}

/** The lab's logs (control plane, per node: kubelet, containerd, CNI, containers) copied to `dest`. */
export function keepLabLogs(s: LabState, dest: string): void {
  mkdirSync(dest, { recursive: true });
  if (existsSync(join(s.dir, "logs"))) cpSync(join(s.dir, "logs"), join(dest, "control-plane"), { recursive: true });
  const nodes = join(s.dir, "nodes");
  for (const n of existsSync(nodes) ? readdirSync(nodes) : []) {
    const d = join(nodes, n);
    for (const f of readdirSync(d).filter((f) => f.endsWith(".log"))) cpSync(join(d, f), join(dest, `${n}-${f}`));
    for (const sub of ["pod-logs", "log-twill"]) if (existsSync(join(d, sub))) cpSync(join(d, sub), join(dest, `${n}-${sub}`), { recursive: true, dereference: true });
  }
}

export async function runUpstreamE2e(o: E2eOptions): Promise<E2eRun> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const timeoutMinutes = o.timeoutMinutes ?? 180;
  const bin = await e2eBinaries(log);
  const work = mkdtempSync(join(tmpdir(), "twill-e2e-"));
  const selected = await selectedSpecs(bin, o.focus, o.skip, work);
  if (selected.length === 0) throw new TwillError("E2E_NO_SPECS", `no spec matches --focus ${JSON.stringify(o.focus)}${o.skip ? ` --skip ${JSON.stringify(o.skip)}` : ""}`);
  log(`${selected.length} specs selected; starting a ${o.nodes ?? 2}-node lab (kubelet, Twill DaemonSet, backend ${o.backend}, ${o.proxyMode === "twill" ? "Twill's service proxy (no kube-proxy)" : `kube-proxy ${o.proxyMode}`}, CoreDNS, e2e images)`);
  let lab: RunningLab | undefined;
  try {
    // The specs' images, under upstream's names; the lab's image seed imports (and caches) them for every node.
    const images = join(work, "images");
    mkdirSync(images);
    const archive = writeE2eImages(images, bin);
    lab = await startLab({ nodes: o.nodes ?? 2, podsPerNode: 0, backend: o.backend, kubelet: true, daemonSet: true, extraImages: [archive], addons: { proxyMode: o.proxyMode }, log, ...(o.onName ? { onName: o.onName } : {}) });
    rmSync(images, { recursive: true, force: true });
    const s = lab.state;
    await routeControlPlaneToPods(s);
    const kubeconfig = join(work, "e2e.kubeconfig");
    writeFileSync(kubeconfig, e2eKubeconfig(s), { mode: 0o600 });
    const report = join(work, "report.json");
    const e2eLog = join(work, "e2e.log");
    log(`lab ${s.name} up; e2e.test runs in ${routerNs(s.name)} (log: ${e2eLog})`);
    const progress = new ProgressParser(selected.map((x) => x.name));
    const argv = ["nsenter", `--net=${netnsPath(routerNs(s.name))}`, join(bin, "e2e.test"), ...e2eArgs({ bin, kubeconfig, focus: o.focus, ...(o.skip ? { skip: o.skip } : {}), report, outputDir: work, timeoutMinutes })];
    const code = await runProcess(argv, {
      cwd: work,
      log: e2eLog,
      onLine: (l) => {
        const done = progress.line(l);
        if (done) o.onSpec?.(done);
      },
      ...(o.signal ? { signal: o.signal } : {}),
    });
    if (!existsSync(report)) throw new TwillError("E2E_NO_REPORT", `e2e.test exited ${code} without a report; its log is kept in ${e2eLog}`, readFileSync(e2eLog, "utf8").trim().split("\n").slice(-20).join("\n"));
    const parsed = parseGinkgoReport(readFileSync(report, "utf8"));
    const ran = new Set(parsed.specs.map((x) => x.name));
    const missing = selected.map((x) => x.name).filter((n) => !ran.has(n));
    const counts = countOutcomes(parsed.specs);
    const pulled = pulledImages(s);
    const ok = counts.failed === 0 && missing.length === 0 && pulled.length === 0 && code === 0;
    let keptDir: string | undefined;
    if (ok) rmSync(work, { recursive: true, force: true });
    else {
      keepLabLogs(s, join(work, "lab-logs"));
      keptDir = work;
    }
    return { lab: s.name, proxy: o.proxyMode, specs: parsed.specs, counts, expected: selected.length, missing, pulled, ...(keptDir ? { keptDir } : {}), exitCode: code, seconds: (performance.now() - t0) / 1000 };
  } catch (err) {
    log(`the e2e log and reports are kept in ${work}`);
    throw err;
  } finally {
    await lab?.close();
  }
}
