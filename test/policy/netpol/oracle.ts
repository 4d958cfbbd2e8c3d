// A second, deliberately separate reading of NetworkPolicy (networking.k8s.io/v1),
// used only to write the expectations of this directory's cases. It shares no
// code with daemon/policy/model.ts: if the two agree on every cell, that is
// evidence; if one simply called the other, it would be none.
//
// It works on the wire form of the objects (policies as JSON, `from` not
// `_from`) and on IPv4 only, which is all the cases need. Written from the
// API reference and upstream's code: policyTypes defaulting in k/k
// pkg/apis/networking/v1/defaults.go, selector operators in apimachinery
// pkg/labels/selector.go (Requirement.Matches).

export type Proto = "TCP" | "UDP" | "SCTP";
export type Labels = Record<string, string>;

export interface Expression {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}
export interface Selector {
  matchLabels?: Labels;
  matchExpressions?: Expression[];
}
export interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}
export interface PortEntry {
  protocol?: Proto;
  port?: number | string;
  endPort?: number;
}
export interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: PortEntry[];
}
export interface Policy {
  apiVersion?: string;
  kind?: string;
  metadata: { namespace: string; name: string };
  spec: { podSelector: Selector; policyTypes?: ("Ingress" | "Egress")[]; ingress?: Rule[]; egress?: Rule[] };
}
export interface ContainerPort {
  name: string;
  containerPort: number;
  protocol: Proto;
}
export interface PodView {
  namespace: string;
  name: string;
  labels: Labels;
  ip: string;
  ports: ContainerPort[];
}
export interface World {
  /** Namespace name → its labels, kubernetes.io/metadata.name included. */
  namespaces: Map<string, Labels>;
  pods: PodView[];
  policies: Policy[];
}

// --- label selectors (apimachinery's Requirement semantics) ---

function requirementHolds(e: Expression, labels: Labels): boolean {
  const present = e.key in labels;
  const value = labels[e.key];
  const listed = (e.values ?? []).some((v) => v === value);
  if (e.operator === "In") return present && listed;
  // NotIn is satisfied by an object without the key: "not one of these values".
  if (e.operator === "NotIn") return !present || !listed;
  if (e.operator === "Exists") return present;
  if (e.operator === "DoesNotExist") return !present;
  throw new Error(`oracle: unknown selector operator ${String(e.operator)}`);
}

/** Every matchLabels pair and every expression must hold; an empty selector holds for everything. */
export function selects(sel: Selector, labels: Labels): boolean {
  const pairs = Object.entries(sel.matchLabels ?? {});
  return pairs.every(([k, v]) => labels[k] === v) && (sel.matchExpressions ?? []).every((e) => requirementHolds(e, labels));
}

// --- IPv4 arithmetic, on unsigned 32-bit numbers ---

function ipv4(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new Error(`oracle: not an IPv4 address: ${text}`);
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export interface Block {
  base: number;
  size: number;
}

/** A CIDR as its first address and length; host bits must be clear (newer apiservers refuse them). */
export function block(cidr: string): Block {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m || Number(m[2]) > 32) throw new Error(`oracle: not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - Number(m[2]));
  const base = ipv4(m[1]!);
  if (base % size !== 0) throw new Error(`oracle: host bits set in ${cidr}`);
  return { base, size };
}

const inBlock = (b: Block, addr: number) => addr >= b.base && addr < b.base + b.size;

/** The canonical network of `len` bits around `ip`, as the {{podNet}} template produces it. */
export function networkOf(ip: string, len: number): string {
  const size = 2 ** (32 - len);
  const base = Math.floor(ipv4(ip) / size) * size;
  return `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join(".")}/${len}`;
}

function ipBlockHolds(b: NonNullable<Peer["ipBlock"]>, ip: string): boolean {
  const addr = ipv4(ip);
  return inBlock(block(b.cidr), addr) && !(b.except ?? []).some((x) => inBlock(block(x), addr));
}

// --- policies ---

/** The directions a policy isolates, after the apiserver's defaulting. */
export function directions(p: Policy): ("Ingress" | "Egress")[] {
  if (p.spec.policyTypes && p.spec.policyTypes.length > 0) return p.spec.policyTypes;
  return p.spec.egress && p.spec.egress.length > 0 ? ["Ingress", "Egress"] : ["Ingress"];
}

function peerHolds(world: World, peer: Peer, policyNamespace: string, other: PodView): boolean {
  if (peer.ipBlock) return ipBlockHolds(peer.ipBlock, other.ip);
  if (!peer.namespaceSelector && !peer.podSelector) throw new Error("oracle: a peer with nothing in it is invalid");
  const nsLabels = world.namespaces.get(other.namespace);
  if (!nsLabels) throw new Error(`oracle: pod ${other.namespace}/${other.name} in an unknown namespace`);
  // No namespaceSelector: the policy's own namespace. One present: those namespaces, narrowed by a podSelector beside it.
  const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, nsLabels) : other.namespace === policyNamespace;
  const podOk = peer.podSelector ? selects(peer.podSelector, other.labels) : true;
  return nsOk && podOk;
}

/** A port entry against a packet to `server` (the pod whose container ports name the port). */
function portHolds(entry: PortEntry, server: PodView, port: number, proto: Proto): boolean {
  const want = entry.protocol ?? "TCP";
  if (want !== proto) return false;
  if (entry.port === undefined) return true;
  if (typeof entry.port === "number") return port >= entry.port && port <= (entry.endPort ?? entry.port);
  if (entry.endPort !== undefined) throw new Error("oracle: endPort needs a numeric port");
  return server.ports.some((cp) => cp.name === entry.port && cp.containerPort === port && cp.protocol === want);
}

function ruleHolds(world: World, rule: Rule, peers: Peer[] | undefined, policyNamespace: string, other: PodView, server: PodView, port: number, proto: Proto): boolean {
  const portOk = !rule.ports || rule.ports.length === 0 || rule.ports.some((e) => portHolds(e, server, port, proto));
  const peerOk = !peers || peers.length === 0 || peers.some((pe) => peerHolds(world, pe, policyNamespace, other));
  return portOk && peerOk;
}

/**
 * Is `self` allowed this direction of the connection with `other`? Not
 * isolated in that direction: yes. Isolated: some rule of some policy that
 * isolates it must admit the packet (rules only ever add).
 */
function sideAllows(world: World, dir: "Ingress" | "Egress", self: PodView, other: PodView, port: number, proto: Proto): boolean {
  const mine = world.policies.filter((p) => p.metadata.namespace === self.namespace && directions(p).includes(dir) && selects(p.spec.podSelector, self.labels));
  if (mine.length === 0) return true;
  // Named ports belong to the server: the receiving pod itself for ingress, the other end for egress.
  const server = dir === "Ingress" ? self : other;
  return mine.some((p) => {
    const rules = (dir === "Ingress" ? p.spec.ingress : p.spec.egress) ?? [];
    return rules.some((r) => ruleHolds(world, r, dir === "Ingress" ? r.from : r.to, p.metadata.namespace, other, server, port, proto));
  });
}

/** A new connection from `client` to `server` on port/proto: the client's egress and the server's ingress must both allow it. */
export function reachable(world: World, client: PodView, server: PodView, port: number, proto: Proto): boolean {
  return sideAllows(world, "Egress", client, server, port, proto) && sideAllows(world, "Ingress", server, client, port, proto);
}
