// npm run lab [-- --check] [--nodes N] [--pods N] [--backend vxlan|host-gw|bgp] [--direct-routing] [--underlay-gso BYTES]
//              [--proxy kube-proxy|twill] [--proxy-mode nftables|iptables] [--kubelet] [--fast [--no-daemon]]
// npm run lab -- down
// The lab: a real Kubernetes cluster — control plane, kubelet + containerd,
// kube-proxy and CoreDNS on every node, Twill as its DaemonSet — all as
// network namespaces on this machine; --fast is the netns-only lab. See docs/lab.md.
import { parseArgs } from "node:util";
import { destroyLab, staleLabs, startLab, type Backend, type LabOptions, type RunningLab } from "./lab.ts";
import { allPairs, matrixPasses, probeMatrix, renderMatrix, sameNodeOnly } from "./matrix.ts";
import { probeTcpMatrix, TCP_PROBE_PORT } from "./tcp-probe.ts";
import { PROXY_MODES, TWILL_PROXY, type ProxyMode } from "./addons/kube-proxy.ts";
import { clusterStatus, probeClusterIps, probeFromNodes, probeNodePorts, renderServiceTable, serviceTablePasses } from "./services.ts";

const say = (m: string) => console.log(`[lab] ${m}`);

async function down(): Promise<number> {
  const labs = await staleLabs();
  for (const lab of labs) {
    say(`removing ${lab}`);
    await destroyLab(lab);
  }
  if (labs.length === 0) say("no lab left behind");
  return 0;
}

