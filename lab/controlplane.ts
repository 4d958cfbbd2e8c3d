import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../lib/errors.ts";
import { rawRequest, startForwarder, type Forwarder } from "./kube.ts";
import { CLUSTER_CIDR, CONTROL_PLANE_IP, controlPlaneNs, SERVICE_CIDR } from "./names.ts";
import { issue, type Issued, type Pki } from "./pki.ts";
import { startIn, tail, type LabProcess } from "./process.ts";

// etcd, kube-apiserver and kube-controller-manager inside the control-plane
// namespace. The apiserver serves TLS with client-certificate and
// ServiceAccount-token authentication and Node,RBAC authorization; the
// controller manager allocates each Node's spec.podCIDR from the cluster CIDR.

export interface ControlPlane {
  processes: LabProcess[];
  admin: Issued;
  socket: string;
  forwarder: Forwarder;
}

function kubeconfigFile(path: string, pki: Pki, client: Issued, server: string): void {
  const text = `apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "${server}", certificate-authority: "${pki.ca}"}
users:
- name: user
  user: {client-certificate: "${client.cert}", client-key: "${client.key}"}
contexts:
- name: lab
  context: {cluster: lab, user: user}
current-context: lab
`;
  writeFileSync(path, text);
}

async function waitReady(cp: { forwarder: Forwarder; admin: Issued }, pki: Pki, processes: LabProcess[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const dead = processes.find((p) => p.exited());
    if (dead) throw new TwillError("LAB_CONTROL_PLANE", `${dead.name} exited during start-up`, tail(dead.log));
    try {
      const r = await rawRequest(cp.forwarder.port, { ca: pki.ca, cert: cp.admin.cert, key: cp.admin.key }, "GET", "/readyz");
      if (r.status === 200) return;
      last = `${r.status} ${r.body.slice(0, 300)}`;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new TwillError("LAB_CONTROL_PLANE", "kube-apiserver did not become ready within 2 minutes", last);
}

export interface ControlPlaneOptions {
  /**
   * Real kubelets run the nodes: kube-controller-manager runs every controller a real cluster runs (node
   * lifecycle, endpoint slices, deployments, daemon sets…) and kube-scheduler places pods. Without kubelets
   * (the fast lab) the node-lifecycle controller would taint the lab's kubelet-less Nodes and evict their pods,
   * so only the controllers the fast lab needs run.
   */
  kubelets?: boolean;
}

/** The controllers of the fast lab: pod CIDRs, ServiceAccounts and their tokens, namespaces, garbage collection. */
const FAST_CONTROLLERS = "node-ipam-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,garbage-collector-controller,root-ca-certificate-publisher-controller";

export async function startControlPlane(lab: string, dir: string, bin: string, pki: Pki, clusterCIDR = CLUSTER_CIDR, nodeMaskSize = 24, opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const ns = controlPlaneNs(lab);
  const logs = join(dir, "logs");
  mkdirSync(logs, { recursive: true });
  const serving = await issue(pki, {
    name: "apiserver",
    commonName: "kube-apiserver",
    usage: "server",
    sans: ["DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "DNS:localhost", "IP:127.0.0.1", `IP:${CONTROL_PLANE_IP}`, "IP:10.96.0.1"],
  });
  const admin = await issue(pki, { name: "admin", commonName: "lab-admin", organization: "system:masters", usage: "client" });
  // kubectl exec, logs and port-forward go apiserver → kubelet; kubelets trust the lab's CA (x509 authentication).
  const kubeletClient = await issue(pki, { name: "apiserver-kubelet-client", commonName: "kube-apiserver-kubelet-client", organization: "system:masters", usage: "client" });
  const kcm = await issue(pki, { name: "kcm", commonName: "system:kube-controller-manager", usage: "client" });
  const kcmConfig = join(dir, "kcm.kubeconfig");
  kubeconfigFile(kcmConfig, pki, kcm, "https://127.0.0.1:6443");

  const processes: LabProcess[] = [];
  processes.push(
    startIn(ns, "etcd", [join(bin, "etcd"), "--data-dir", join(dir, "etcd"), "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379", "--listen-peer-urls", "http://127.0.0.1:2380", "--log-level", "warn", "--quota-backend-bytes", String(2 ** 31)], join(logs, "etcd.log")),
  );
  processes.push(
    startIn(ns, "kube-apiserver", [
      join(bin, "kube-apiserver"),
      "--etcd-servers=http://127.0.0.1:2379",
      `--advertise-address=${CONTROL_PLANE_IP}`,
      "--bind-address=0.0.0.0",
      "--secure-port=6443",
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${pki.ca}`,
      "--authorization-mode=Node,RBAC",
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--kubelet-client-certificate=${kubeletClient.cert}`,
      `--kubelet-client-key=${kubeletClient.key}`,
      // Nodes are named node1, node2…: nothing in this namespace resolves those names, so dial their InternalIP.
      "--kubelet-preferred-address-types=InternalIP,Hostname",
      "--allow-privileged=true",
      "--enable-priority-and-fairness=false",
      "--profiling=false",
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      "--v=0",
    ], join(logs, "kube-apiserver.log")),
  );
  const socket = join(dir, "apiserver.sock");
  processes.push(startIn(ns, "socat", ["socat", `UNIX-LISTEN:${socket},fork,unlink-early,mode=600,backlog=256`, "TCP:127.0.0.1:6443"], join(logs, "socat.log")));
  const forwarder = await startForwarder(socket);
  await waitReady({ forwarder, admin }, pki, processes);

  processes.push(
    startIn(ns, "kube-controller-manager", [
      join(bin, "kube-controller-manager"),
      `--kubeconfig=${kcmConfig}`,
      `--authentication-kubeconfig=${kcmConfig}`,
      `--authorization-kubeconfig=${kcmConfig}`,
      "--allocate-node-cidrs=true",
      `--cluster-cidr=${clusterCIDR}`,
      `--node-cidr-mask-size=${nodeMaskSize}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      `--controllers=${opts.kubelets ? "*" : FAST_CONTROLLERS}`,
      `--service-account-private-key-file=${pki.saKey}`,
      `--root-ca-file=${pki.ca}`,
      "--leader-elect=false",
      // Each controller acts as its own ServiceAccount (node-ipam may patch Nodes), as in real clusters.
      "--use-service-account-credentials=true",
      "--bind-address=127.0.0.1",
      "--secure-port=10257",
      "--v=0",
    ], join(logs, "kube-controller-manager.log")),
  );
  if (opts.kubelets) {
    const sched = await issue(pki, { name: "scheduler", commonName: "system:kube-scheduler", usage: "client" });
    const schedConfig = join(dir, "scheduler.kubeconfig");
    kubeconfigFile(schedConfig, pki, sched, "https://127.0.0.1:6443");
    processes.push(
      startIn(ns, "kube-scheduler", [
        join(bin, "kube-scheduler"),
        `--kubeconfig=${schedConfig}`,
        `--authentication-kubeconfig=${schedConfig}`,
        `--authorization-kubeconfig=${schedConfig}`,
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=10259",
        "--v=0",
      ], join(logs, "kube-scheduler.log")),
    );
  }
  return { processes, admin, socket, forwarder };
}
