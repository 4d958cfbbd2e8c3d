// npm run soak -- --minutes N [--nodes 3] [--record]
// lab/soak.ts does the churn and the measuring; --record merges the figures into bench-results/chaos.json
// (soak_* figures, beside the reliability tests'). docs/reliability.md, Soak.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { runSoak } from "../lab/soak.ts";
import { recordFigure } from "../lab/chaos-figures.ts";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "2" }, nodes: { type: "string", default: "3" }, record: { type: "boolean", default: false } } });
const minutes = Number(values.minutes);
const figures = await runSoak({ minutes, nodes: Number(values.nodes), log: (m) => console.error(`[soak] ${m}`) });
console.log(JSON.stringify({ loadavg: readFileSync("/proc/loadavg", "utf8").trim(), figures }, null, 2));
if (values.record) {
  process.env.TWILL_CHAOS_JSON ??= join(import.meta.dirname, "../bench-results/chaos.json");
  for (const [k, f] of Object.entries(figures)) recordFigure(k, f.value, f.unit, `npm run soak -- --minutes ${minutes}`);
}
