// npm run bench:pods — pod churn in the lab's real cluster: kubelet + containerd
// on every node, Twill as its DaemonSet, kube-scheduler placing the pods.
// Creates and deletes BENCH_PODS (200) Pod objects, BENCH_POD_PARALLEL (10) in
// flight at a time, and follows each pod through its timeline (created →
// scheduled → sandbox → CNI ADD start and end → policy in the kernel → Ready;
// bench/support/pod-timeline.ts says where each mark comes from). Pod-ready
// latency is from the create request to the first Pod status showing Ready
// with an IP (the apiserver's watch); Twill's share of it is the plugin's own
// ADD time and the daemon's policy stage.
import { plotBench, writeSeries } from "./support/plot.ts";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { CoreV1Api, Watch, type V1Pod } from "@kubernetes/client-node";
import { startLab, type LabOptions } from "../lab/lab.ts";
import { POD_COMMAND } from "../lab/kubelet/pods.ts";
import { POD_IMAGE } from "../lab/kubelet/images.ts";
import { startNftMonitor } from "./support/nft-monitor.ts";
import { cniAdds, MARKS, policyTimes, sandboxTimes, summarise, type Mark, type PodTimeline } from "./support/pod-timeline.ts";
import { timelineChart, updateDocSection, writeResults, type Figure } from "./support/report.ts";
import { percentile, round } from "./support/stats.ts";

const PODS = Number(process.env.BENCH_PODS ?? 200);
const PARALLEL = Number(process.env.BENCH_POD_PARALLEL ?? 10);
const NODES = Number(process.env.BENCH_POD_NODES ?? 2);
const NS = "default";

/**
 * The cluster the pods run in, in one place: real kubelets, Twill installed as
 * its DaemonSet. The lab's switch for kube-proxy and CoreDNS (the `cluster`
 * branch, drafted as `addons: { proxyMode }`) goes here when it lands, and
 * the doc's sentence about what runs follows from `CLUSTER_DESCRIPTION`.
 */
const CLUSTER: Pick<LabOptions, "kubelet" | "daemonSet"> = { kubelet: true, daemonSet: true };
const CLUSTER_DESCRIPTION = "kubelet v1.36.3 + containerd 1.6 + runc on every node, Twill as its DaemonSet (manifests/twill.yaml, policy fail-closed as shipped), kube-scheduler placing the pods";

/** A churn pod as a user writes it: no spec.nodeName, so kube-scheduler places it. */
function churnPod(name: string): V1Pod {
  return {
    metadata: { name, namespace: NS, labels: { app: "churn" } },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 5,
      containers: [{ name: "app", image: POD_IMAGE, imagePullPolicy: "Never", command: POD_COMMAND }],
    },
  };
}

/** What the watch saw of one pod (epoch ms). */
interface Seen {
  node?: string;
  scheduled?: number;
  ipReported?: number;
  ready?: number;
  ip?: string;
}

/** Stage and mark names in the doc. */
const STAGE_LABEL: Record<Exclude<Mark, "created">, string> = {
  scheduled: "scheduling",
  sandbox: "kubelet → RunPodSandbox",
  cniStart: "containerd → CNI ADD",
  cniEnd: "Twill CNI ADD",
  policy: "→ policy in the kernel (during ADD)",
  ready: "→ Ready",
};

