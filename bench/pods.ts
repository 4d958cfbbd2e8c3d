// npm run bench:pods — pod churn through real kubelets: create and delete
// BENCH_PODS (200) Pod objects across the lab's kubelet nodes, BENCH_POD_PARALLEL
// (10) in flight at a time. Pod-ready latency is from the create request to the
// first Pod status showing Ready with an IP (the apiserver's watch); Twill's
// share of it is the plugin's own ADD time (processMs in its log line, from
// its process start to the attached pod), matched to the pod by address.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { CoreV1Api, Watch, type V1Pod } from "@kubernetes/client-node";
import { startLab } from "../lab/lab.ts";
import { kubeletPodSpec } from "../lab/kubelet/pods.ts";
import { updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { percentile, round } from "./support/stats.ts";

const PODS = Number(process.env.BENCH_PODS ?? 200);
const PARALLEL = Number(process.env.BENCH_POD_PARALLEL ?? 10);
const NODES = Number(process.env.BENCH_POD_NODES ?? 2);
const NS = "default";

interface AddLine {
  cmd?: string;
  ips?: string[];
  processMs?: number;
  ipamMs?: number;
  kernelMs?: number;
}

/** The plugin's own ADD lines, by pod address. */
function addTimes(logs: string[]): Map<string, Required<Pick<AddLine, "processMs" | "ipamMs" | "kernelMs">>> {
  const out = new Map<string, Required<Pick<AddLine, "processMs" | "ipamMs" | "kernelMs">>>();
  for (const log of logs) {
    for (const line of readFileSync(log, "utf8").split("\n")) {
      if (!line.includes('"cmd":"ADD"')) continue;
      const e = JSON.parse(line) as AddLine;
      if (e.processMs !== undefined) for (const ip of e.ips ?? []) out.set(ip, { processMs: e.processMs, ipamMs: e.ipamMs ?? 0, kernelMs: e.kernelMs ?? 0 });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const lab = await startLab({ nodes: NODES, podsPerNode: 0, backend: "vxlan", kubelet: true, log: (m) => console.log(`[lab] ${m}`) });
  try {
    const core = lab.kc.makeApiClient(CoreV1Api);
    const ready = new Map<string, { t: number; ip: string }>();
    const waiters = new Map<string, () => void>();
    const gone = new Map<string, () => void>();
    const watch = new Watch(lab.kc);
    const req = await watch.watch(`/api/v1/namespaces/${NS}/pods`, {}, (type: string, pod: V1Pod) => {
      const name = pod.metadata?.name ?? "";
      if (type === "DELETED") return gone.get(name)?.();
      const ok = pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") && pod.status?.podIP;
      if (ok && !ready.has(name)) {
        ready.set(name, { t: performance.now(), ip: pod.status!.podIP! });
        waiters.get(name)?.();
      }
    }, (err) => {
      // The watch is aborted on purpose once every pod is gone.
      if (err && (err as Error).name !== "AbortError") console.error(`watch ended: ${String(err)}`);
    });
    const created = new Map<string, number>();
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < PODS) {
          const i = next++;
          const name = `churn-${i}`;
          const node = lab.state.nodes[i % lab.state.nodes.length]!;
          const done = new Promise<void>((r) => waiters.set(name, r));
          created.set(name, performance.now());
          await core.createNamespacedPod({ namespace: NS, body: kubeletPodSpec(node.name, name) });
          await done;
        }
      }),
    );
    const createSeconds = (performance.now() - t0) / 1000;
    // The machine is shared: its load at the end of the create phase says how contended these figures are.
    const load = loadavg()[0]!.toFixed(1);
    // Deletion: the same parallelism, each until kubelet confirms the pod gone (its CNI DEL done).
    const names = [...created.keys()];
    let nextDel = 0;
    const deleteMs: number[] = [];
    const t1 = performance.now();
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (nextDel < names.length) {
          const name = names[nextDel++]!;
          const done = new Promise<void>((r) => gone.set(name, r));
          const ts = performance.now();
          await core.deleteNamespacedPod({ name, namespace: NS });
          await done;
          deleteMs.push(performance.now() - ts);
        }
      }),
    );
    const deleteSeconds = (performance.now() - t1) / 1000;
    req.abort();

    const adds = addTimes(lab.state.nodes.map((n) => n.kubelet!.cniLog));
    const latency: number[] = [];
    const addMs: number[] = [];
    const ipamMs: number[] = [];
    const kernelMs: number[] = [];
    const shares: number[] = [];
    for (const [name, t] of created) {
      const r = ready.get(name)!;
      const ms = r.t - t;
      latency.push(ms);
      const add = adds.get(r.ip);
      if (add === undefined) throw new Error(`no ADD line in the CNI log for ${name} (${r.ip})`);
      addMs.push(add.processMs);
      ipamMs.push(add.ipamMs);
      kernelMs.push(add.kernelMs);
      shares.push(add.processMs / ms);
    }
    const fig: Record<string, Figure> = {
      readyP50: { value: round(percentile(latency, 50), 0), unit: "ms" },
      readyP99: { value: round(percentile(latency, 99), 0), unit: "ms" },
      addP50: { value: round(percentile(addMs, 50), 1), unit: "ms" },
      addP99: { value: round(percentile(addMs, 99), 1), unit: "ms" },
      addIpamP50: { value: round(percentile(ipamMs, 50), 1), unit: "ms" },
      addKernelP50: { value: round(percentile(kernelMs, 50), 1), unit: "ms" },
      addShareP50: { value: round(100 * percentile(shares, 50), 1), unit: "%" },
      addShareOfTotal: { value: round((100 * addMs.reduce((a, b) => a + b, 0)) / latency.reduce((a, b) => a + b, 0), 1), unit: "%" },
      deleteP50: { value: round(percentile(deleteMs, 50), 0), unit: "ms" },
      deleteP99: { value: round(percentile(deleteMs, 99), 0), unit: "ms" },
      createPodsPerSecond: { value: round(PODS / createSeconds, 1), unit: "pods/s" },
      deletePodsPerSecond: { value: round(PODS / deleteSeconds, 1), unit: "pods/s" },
    };
    const path = writeResults("pods", fig, { pods: PODS, parallel: PARALLEL, nodes: NODES, loadAvg1m: Number(load) });
    const row = (k: string) => `| ${k} | ${fig[k]!.value} ${fig[k]!.unit} |`;
    updateDocSection(
      "pods",
      [
        "## Pod churn through real kubelets (`npm run bench:pods`)",
        "",
        `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores, shared; 1-minute load average ${load} at the end of the create phase): ${PODS} Pod objects bound to ${NODES} lab nodes run by kubelet v1.36.3 + containerd 1.6 + runc, ${PARALLEL} in flight at a time, then deleted the same way. Ready latency: create request → first watch event with Ready and an IP. ADD: the plugin's own \`processMs\` (its process start → pod attached), matched by address; of it, \`ipamMs\` (address claim) and \`kernelMs\` (veth, addresses, routes, neighbours), the rest being the process starting and reading its config.`,
        "",
        "| figure | value |",
        "|---|---|",
        ...["readyP50", "readyP99", "addP50", "addP99", "addIpamP50", "addKernelP50", "addShareP50", "addShareOfTotal", "deleteP50", "deleteP99", "createPodsPerSecond", "deletePodsPerSecond"].map(row),
        "",
        "`addShareP50` is the median over pods of ADD time / that pod's ready latency; `addShareOfTotal` is summed ADD time over summed latency. The rest is kubelet (pod workers, PLEG relist, status sync), containerd and runc (sandbox and container, each a shim + runc create/start) — two kubelets, two containerds, the control plane and the daemons share the 2 cores, which is also why ADD here is slower than in `bench:cni` (same binary, an idle node). Deletion includes the pod's graceful stop, containerd's CNI DEL and kubelet's final status before the API object goes.",
      ].join("\n"),
    );
    console.log(JSON.stringify(fig, null, 2));
    console.log(`results: ${path}, docs/benchmarks.md`);
  } finally {
    await lab.close();
  }
}

await main();
