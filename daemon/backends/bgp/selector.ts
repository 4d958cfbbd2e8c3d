import { TwillError } from "../../../lib/errors.ts";

// Label selectors in kubectl's string syntax, as BGPPeer.spec.nodeSelector
// carries them: "k=v", "k==v", "k!=v", "k", "!k", "k in (a,b)", "k notin (a,b)",
// comma-separated, all must hold. Empty selects everything.

type Req = (labels: Record<string, string>) => boolean;

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** Splits on commas outside parentheses. */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) (out.push(cur), (cur = ""));
    else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim());
}

function requirement(term: string, whole: string): Req {
  const bad = () => new TwillError("BGP_PEER_INVALID", `node selector "${whole}" is not a label selector (at "${term}"): use k=v, k!=v, k, !k, k in (a,b) or k notin (a,b)`);
  const key = (k: string) => {
    if (!KEY.test(k)) throw bad();
    return k;
  };
  const value = (v: string) => {
    if (!VALUE.test(v)) throw bad();
    return v;
  };
  let m = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term);
  if (m) {
    const k = key(m[1]!);
    const set = new Set(m[3]!.split(",").map((v) => value(v.trim())));
    return m[2] === "in" ? (l) => k in l && set.has(l[k]!) : (l) => !(k in l) || !set.has(l[k]!);
  }
  m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term);
  if (m) {
    const [k, v] = [key(m[1]!), value(m[3]!)];
    return m[2] === "!=" ? (l) => l[k] !== v : (l) => l[k] === v;
  }
  if (term.startsWith("!")) {
    const k = key(term.slice(1).trim());
    return (l) => !(k in l);
  }
  const k = key(term);
  return (l) => k in l;
}

/** Parses a selector; throws BGP_PEER_INVALID with the offending term. */
export function parseSelector(text: string): (labels: Record<string, string>) => boolean {
  if (!text.trim()) return () => true;
  const reqs = terms(text).map((t) => requirement(t, text));
  return (labels) => reqs.every((r) => r(labels));
}
