import { parseIp } from "../../lib/net/cidr.ts";
import type { NftDescription, NftSet } from "./compile.ts";

// Comparing what the kernel holds of Twill's policy table with the
// description Twill last programmed. Pure: nft's listings in, differences
// out (one short sentence each, for the drift log line).
//
// Chains, rules and set declarations are compared as text: the compiler
// writes rules in the form nft prints them (nft 1.0.6; a freshly programmed
// table verifies clean, test/policy/heal.test.ts). Elements are compared as
// values, not text: nft prints an address range that is a prefix as
// `a.b.c.d/n`, a protocol by its name, so each element becomes numeric
// intervals on both sides.

export interface ListedChain {
  /** The base-chain line (`type filter hook … policy …;`), if any. */
  hook?: string;
  rules: string[];
}

export interface ListedSet {
  kind: "set" | "map";
  /** Declaration lines in the listing (`type …`, `flags …`), elements left out. */
  lines: string[];
}

/** What a listing shows of one table; `present` false when no block for it was listed. */
export interface Listing {
  present: boolean;
  sets: Map<string, ListedSet>;
  chains: Map<string, ListedChain>;
  /** Blocks of other kinds (flowtables, counters, …): Twill writes none. */
  others: string[];
}

/**
 * Parses the blocks of table `inet <table>` in nft's text listings (`list
 * table -t`, `list chains`, `list sets -t`, `list maps -t`; several may be
 * concatenated: the blocks are merged).
 */
export function parseListing(text: string, table: string): Listing {
  const out: Listing = { present: false, sets: new Map(), chains: new Map(), others: [] };
  let inTable = false;
  let current: { lines: string[] } | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!inTable) {
      if (line === `table inet ${table} {`) inTable = out.present = true;
      continue;
    }
    if (!current) {
      const m = /^(\S+) (\S+) \{$/.exec(line);
      if (m) {
        const kind = m[1]!;
        current = { lines: [] };
        if (kind !== "set" && kind !== "map" && kind !== "chain") out.others.push(`${kind} ${m[2]}`);
        else if (kind === "chain") {
          const c = out.chains.get(m[2]!) ?? { rules: [] };
          out.chains.set(m[2]!, c);
          current.lines = c.rules;
        } else {
          const s = { kind: kind as "set" | "map", lines: [] as string[] };
          out.sets.set(m[2]!, s);
          current.lines = s.lines;
        }
      } else if (line === "}") inTable = false;
      continue;
    }
    if (line === "}") {
      current = undefined;
      continue;
    }
    if (line !== "") current.lines.push(line);
  }
  // A chain's first line is its hook when it is a base chain.
  for (const c of out.chains.values()) {
    if (c.rules[0]?.startsWith("type ") && c.rules[0].includes(" hook ")) c.hook = c.rules.shift();
  }
  return out;
}

const setLines = (s: NftSet) => [`type ${s.type}`, ...(s.flags ? [`flags ${s.flags}`] : []), ...(s.extra ?? [])];

/**
 * Differences between the listed table and `want`. `withRules`: the listing
 * holds the chains' rules (`list table`); `list chains` shows names and hooks only.
 */
export function compareListing(want: NftDescription, have: Listing, withRules: boolean): string[] {
  if (!have.present) return [`table inet ${want.table} is missing`];
  const out: string[] = [];
  const wantSets = new Map(want.sets.map((s) => [s.name, s]));
  for (const s of want.sets) {
    const h = have.sets.get(s.name);
    if (!h) out.push(`${s.kind} ${s.name} is missing`);
    else if (h.kind !== s.kind || h.lines.join("; ") !== setLines(s).join("; ")) out.push(`${s.kind} ${s.name} is declared as ${h.kind} { ${h.lines.join("; ")} }`);
  }
  for (const [name, h] of have.sets) if (!wantSets.has(name)) out.push(`foreign ${h.kind} ${name}`);
  const wantChains = new Map(want.chains.map((c) => [c.name, c]));
  for (const c of want.chains) {
    const h = have.chains.get(c.name);
    if (!h) {
      out.push(`chain ${c.name} is missing`);
      continue;
    }
    if ((h.hook ?? "") !== (c.hook ?? "")) out.push(`chain ${c.name} has hook "${h.hook ?? "none"}"`);
    if (!withRules) continue;
    const n = Math.max(h.rules.length, c.rules.length);
    for (let i = 0; i < n; i++) {
      if (h.rules[i] === c.rules[i]) continue;
      out.push(`chain ${c.name} holds ${h.rules.length} rules, want ${c.rules.length}; rule ${i + 1} is ${h.rules[i] === undefined ? "missing" : `"${h.rules[i]}"`}`);
      break;
    }
  }
  for (const name of have.chains.keys()) if (!wantChains.has(name)) out.push(`foreign chain ${name}`);
  for (const o of have.others) out.push(`foreign ${o}`);
  return out;
}

