// npm run lab [-- --check] [--nodes N] [--pods N] [--backend vxlan|host-gw|bgp] [--direct-routing] [--underlay-gso BYTES] [--no-daemon] [--kubelet [--daemonset]]
// npm run lab -- down
// The lab: a real Kubernetes control plane and Twill nodes and pods, all as
// network namespaces on this machine. See docs/lab.md.
import { parseArgs } from "node:util";
import { destroyLab, staleLabs, startLab, writeAdminKubeconfig, type Backend, type RunningLab } from "./lab.ts";
import { allPairs, matrixPasses, probeMatrix, renderMatrix, sameNodeOnly } from "./matrix.ts";
import { probeTcpMatrix, TCP_PROBE_PORT } from "./tcp-probe.ts";

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
      daemonset: { type: "boolean", default: false },
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
    lab = await startLab({ nodes, podsPerNode: pods, backend, daemon: !values["no-daemon"], directRouting: values["direct-routing"], ...(underlayGso ? { underlayGso } : {}), kubelet: values.kubelet, daemonSet: values.daemonset, log: say, onName: (n) => (starting = n) });
    const s = lab.state;
    say(`lab ${s.name} is up: ${s.nodes.length} nodes, ${s.pods.length} pods, backend ${backend}${s.daemon ? "" : " (no daemon: pods reach only their own node)"}`);
    console.log(`  control plane  namespace ${s.name}-cp: etcd, kube-apiserver (https://172.30.0.2:6443), kube-controller-manager`);
    for (const n of s.nodes) {
      const pods = s.pods.filter((p) => p.node === n.name).map((p) => `${p.name} ${p.ip}`).join(", ");
      const runs = `${n.kubelet ? ", containerd + kubelet" : ""}${s.daemon ? (s.daemonSet ? ", twill DaemonSet pod" : ", twill daemon") : ""}`;
      console.log(`  ${n.name.padEnd(13)}  namespace ${n.ns}: ${n.ip}, pod CIDR ${n.podCIDR}${runs}; pods: ${pods}`);
    }
    const expected = s.daemon ? allPairs : sameNodeOnly;
    const t0 = performance.now();
    const probes = await probeMatrix(s.pods, expected);
    console.log(`\npod ↔ pod ping (round trip; "· (n/a)" = not expected without the daemon), ${((performance.now() - t0) / 1000).toFixed(1)} s:\n`);
    console.log(renderMatrix(s.pods, probes));
    const t1 = performance.now();
    const tcp = await probeTcpMatrix(s.pods, expected);
    console.log(`\npod ↔ pod TCP (handshake to port ${TCP_PROBE_PORT}), ${((performance.now() - t1) / 1000).toFixed(1)} s:\n`);
    console.log(renderMatrix(s.pods, tcp));
    const ok = matrixPasses(probes) && matrixPasses(tcp);
    console.log(`\n${ok ? "every expected pair is reachable" : "SOME EXPECTED PAIRS ARE UNREACHABLE"}`);
    if (values.check) {
      await lab.close();
      return ok ? 0 : 1;
    }
    const kubeconfig = writeAdminKubeconfig(s, lab.forwarder.port);
    console.log(`
Enter a node:        ip netns exec ${s.nodes[0]!.ns} bash
Enter a pod:         ip netns exec ${s.pods[0]!.ns} sh
API as admin:        kubectl --kubeconfig ${kubeconfig} get nodes,pods -o wide   (while this lab runs)
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