async function main(): Promise<number> {
  // The lab's own handles (relay, child processes) are unref'd; without this Node ends the waiting process with
  // exit 13 (unsettled top-level await) and leaves the lab behind (seen with stdin not a terminal).
  setInterval(() => {}, 2 ** 30);
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      check: { type: "boolean", default: false },
      nodes: { type: "string", default: "3" },
      pods: { type: "string", default: "2" },
      backend: { type: "string", default: "vxlan" },
      "direct-routing": { type: "boolean", default: false },
      "underlay-gso": { type: "string" },
      "no-daemon": { type: "boolean", default: false },
      kubelet: { type: "boolean", default: false },
      // The default since the lab became a real cluster; kept so older command lines still work.
      daemonset: { type: "boolean", default: false },
      fast: { type: "boolean", default: false },
      "proxy-mode": { type: "string", default: "nftables" },
      // twill: no kube-proxy; the Twill daemon proxies Services (serviceProxy: true).
      proxy: { type: "string", default: "kube-proxy" },
    },
  });
  if (positionals[0] === "down") return down();
  const backend = values.backend as Backend;
  if (!["vxlan", "host-gw", "bgp"].includes(backend)) {
    console.error(`unknown backend "${values.backend}": use vxlan, host-gw or bgp`);
    return 2;
  }
  const nodes = Number(values.nodes);
  const pods = Number(values.pods);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 50 || !Number.isInteger(pods) || pods < 1 || pods > 50) {
    console.error("--nodes and --pods take a whole number from 1 to 50");
    return 2;
  }
  if (values.proxy !== "kube-proxy" && values.proxy !== TWILL_PROXY) {
    console.error(`unknown proxy "${values.proxy}": use kube-proxy or twill`);
    return 2;
  }
  const proxyMode = (values.proxy === TWILL_PROXY ? TWILL_PROXY : values["proxy-mode"]) as ProxyMode;
  if (proxyMode !== TWILL_PROXY && !PROXY_MODES.includes(proxyMode)) {
    console.error(`unknown proxy mode "${values["proxy-mode"]}": use ${PROXY_MODES.join(" or ")} (this kernel has no IPVS)`);
    return 2;
  }
  if (values.fast && (values.kubelet || values.daemonset)) {
    console.error("--fast is the netns-only lab: it takes neither --kubelet nor --daemonset");
    return 2;
  }
  if (values["no-daemon"] && !values.fast) {
    console.error("--no-daemon needs --fast (kubelet's nodes are not Ready without a CNI)");
    return 2;
  }
  if (values["underlay-gso"] !== undefined && !values.fast) {
    console.error("--underlay-gso needs --fast (kubelet nodes' underlay links keep the kernel's default)");
    return 2;
  }
  const underlayGso = values["underlay-gso"] === undefined ? undefined : Number(values["underlay-gso"]);
  if (underlayGso !== undefined && (!Number.isInteger(underlayGso) || underlayGso < 65536 || underlayGso > 524280)) {
    console.error("--underlay-gso takes a size in bytes from 65536 to 524280 (BIG TCP; 196608 is common)");
    return 2;
  }
  let lab: RunningLab | undefined;
  let starting: string | undefined;
  const stopOnSignal = async () => {
    say("stopping: tearing the lab down");
    // Still starting (kubelets, containerds may already run): remove it by name.
    if (lab) await lab.close();
    else if (starting) await destroyLab(starting);
    process.exit(130);
  };
  process.once("SIGINT", stopOnSignal);
  process.once("SIGTERM", stopOnSignal);
  try {
    // The default is the real cluster: kubelets, Twill as its DaemonSet, kube-proxy and CoreDNS.
    const mode: Pick<LabOptions, "kubelet" | "daemonSet" | "addons"> = values.fast ? {} : { kubelet: true, daemonSet: !values.kubelet, addons: { proxyMode } };
    const t0 = performance.now();
    lab = await startLab({ nodes, podsPerNode: pods, backend, daemon: !values["no-daemon"], directRouting: values["direct-routing"], ...(underlayGso ? { underlayGso } : {}), ...mode, log: say, onName: (n) => (starting = n) });
    const s = lab.state;
    const upSeconds = (performance.now() - t0) / 1000;
    say(`lab ${s.name} is up after ${upSeconds.toFixed(1)} s: ${s.nodes.length} nodes, ${s.pods.length} pods, backend ${backend}${s.daemon ? "" : " (no daemon: pods reach only their own node)"}`);
    console.log(`  control plane  namespace ${s.name}-cp: etcd, kube-apiserver (https://172.30.0.2:6443), kube-controller-manager${s.kubelet ? ", kube-scheduler" : ""}`);
    console.log(`  outside        namespace ${s.name}-rt: 172.30.0.1, every node's default gateway`);
    for (const n of s.nodes) {
      const pods = s.pods.filter((p) => p.node === n.name).map((p) => `${p.name} ${p.ip}`).join(", ");
      const runs = `${n.kubelet ? ", containerd + kubelet" : ""}${n.kubelet?.kubeProxyLog ? ` + kube-proxy (${s.addons?.proxyMode})` : ""}${s.daemon ? (s.daemonSet ? ", twill DaemonSet pod" : ", twill daemon") : ""}${s.addons?.proxyMode === TWILL_PROXY ? " (Services: Twill's proxy, no kube-proxy)" : ""}`;
      console.log(`  ${n.name.padEnd(13)}  namespace ${n.ns}: ${n.ip}, pod CIDR ${n.podCIDR}${runs}; pods: ${pods}`);
    }
    let ok = true;
    if (s.addons && s.bin && lab.kubeconfig) {
      const status = await clusterStatus(s.bin, lab.kubeconfig);
      console.log(`\nkubectl get nodes,pods (the built kubectl):\n\n${status.text}`);
      if (status.notReady.length) console.log(`\nNOT READY: ${status.notReady.join(", ")}`);
      ok &&= status.notReady.length === 0;
    }
    const expected = s.daemon ? allPairs : sameNodeOnly;
    const tp = performance.now();
    const probes = await probeMatrix(s.pods, expected);
    console.log(`\npod ↔ pod ping (round trip; "· (n/a)" = not expected without the daemon), ${((performance.now() - tp) / 1000).toFixed(1)} s:\n`);
    console.log(renderMatrix(s.pods, probes));
    const t1 = performance.now();
    const tcp = await probeTcpMatrix(s.pods, expected);
    console.log(`\npod ↔ pod TCP (handshake to port ${TCP_PROBE_PORT}), ${((performance.now() - t1) / 1000).toFixed(1)} s:\n`);
    console.log(renderMatrix(s.pods, tcp));
    ok &&= matrixPasses(probes) && matrixPasses(tcp);
    if (s.addons && s.bin && lab.kubeconfig) {
      for (const table of [await probeClusterIps(s.bin, lab.kubeconfig, s.pods), await probeNodePorts(s.name, lab.kc, s.nodes), await probeFromNodes(lab.kc, s.nodes)]) {
        console.log(`\n${table.title}:\n`);
        console.log(renderServiceTable(table));
        ok &&= serviceTablePasses(table);
      }
    }
    console.log(`\n${ok ? "every expected pair is reachable" : "SOME EXPECTED PAIRS ARE UNREACHABLE"}${s.addons ? " (pods, Services, NodePorts)" : ""}`);
    if (values.check) {
      const tc = performance.now();
      await lab.close();
      say(`up ${upSeconds.toFixed(1)} s, checks ${((tc - t0) / 1000 - upSeconds).toFixed(1)} s, teardown ${((performance.now() - tc) / 1000).toFixed(1)} s`);
      return ok ? 0 : 1;
    }
    const kubeconfig = lab.kubeconfig!;
    console.log(`
Enter a node:        ip netns exec ${s.nodes[0]!.ns} bash
Enter a pod:         ip netns exec ${s.pods[0]!.ns} sh
API as admin:        ${s.bin && s.kubelet ? `${s.bin}/kubectl` : "kubectl"} --kubeconfig ${kubeconfig} get nodes,pods -A -o wide   (while this lab runs)
Lab state and logs:  ${s.dir}/state.json, ${s.dir}/logs
Press Ctrl-C to tear everything down.`);
    await new Promise(() => {});
    return 0;
  } catch (err) {
    console.error(`[lab] failed: ${(err as Error).message}`);
    const details = (err as { details?: string }).details;
    if (details) console.error(details);
    await lab?.close();
    return 1;
  }
}

process.exit(await main());
