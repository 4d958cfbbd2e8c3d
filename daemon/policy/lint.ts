import type { V1NetworkPolicy, V1NetworkPolicyPeer } from "@kubernetes/client-node";
import { parseCidr } from "../../lib/net/cidr.ts";
import { rulePeers } from "./compile.ts";

// Policy input that Twill cannot enforce as written, or that cannot mean what
// its author wanted. The apiserver validates most fields; these are what is
// left (and what an older or patched apiserver might let through). Each
// finding is one sentence the controller logs once per policy version; the
// compiler treats the input by the spec (e.g. an unparsable ipBlock selects
// nothing) and carries on.

const PROTOCOLS = new Set(["TCP", "UDP", "SCTP"]);

function peerProblems(peer: V1NetworkPolicyPeer): string[] {
  if (!peer.ipBlock) return [];
  const out: string[] = [];
  for (const c of [peer.ipBlock.cidr, ...(peer.ipBlock.except ?? [])]) {
    try {
      if (parseCidr(c).family === 6) out.push(`ipBlock ${c} is IPv6: Twill enforces IPv4 NetworkPolicy only so far, so it has no effect`);
    } catch {
      out.push(`ipBlock ${c} is not a CIDR: it selects nothing`);
    }
  }
  return out;
}

export function lintPolicy(p: V1NetworkPolicy): string[] {
  const out: string[] = [];
  for (const dir of ["Ingress", "Egress"] as const) {
    const rules = dir === "Ingress" ? (p.spec?.ingress ?? []) : (p.spec?.egress ?? []);
    for (const r of rules) {
      for (const peer of rulePeers(r, dir) ?? []) out.push(...peerProblems(peer));
      for (const port of r.ports ?? []) {
        if (port.protocol && !PROTOCOLS.has(port.protocol)) out.push(`protocol ${port.protocol} is not TCP, UDP or SCTP: the port entry matches nothing`);
        if (port.endPort !== undefined && (typeof port.port !== "number" || port.endPort < port.port)) out.push(`endPort ${port.endPort} needs a numeric port not above it: the range matches nothing`);
      }
    }
  }
  for (const t of p.spec?.policyTypes ?? []) if (t !== "Ingress" && t !== "Egress") out.push(`policyTypes entry ${t} is neither Ingress nor Egress: ignored`);
  return [...new Set(out)];
}
