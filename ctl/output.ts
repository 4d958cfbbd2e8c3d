import Table from "cli-table3";
import { writeSync } from "node:fs";
import { styleText } from "node:util";
import { stringify } from "yaml";

// What twillctl prints: borderless tables for people (cli-table3, chosen by
// measurement: docs/twillctl.md), JSON or YAML for scripts, colours only when
// stdout is a terminal (and NO_COLOR is unset).

export type Format = "table" | "json" | "yaml";

const colour = !!process.stdout.isTTY && !process.env.NO_COLOR && process.env.TERM !== "dumb";

type Style = "green" | "red" | "yellow" | "bold" | "dim";
export const paint = (style: Style, text: string) => (colour ? styleText(style, text, { validateStream: false }) : text);

/** ok/allow green, deny/missing/drop red, the rest as they are. */
export function verdictColour(text: string): string {
  if (/^(ok|allow|accept|established|true|yes)$/i.test(text)) return paint("green", text);
  if (/^(deny|drop|missing|extra|differs|leak|false|no|down|idle|active|connect)$/i.test(text)) return paint("red", text);
  return text;
}

const NO_BORDER = { top: "", "top-mid": "", "top-left": "", "top-right": "", bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "", left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "   " };

/** A kubectl-like table: upper-case heads, columns three spaces apart, no borders. */
export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({ head: head.map((h) => paint("bold", h.toUpperCase())), chars: NO_BORDER, style: { head: [], border: [], "padding-left": 0, "padding-right": 0 } });
  for (const r of rows) t.push(r.map(String));
  return t.toString().split("\n").map((l) => l.trimEnd()).join("\n");
}

/** `key: value` lines, keys aligned. */
export function fields(pairs: [string, string | number][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${paint("bold", `${k}:`.padEnd(w + 1))} ${v}`).join("\n");
}

/**
 * Writes to stdout synchronously, all of it: the executable exits right after,
 * and an asynchronous write into a full pipe (64 KiB) was cut off there when
 * the reader was slow. A non-blocking pipe answers EAGAIN: wait a little, go on.
 */
export function writeOut(text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) {
    try {
      off += writeSync(1, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

export function emit(format: Format, data: unknown, human: () => string): void {
  if (format === "json") writeOut(JSON.stringify(data, null, 2) + "\n");
  else if (format === "yaml") writeOut(stringify(data));
  else writeOut(human() + "\n");
}

export function ago(iso: string | null): string {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function duration(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}
