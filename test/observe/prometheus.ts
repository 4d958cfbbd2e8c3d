import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execIn } from "../../lib/kernel/netns.ts";
import { startIn, stop, tail, type LabProcess } from "../../lab/process.ts";
import { until } from "../support/until.ts";

// A real Prometheus (Debian's package) as a process inside one of a lab's
// namespaces, scraping the lab's daemons every second; queried through its
// HTTP API from inside that namespace. Never a service of this machine.

export interface Prometheus {
  query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** The one value of a query that returns one series (NaN when it returns none). */
  scalar(promql: string): Promise<number>;
  close(): void;
  log: string;
}

export async function startPrometheus(ns: string, targets: string[], port = 19090): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), "obs-prometheus-"));
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: twill\n    static_configs:\n      - targets: ${JSON.stringify(targets)}\n`,
  );
  const log = join(dir, "prometheus.log");
  const proc: LabProcess = startIn(ns, "prometheus", ["prometheus", `--config.file=${config}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--storage.tsdb.retention.time=1h"], log);
  const api = async (path: string, params: Record<string, string>) => {
    const args = Object.entries(params).flatMap(([k, v]) => ["--data-urlencode", `${k}=${v}`]);
    const r = await execIn(ns, ["curl", "-sfG", ...args, `http://127.0.0.1:${port}${path}`], { allowFailure: true });
    if (r.code !== 0) throw new Error(`prometheus ${path} failed (curl exit ${r.code}): ${tail(log, 5)}`);
    return JSON.parse(r.stdout) as { status: string; data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
  };
  const p: Prometheus = {
    log,
    async query(promql) {
      const r = await api("/api/v1/query", { query: promql });
      if (r.data.resultType !== "vector") throw new Error(`query ${promql} returned a ${r.data.resultType}, not a vector`);
      return r.data.result;
    },
    async scalar(promql) {
      const r = await p.query(promql);
      if (r.length > 1) throw new Error(`query ${promql} returned ${r.length} series`);
      return r.length ? Number(r[0]!.value[1]) : NaN;
    },
    close() {
      stop(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await until("prometheus scraping every target", async () => {
      if (proc.exited()) throw new Error(`prometheus exited: ${tail(log)}`);
      try {
        return (await p.scalar('count(up{job="twill"} == 1)')) === targets.length;
      } catch {
        return false;
      }
    });
  } catch (err) {
    p.close();
    throw err;
  }
  return p;
}
