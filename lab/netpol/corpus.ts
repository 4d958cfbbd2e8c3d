import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { formatCidr, mask, parseIp } from "../../lib/net/cidr.ts";

// NetworkPolicy conformance cases, read by their format only: a directory with
// model.json and cases/*.json. New cases need no code. By default, Twill's own
// (test/policy/netpol/, written by its generate.ts); any other directory in
// the same format (the upstream-derived corpus, say) is read the same way.

export const CORPUS = resolve(import.meta.dirname, "../../test/policy/netpol");

export interface Probe {
  from: string;
  to: string;
  port: number;
  protocol: "TCP" | "UDP" | "SCTP";
  expect: boolean;
  loopback?: boolean;
}

export type Action =
  | { action: "apply"; policy: V1NetworkPolicy }
  | { action: "delete"; namespace: string; name: string }
  | { action: "setPodLabels"; pod: string; labels: Record<string, string> }
  | { action: "setNamespaceLabels"; namespace: string; labels: Record<string, string> };

export interface Case {
  name: string;
  policies: V1NetworkPolicy[];
  probes: Probe[];
  steps?: { description: string; actions: Action[]; probes: Probe[] }[];
}

export interface Model {
  namespaces: { name: string; labels: Record<string, string> }[];
  pods: { namespace: string; name: string; labels: Record<string, string>; containers: { name: string; ports: { name: string; containerPort: number; protocol: string }[] }[] }[];
}

export function loadModel(dir = CORPUS): Model {
  return JSON.parse(readFileSync(join(dir, "model.json"), "utf8")) as Model;
}

export function loadCases(dir = CORPUS): Case[] {
  const casesDir = join(dir, "cases");
  return readdirSync(casesDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(casesDir, f), "utf8")) as Case);
}

/** Replaces {{podIP ns/pod}} and {{podNet ns/pod len}} in every string of a policy. */
export function fillTemplates<T>(obj: T, podIp: (key: string) => string): T {
  const text = JSON.stringify(obj).replace(/\{\{(podIP|podNet) ([\w-]+\/[\w-]+)(?: (\d+))?\}\}/g, (_m, kind: string, key: string, len?: string) => {
    const ip = podIp(key);
    if (kind === "podIP") return ip;
    const { family, value } = parseIp(ip);
    return formatCidr({ family, network: value & mask(family, Number(len)), prefix: Number(len) });
  });
  return JSON.parse(text) as T;
}

export function modelObjects(model: Model, podIp: (key: string) => string): { namespaces: V1Namespace[]; pods: V1Pod[] } {
  return {
    namespaces: model.namespaces.map((n) => ({ metadata: { name: n.name, labels: { ...n.labels } } })),
    pods: model.pods.map((p) => ({
      metadata: { name: p.name, namespace: p.namespace, labels: { ...p.labels } },
      spec: { containers: p.containers.map((c) => ({ name: c.name, image: "x", ports: c.ports.map((cp) => ({ ...cp })) })) },
      status: { podIP: podIp(`${p.namespace}/${p.name}`) },
    })),
  };
}


/** A case's action applied to an in-memory cluster state (the model's and the kernel test's view). */
export function applyToState(state: { namespaces: V1Namespace[]; pods: V1Pod[]; policies: V1NetworkPolicy[] }, a: Action, podIp: (key: string) => string): void {
  if (a.action === "apply") {
    const p = fillTemplates(a.policy, podIp);
    state.policies = state.policies.filter((x) => !(x.metadata?.namespace === p.metadata?.namespace && x.metadata?.name === p.metadata?.name));
    state.policies.push(p);
  } else if (a.action === "delete") {
    state.policies = state.policies.filter((x) => !(x.metadata?.namespace === a.namespace && x.metadata?.name === a.name));
  } else if (a.action === "setPodLabels") {
    const [ns, name] = a.pod.split("/");
    state.pods.find((p) => p.metadata?.namespace === ns && p.metadata?.name === name)!.metadata!.labels = { ...a.labels };
  } else {
    state.namespaces.find((n) => n.metadata?.name === a.namespace)!.metadata!.labels = { ...a.labels, "kubernetes.io/metadata.name": a.namespace };
  }
}

/**
 * The corpus's servers in one pod: socat for TCP 80/81 and, for UDP 80/81, a
 * small select loop (socat's forking UDP server loses datagrams and dies
 * under seventy concurrent probes). Shell commands, each to run in the background.
 */
export function listenerCommands(): string[] {
  const udp = [
    "import select, socket",
    "socks = []",
    "for port in (80, 81):",
    "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port)); socks.append(s)",
    "while True:",
    "    for s in select.select(socks, [], [])[0]:",
    "        data, peer = s.recvfrom(2048); s.sendto(b'ok', peer)",
  ].join("\n");
  return [...[80, 81].map((port) => `socat TCP-LISTEN:${port},reuseaddr,fork SYSTEM:'echo ok'`), `python3 -c "${udp}"`];
}
