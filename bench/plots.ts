// npm run bench:plots: draws every bench's plots again from the committed
// results (bench-results/<bench>.json and <bench>-series.json) into
// docs/plots/, and links them in docs/benchmarks.md. Runs nothing else.
import { plotBench } from "./support/plot.ts";
import { PLOTTED_BENCHES } from "./support/plot-specs.ts";

for (const bench of PLOTTED_BENCHES) {
  const files = await plotBench(bench);
  console.log(`[plots] ${bench}: ${files.length ? files.map((f) => `docs/plots/${f}`).join(", ") : "no results"}`);
}
