import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Metrics } from "./metrics.ts";

export interface HealthState {
  live(): boolean;
  ready(): boolean;
}

/** A scrape waits this long at most for fresh readings; a slower one is served the last values. */
const SCRAPE_HOOK_MS = 2000;

async function beforeScrape(metrics: Metrics): Promise<void> {
  if (metrics.scrapeHooks.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, SCRAPE_HOOK_MS)));
  await Promise.race([Promise.allSettled(metrics.scrapeHooks.map((h) => h())), late]);
  clearTimeout(timer);
}

type Reply = (code: number, body: string, type?: string) => void;

function serveMetrics(metrics: Metrics, reply: Reply): void {
  void beforeScrape(metrics)
    .then(() => metrics.registry.metrics())
    .then(
      (text) => reply(200, text, metrics.registry.contentType),
      (err: unknown) => reply(500, `metrics failed: ${String(err)}\n`),
    );
}

/** An HTTP server answering through `route`, listening once the promise resolves. */
function serve(address: string, port: number, route: (req: IncomingMessage, res: ServerResponse, reply: Reply) => void): Promise<Server> {
  const server = createServer((req, res) => {
    const reply: Reply = (code, body, type = "text/plain") => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    route(req, res, reply);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => resolve(server));
  });
}

/** /metrics and nothing else: what a Prometheus off the node may reach without reaching the operator API. */
export function startMetricsServer(address: string, port: number, metrics: Metrics): Promise<Server> {
  return serve(address, port, (req, _res, reply) => (req.url === "/metrics" ? serveMetrics(metrics, reply) : reply(404, "only /metrics here\n")));
}

/** Answers the operator API's read-only calls (daemon/api); false when the path is not one. */
export type CtlHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** /healthz, /readyz and /metrics (Prometheus text) on one small HTTP server, and the read-only operator API when given. */
export function startHealthServer(address: string, port: number, state: HealthState, metrics: Metrics, ctl?: CtlHandler): Promise<Server> {
  return serve(address, port, (req, res, reply) => {
    if (req.url === "/healthz") return reply(state.live() ? 200 : 500, state.live() ? "ok\n" : "reconcile loop stalled\n");
    if (req.url === "/readyz") return reply(state.ready() ? 200 : 503, state.ready() ? "ready\n" : "dataplane not programmed yet\n");
    if (req.url === "/metrics") return serveMetrics(metrics, reply);
    if (ctl?.(req, res)) return;
    reply(404, "not found\n");
  });
}
