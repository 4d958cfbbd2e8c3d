import { existsSync, readFileSync, writeFileSync } from "node:fs";

// Reliability tests measure as they go; with TWILL_CHAOS_JSON set (npm run soak, or by hand) they merge their
// figures into that file (bench-results/chaos.json's shape: figure -> { value, unit }). Tests never assert on them.

export function recordFigure(figure: string, value: number, unit: string, note?: string): void {
  console.log(`[chaos] ${figure} = ${value} ${unit}${note ? ` (${note})` : ""}`);
  const path = process.env.TWILL_CHAOS_JSON;
  if (!path) return;
  const all = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as { figures?: Record<string, unknown> }) : {};
  const figures = { ...all.figures, [figure]: { value, unit, ...(note ? { note } : {}) } };
  writeFileSync(path, `${JSON.stringify({ bench: "chaos", ...all, measuredAt: new Date().toISOString(), loadavg: readFileSync("/proc/loadavg", "utf8").trim(), figures }, null, 2)}\n`);
}