// Elements as values. A component is an interval of numbers ("lo-hi"):
// addresses as integers, protocols by number.

const PROTOCOLS: Record<string, number> = { icmp: 1, igmp: 2, tcp: 6, udp: 17, ipv6: 41, gre: 47, esp: 50, ah: 51, "ipv6-icmp": 58, icmpv6: 58, sctp: 132, udplite: 136 };

const IPV4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/;

/** A value as a decimal string; IPv4 without BigInt (a full check converts ~400,000 of them). */
function scalar(v: string | number): string {
  if (typeof v === "number") return String(v);
  if (/^\d+$/.test(v)) return v;
  const m = IPV4.exec(v);
  if (m) return String(((+m[1]! << 24) >>> 0) + (+m[2]! << 16) + (+m[3]! << 8) + +m[4]!);
  if (v in PROTOCOLS) return String(PROTOCOLS[v]!);
  return String(parseIp(v).value);
}

/** One component of an element as Twill writes it: `x` or `lo-hi` (addresses, protocols, ports). */
function textComponent(t: string): string {
  // An IPv6 address holds no "-", so a dash always separates a range.
  const dash = t.indexOf("-");
  if (dash < 0) {
    const v = scalar(t);
    return `${v}-${v}`;
  }
  return `${scalar(t.slice(0, dash))}-${scalar(t.slice(dash + 1))}`;
}

/** nft -j's form of one component: a value, {range: [lo, hi]} or {prefix: {addr, len}}. */
function jsonComponent(c: unknown): string {
  if (typeof c === "string" || typeof c === "number") {
    const v = scalar(c);
    return `${v}-${v}`;
  }
  const o = c as { range?: [string | number, string | number]; prefix?: { addr: string; len: number } };
  if (o.range) return `${scalar(o.range[0])}-${scalar(o.range[1])}`;
  if (o.prefix) {
    const { family, value } = parseIp(o.prefix.addr);
    const bits = family === 4 ? 32n : 128n;
    const host = (1n << (bits - BigInt(o.prefix.len))) - 1n;
    return `${(value & ~host).toString()}-${(value | host).toString()}`;
  }
  return JSON.stringify(c);
}

/** An element of `s` as Twill writes it, in comparable form. */
export function elementValue(s: NftSet, e: string): string {
  const [key, verdict] = s.kind === "map" ? e.split(" : ") : [e];
  const k = key!.split(" . ").map(textComponent).join(" . ");
  return verdict === undefined ? k : `${k} : ${verdict}`;
}

/** An element of nft -j's `elem` list, in the same form (a map's is [key, verdict]). */
export function kernelElementValue(kind: "set" | "map", e: unknown): string {
  const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
  const keyOf = (k: unknown) => (isObject(k) && Array.isArray(k.concat) ? k.concat : [k]).map(jsonComponent).join(" . ");
  // An element with options (timeout, counter…) is wrapped as {elem: {val: …}}.
  const unwrap = (x: unknown) => (isObject(x) && isObject(x.elem) && "val" in x.elem ? x.elem.val : x);
  if (kind === "set") return keyOf(unwrap(e));
  const [k, v] = e as [unknown, unknown];
  const verdict = v as { jump?: { target: string }; goto?: { target: string } } | string;
  const text = typeof verdict === "string" ? verdict : verdict.jump ? `jump ${verdict.jump.target}` : verdict.goto ? `goto ${verdict.goto.target}` : JSON.stringify(verdict);
  return `${keyOf(unwrap(k))} : ${text}`;
}

/** Differences between the elements nft lists for `s` and the ones Twill wrote. */
export function compareElements(s: NftSet, listed: unknown[]): string[] {
  const want = new Set(s.elements.map((e) => elementValue(s, e)));
  const foreign: string[] = [];
  let found = 0;
  for (const e of listed) {
    const v = kernelElementValue(s.kind, e);
    if (want.has(v)) found++;
    else foreign.push(JSON.stringify(e));
  }
  const out: string[] = [];
  if (found < want.size) {
    const have = new Set(listed.map((e) => kernelElementValue(s.kind, e)));
    const missing = s.elements.filter((e) => !have.has(elementValue(s, e)));
    out.push(`${s.kind} ${s.name} lacks ${missing.length} of its ${want.size} elements (${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", …" : ""})`);
  }
  if (foreign.length) out.push(`${s.kind} ${s.name} holds ${foreign.length} foreign elements (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", …" : ""})`);
  return out;
}