async function main(): Promise<void> {
  const lab = await startLab({ nodes: NODES, podsPerNode: 0, backend: "vxlan", ...CLUSTER, log: (m) => console.log(`[lab] ${m}`) });
  try {
    const core = lab.kc.makeApiClient(CoreV1Api);
    const nodes = new Map(lab.state.nodes.map((n) => [n.name, n]));
    // One monitor per node for the whole create phase, started before the first pod exists.
    const monitors = new Map(await Promise.all(lab.state.nodes.map(async (n) => [n.name, await startNftMonitor(n.ns)] as const)));
    const seen = new Map<string, Seen>();
    const waiters = new Map<string, () => void>();
    const gone = new Map<string, () => void>();
    const watch = new Watch(lab.kc);
    const req = await watch.watch(`/api/v1/namespaces/${NS}/pods`, {}, (type: string, pod: V1Pod) => {
      const t = Date.now();
      const name = pod.metadata?.name ?? "";
      if (type === "DELETED") return gone.get(name)?.();
      const s = seen.get(name) ?? {};
      seen.set(name, s);
      if (pod.spec?.nodeName && s.scheduled === undefined) Object.assign(s, { scheduled: t, node: pod.spec.nodeName });
      if (pod.status?.podIP && s.ipReported === undefined) s.ipReported = t;
      const ok = pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") && pod.status?.podIP;
      if (ok && s.ready === undefined) {
        Object.assign(s, { ready: t, ip: pod.status!.podIP! });
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
          const name = `churn-${next++}`;
          const done = new Promise<void>((r) => waiters.set(name, r));
          created.set(name, Date.now());
          await core.createNamespacedPod({ namespace: NS, body: churnPod(name) });
          await done;
        }
      }),
    );
    const createSeconds = (performance.now() - t0) / 1000;
    // The machine is shared: its load at the end of the create phase says how contended these figures are.
    const load = loadavg()[0]!.toFixed(1);
    // The daemon programs a pod once the apiserver reports its address, which may be after Ready: keep
    // watching the kernel until every pod's address is in, then stop the monitors.
    const policyDeadline = Date.now() + 30_000;
    const missingPolicy = () => [...created.keys()].filter((name) => !policyTimes(monitors.get(seen.get(name)!.node!)!.lines).has(seen.get(name)!.ip!));
    while (missingPolicy().length > 0 && Date.now() < policyDeadline) await new Promise((r) => setTimeout(r, 200));
    await Promise.all([...monitors.values()].map((m) => m.stop()));

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

    // Each node's logs and monitor, read once.
    const perNode = new Map(
      lab.state.nodes.map((n) => [
        n.name,
        { sandboxes: sandboxTimes(readFileSync(n.kubelet!.containerdLog, "utf8")), adds: cniAdds(readFileSync(n.kubelet!.cniLog, "utf8")), policy: policyTimes(monitors.get(n.name)!.lines) },
      ]),
    );
    const latency: number[] = [];
    const addMs: number[] = [];
    const ipamMs: number[] = [];
    const kernelMs: number[] = [];
    const daemonMs: number[] = [];
    const shares: number[] = [];
    const twillShares: number[] = [];
    const timelines: PodTimeline[] = [];
    const placed = new Map<string, number>();
    const noPolicy: string[] = [];
    // Pods whose first status with an IP was already Ready (one watch event), and pods Ready before their policy.
    let ipWithReady = 0;
    let policyAfterReady = 0;
    // The handshake's promise: the address is in `ready` before the ADD returned (policy ≤ cniEnd).
    let policyAfterCniEnd = 0;
    let policyMinusCniEndMax = Number.NEGATIVE_INFINITY;
    for (const [name, createdAt] of created) {
      const s = seen.get(name)!;
      const where = perNode.get(s.node!);
      if (!where || !nodes.has(s.node!)) throw new Error(`${name} ran on ${s.node}, not a lab node`);
      placed.set(s.node!, (placed.get(s.node!) ?? 0) + 1);
      const sandbox = where.sandboxes.get(`${NS}/${name}`);
      if (sandbox?.id === undefined) throw new Error(`no RunPodSandbox … returns sandbox id line for ${name} in ${nodes.get(s.node!)!.kubelet!.containerdLog}`);
      const add = where.adds.get(sandbox.id);
      if (add === undefined) throw new Error(`no ADD line for ${name} (sandbox ${sandbox.id}) in ${nodes.get(s.node!)!.kubelet!.cniLog}`);
      const ms = s.ready! - createdAt;
      latency.push(ms);
      addMs.push(add.processMs);
      ipamMs.push(add.ipamMs);
      kernelMs.push(add.kernelMs);
      daemonMs.push(add.daemonMs);
      shares.push(add.processMs / ms);
      const policy = where.policy.get(s.ip!);
      if (policy === undefined) {
        noPolicy.push(name);
        continue;
      }
      const tl: PodTimeline = { created: createdAt, scheduled: s.scheduled!, sandbox: sandbox.start, cniStart: add.start, cniEnd: add.end, policy, ready: s.ready!, sandboxReady: sandbox.ready!, ipReported: s.ipReported! };
      timelines.push(tl);
      twillShares.push((add.processMs + Math.max(0, tl.policy - tl.ipReported)) / ms);
      if (tl.ipReported === tl.ready) ipWithReady++;
      if (tl.policy > tl.ready) policyAfterReady++;
      if (tl.policy > tl.cniEnd) policyAfterCniEnd++;
      policyMinusCniEndMax = Math.max(policyMinusCniEndMax, tl.policy - tl.cniEnd);
    }
    if (timelines.length === 0) throw new Error("no pod's address was seen entering the policy table's ready set (nft monitor saw nothing?)");
    const sum = summarise(timelines);
    const fig: Record<string, Figure> = {
      readyP50: { value: round(percentile(latency, 50), 0), unit: "ms" },
      readyP99: { value: round(percentile(latency, 99), 0), unit: "ms" },
      addP50: { value: round(percentile(addMs, 50), 1), unit: "ms" },
      addP99: { value: round(percentile(addMs, 99), 1), unit: "ms" },
      addIpamP50: { value: round(percentile(ipamMs, 50), 1), unit: "ms" },
      addKernelP50: { value: round(percentile(kernelMs, 50), 1), unit: "ms" },
      addDaemonP50: { value: round(percentile(daemonMs, 50), 1), unit: "ms" },
      addDaemonP99: { value: round(percentile(daemonMs, 99), 1), unit: "ms" },
      addShareP50: { value: round(100 * percentile(shares, 50), 1), unit: "%" },
      addShareOfTotal: { value: round((100 * addMs.reduce((a, b) => a + b, 0)) / latency.reduce((a, b) => a + b, 0), 1), unit: "%" },
      deleteP50: { value: round(percentile(deleteMs, 50), 0), unit: "ms" },
      deleteP99: { value: round(percentile(deleteMs, 99), 0), unit: "ms" },
      createPodsPerSecond: { value: round(PODS / createSeconds, 1), unit: "pods/s" },
      deletePodsPerSecond: { value: round(PODS / deleteSeconds, 1), unit: "pods/s" },
    };
    // The timeline: `until<Mark>` from the previous mark, `at<Mark>` from created.
    const cap = (m: string) => m[0]!.toUpperCase() + m.slice(1);
    for (const st of sum.stages) {
      fig[`until${cap(st.to)}P50`] = { value: round(st.p50, 1), unit: "ms" };
      fig[`until${cap(st.to)}P99`] = { value: round(st.p99, 1), unit: "ms" };
    }
    for (const mk of sum.marks) {
      fig[`at${cap(mk.mark)}P50`] = { value: round(mk.p50, 1), unit: "ms" };
      fig[`at${cap(mk.mark)}P99`] = { value: round(mk.p99, 1), unit: "ms" };
    }
    fig.daemonPolicyP50 = { value: round(sum.daemonPolicy.p50, 1), unit: "ms" };
    fig.daemonPolicyP99 = { value: round(sum.daemonPolicy.p99, 1), unit: "ms" };
    fig.twillShareP50 = { value: round(100 * percentile(twillShares, 50), 1), unit: "%" };
    fig.ipWithReadyPods = { value: round((100 * ipWithReady) / timelines.length, 1), unit: "%" };
    fig.policyAfterReadyPods = { value: round((100 * policyAfterReady) / timelines.length, 1), unit: "%" };
    fig.policyAfterCniEndPods = { value: round((100 * policyAfterCniEnd) / timelines.length, 1), unit: "%" };
    fig.policyMinusCniEndMax = { value: round(policyMinusCniEndMax, 1), unit: "ms" };
    const meta = { pods: PODS, parallel: PARALLEL, nodes: NODES, loadAvg1m: Number(load), placement: Object.fromEntries(placed), timelinePods: timelines.length, podsWithoutPolicyMark: noPolicy.length };
    const path = writeResults("pods", fig, meta);
    writeSeries("pods", { ready_ms: latency, cni_add_ms: addMs, delete_ms: deleteMs });
    updateDocSection("pods", doc(fig, sum, { load, placed, timelinePods: timelines.length, noPolicy }));
    console.log(JSON.stringify({ ...meta, figures: fig }, null, 2));
    console.log(`results: ${path}, docs/benchmarks.md`);
    await plotBench("pods");
  } finally {
    await lab.close();
  }
}

