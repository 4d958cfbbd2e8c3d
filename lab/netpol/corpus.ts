import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { formatCidr, mask, parseIp } from "../../lib/net/cidr.ts";

// The shared NetworkPolicy conformance corpus, read by its format only
// (../shared/netpol-conformance/README.md): new cases need no code.

export const CORPUS = resolve(import.meta.dirname, "../../../shared/netpol-conformance");

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

