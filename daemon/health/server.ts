import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Metrics } from "./metrics.ts";

export interface HealthState {
  live(): boolean;
  ready(): boolean;
}

/** Answers the operator API's read-only calls (daemon/api); false when the path is not one. */
export type CtlHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** /healthz, /readyz and /metrics (Prometheus text) on one small HTTP server, and the read-only operator API when given. */
export function startHealthServer(address: string, port: number, state: HealthState, metrics: Metrics, ctl?: CtlHandler): Promise<Server> {
  const server = createServer((req, res) => {
    const reply = (code: number, body: string, type = "text/plain") => {
      res.writeHead(code, { "content-type": type });
      res.end(body);
    };
    if (req.url === "/healthz") return reply(state.live() ? 200 : 500, state.live() ? "ok\n" : "reconcile loop stalled\n");
    if (req.url === "/readyz") return reply(state.ready() ? 200 : 503, state.ready() ? "ready\n" : "dataplane not programmed yet\n");
    if (req.url === "/metrics") {
      void metrics.registry.metrics().then((text) => reply(200, text, metrics.registry.contentType));
      return;
    }
    if (ctl?.(req, res)) return;
    reply(404, "not found\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => resolve(server));
  });
}