const f = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));

function doc(fig: Record<string, Figure>, sum: ReturnType<typeof summarise>, run: { load: string; placed: Map<string, number>; timelinePods: number; noPolicy: string[] }): string {
  const row = (k: string) => `| ${k} | ${fig[k]!.value} ${fig[k]!.unit} |`;
  const at = (m: string) => sum.marks.find((x) => x.mark === m)!;
  const stageRows = sum.stages.map((st) => `| ${STAGE_LABEL[st.to as Exclude<Mark, "created">]} | ${st.from} → ${st.to} | ${f(st.p50)} | ${f(st.p99)} | ${f(at(st.to).p50)} | ${f(at(st.to).p99)} |`);
  const extra = [
    `| (sandbox returned) | created → sandboxReady | | | ${f(at("sandboxReady").p50)} | ${f(at("sandboxReady").p99)} |`,
    `| (IP in the pod's status) | created → ipReported | | | ${f(at("ipReported").p50)} | ${f(at("ipReported").p99)} |`,
    `| daemon: IP reported → policy (negative: programmed from the plugin's notice first) | ipReported → policy | ${f(sum.daemonPolicy.p50)} | ${f(sum.daemonPolicy.p99)} | | |`,
  ];
  const spans = (p: "p50" | "p99") =>
    MARKS.slice(1).map((m, k) => {
      const from = k === 0 ? 0 : at(MARKS[k]!)[p];
      const to = at(m)[p];
      return { label: `${STAGE_LABEL[m as Exclude<Mark, "created">]}${to < from ? " (before the previous mark)" : ""}`, from, to };
    });
  const placement = [...run.placed].map(([n, c]) => `${c} on ${n}`).join(", ");
  return [
    "## Pod churn in the lab's real cluster (`npm run bench:pods`)",
    "",
    `Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores, shared; 1-minute load average ${run.load} at the end of the create phase): ${PODS} Pod objects, ${PARALLEL} in flight at a time, in a cluster of ${NODES} lab nodes — ${CLUSTER_DESCRIPTION} (${placement}) — then deleted the same way. Ready latency: create request → first watch event with Ready and an IP. ADD: the plugin's own \`processMs\` (its process start → its result going back), matched to the pod by its sandbox id; of it, \`ipamMs\` (address claim), \`kernelMs\` (veth, addresses, routes, neighbours) and \`daemonMs\` (the wait for the daemon to say the pod's policy is in the kernel: docs/cni.md), the rest being the process starting and reading its config.`,
    "",
    "| figure | value |",
    "|---|---|",
    ...["readyP50", "readyP99", "addP50", "addP99", "addIpamP50", "addKernelP50", "addDaemonP50", "addDaemonP99", "addShareP50", "addShareOfTotal", "twillShareP50", "deleteP50", "deleteP99", "createPodsPerSecond", "deletePodsPerSecond"].map(row),
    "",
    "`addShareP50` is the median over pods of ADD time / that pod's ready latency; `addShareOfTotal` is summed ADD time over summed latency; `twillShareP50` adds the daemon's policy time after the status (below, none when the ADD already waited for it) to the ADD. Deletion includes the pod's graceful stop, containerd's CNI DEL and kubelet's final status before the API object goes.",
    "",
    `### The timeline of a pod (p50/p99 over ${run.timelinePods} pods)`,
    "",
    "Every mark is read on this machine's clock (CLOCK_REALTIME, epoch ms), so marks from different processes line up:",
    "",
    "- **created**: just before the create request; **scheduled**: the first watch event with `spec.nodeName` (kube-scheduler's binding); **Ready**: the first watch event with Ready and an IP; *ipReported*: the first with an IP (all stamped as the bench receives them, so a little late).",
    "- **sandbox**: containerd's `RunPodSandbox for &PodSandboxMetadata{Name:churn-N,…}` line in the node's `containerd.log` (the CRI call from kubelet arrived); its `… returns sandbox id` line is *sandboxReady*.",
    "- **cniStart / cniEnd**: the plugin's ADD line in the node's CNI log: its `time` is the end, `time − processMs` the start (the plugin's process start).",
    "- **policy**: the first `add element inet twill-policy ready { <pod IP> }` that `nft monitor new elements`, run in the node's network namespace for the whole create phase, printed (stamped as the line arrives, so late by a pipe and an event loop, never early). With `policyFailClosed` (the manifest's default) an address of the node's pod CIDR passes only once it is in `ready`, which the daemon adds once the pod's NetworkPolicy (none here: every pod is unisolated) is in the kernel — so every new pod gets exactly this one element and the bench needs no NetworkPolicy of its own.",
    "",
    "Each stage is the time from the previous mark; *at* is the mark's time from created. p50 and p99 are taken per column, so the stages do not add up to the marks. A mark the bench stamps on arrival (scheduled, ipReported, Ready, policy) is late by its own watch or pipe on the loaded machine, a log line's time is not: scheduled → sandbox comes out negative when kubelet's RunPodSandbox is logged before the binding's watch event reaches the bench.",
    "",
    "| stage | from → to | p50 (ms) | p99 (ms) | at, p50 (ms) | at, p99 (ms) |",
    "|---|---|---|---|---|---|",
    ...stageRows,
    ...extra,
    "",
    timelineChart(`Pod timeline, marks at p50 and p99 from created (${run.timelinePods} pods)`, [
      { name: "p50", spans: spans("p50") },
      { name: "p99", spans: spans("p99") },
    ]),
    "",
    `Reading it: containerd runs the CNI chain inside RunPodSandbox, so cniStart−sandbox is containerd's own work before Twill's plugin starts (the pod's network namespace, the loopback plugin it runs on its own) and sandboxReady comes after cniEnd (the chain's next plugin, portmap, then the pause container: a shim and runc). The plugin tells the node daemon the pod's addresses over its socket once the pod is attached and returns only after the daemon answered that the pod's policy and its \`ready\` element are in the kernel (\`daemonMs\`, p50 ${fig.addDaemonP50!.value} ms, p99 ${fig.addDaemonP99!.value} ms), so cniEnd → policy comes out negative: ${fig.policyAfterCniEndPods!.value} % of the pods had their address enter \`ready\` after their ADD returned (the largest policy − cniEnd: ${fig.policyMinusCniEndMax!.value} ms, with the monitor's stamp late by its pipe), and ${fig.policyAfterReadyPods!.value} % were Ready before it. *ipReported → policy* is negative for the same reason: kubelet writes the pod's IP to its status only after its containers started (for ${fig.ipWithReadyPods!.value} % of the pods in the same status update as Ready), long after the daemon programmed the address it heard from the plugin.`,
    "",
    "What this compares against: the same run's kubelet, containerd and runc stages are the reference — a pod's start-up is theirs (scheduling, the pod worker, sandbox and container creation, status sync); Twill's share is the ADD stage and the daemon's part of the policy stage. Running the same timeline with Debian's `ptp` + `host-local` as the nodes' CNI would need a second cluster without Twill's DaemonSet and is not done here; `bench:cni` compares the plugin itself with those plugins on an idle node.",
    ...(run.noPolicy.length ? ["", `${run.noPolicy.length} pods had no \`ready\` element in the monitor's output and are left out of the timeline (not of the ready-latency figures): ${run.noPolicy.slice(0, 10).join(", ")}${run.noPolicy.length > 10 ? ", …" : ""}.`] : []),
  ].join("\n");
}

await main();
