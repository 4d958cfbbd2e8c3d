// Reading a proxy's kernel state without knowing the proxy: counts from
// `nft -j list ruleset` (iptables-nft's rules are nftables rules too, so one
// reader serves kube-proxy's iptables mode, its nftables mode and Twill), and
// `nft monitor`'s text split into the transactions that made it.

export interface RulesetCounts {
  tables: number;
  chains: number;
  rules: number;
  sets: number;
  maps: number;
  /** Elements of named sets and maps (anonymous sets inside rules count as part of their rule). */
  elements: number;
}

export function countRuleset(json: string): RulesetCounts {
  const items = (JSON.parse(json) as { nftables?: Record<string, { elem?: unknown[] }>[] }).nftables ?? [];
  const c: RulesetCounts = { tables: 0, chains: 0, rules: 0, sets: 0, maps: 0, elements: 0 };
  for (const it of items) {
    if (it.table) c.tables++;
    if (it.chain) c.chains++;
    if (it.rule) c.rules++;
    if (it.set) c.sets++;
    if (it.map) c.maps++;
    c.elements += (it.set ?? it.map)?.elem?.length ?? 0;
  }
  return c;
}

export interface MonitorLine {
  t: number;
  line: string;
}

/** One committed transaction as `nft monitor` shows it: its events, then "# new generation N by process P (comm)". */
export interface Transaction {
  generation: number;
  process: string;
  /** When its first event line was read: the kernel queues a commit's events together, so this is the commit. */
  t: number;
  /** When its generation line was read (late by the printing of every event before it). */
  end: number;
  lines: string[];
}

const GENERATION = /^# new generation (\d+) by process \d+ \((.*)\)\s*$/;

/** Complete transactions only: events after the last generation line belong to one still being printed. */
export function transactions(lines: readonly MonitorLine[]): Transaction[] {
  const out: Transaction[] = [];
  let pending: MonitorLine[] = [];
  for (const l of lines) {
    const g = GENERATION.exec(l.line);
    if (!g) {
      pending.push(l);
      continue;
    }
    out.push({ generation: Number(g[1]), process: g[2]!, t: pending[0]?.t ?? l.t, end: l.t, lines: pending.map((p) => p.line) });
    pending = [];
  }
  return out;
}

/** A matcher for one IPv4 address as nft and iptables print it (10.0.0.1 never matches 10.0.0.10). */
export const addressPattern = (ip: string) => new RegExp(`(?<![\\d.])${ip.replaceAll(".", "\\.")}(?![\\d])`);

/** The first transaction read at or after `after` (epoch ms) that names `ip`. */
export function firstWith(txs: readonly Transaction[], after: number, ip: string): Transaction | undefined {
  const re = addressPattern(ip);
  return txs.find((tx) => tx.t >= after && tx.lines.some((l) => re.test(l)));
}

/** How many of `wanted` appear as addresses anywhere in a ruleset listing. */
export function addressesPresent(listing: string, wanted: ReadonlySet<string>): number {
  const seen = new Set<string>();
  for (const m of listing.matchAll(/(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d])/g)) if (wanted.has(m[0])) seen.add(m[0]);
  return seen.size;
}
