import { createServer, type Server } from "node:http";
import type { Logger } from "../../lib/log.ts";

// What a cloud load balancer asks a node before sending it a Service's
// traffic: for every Service with externalTrafficPolicy Local, an HTTP server
// on its healthCheckNodePort answers 200 while this node has a local
// endpoint and 503 while it has none, with kube-proxy's JSON body (load
// balancers and upstream's e2e read it). Plus the proxy's own /healthz and
// /livez on port 10256, where kube-proxy serves them.

export const PROXY_HEALTHZ_PORT = 10256;

export interface HealthCheckService {
  namespace: string;
  name: string;
  localEndpoints: number;
}

export class HealthCheckServers {
  private readonly log: Logger;
  private readonly servers = new Map<number, { server: Server; svc: HealthCheckService }>();
  private healthz: Server | undefined;
  private lastSync = 0;

  constructor(log: Logger) {
    this.log = log;
  }

  /** The proxy programmed its table (healthz answers 200 while this is recent). */
  synced(): void {
    this.lastSync = Date.now();
  }

  startHealthz(address: string, port = PROXY_HEALTHZ_PORT, staleMs = 60_000): void {
    if (this.healthz) return;
    this.healthz = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (path !== "/healthz" && path !== "/livez") {
        res.writeHead(404).end();
        return;
      }
      const ok = this.lastSync > 0 && Date.now() - this.lastSync < staleMs;
      res.writeHead(ok ? 200 : 503, { "Content-Type": "application/json" }).end(JSON.stringify({ lastUpdated: new Date(this.lastSync).toISOString(), currentTime: new Date().toISOString() }));
    });
    this.healthz.on("error", (err) => this.log.warn({ code: "PROXY_HEALTHZ_LISTEN", details: String(err) }, `the proxy's healthz could not listen on ${address}:${port} (is kube-proxy still running?)`));
    this.healthz.listen(port, address);
  }

  /** Serves exactly these ports (healthCheckNodePort → its Service). */
  update(want: Map<number, HealthCheckService>): void {
    for (const [port, s] of this.servers) {
      if (want.has(port)) continue;
      s.server.close();
      this.servers.delete(port);
    }
    for (const [port, svc] of want) {
      const have = this.servers.get(port);
      if (have) {
        have.svc = svc;
        continue;
      }
      const entry = { server: createServer((_req, res) => this.answer(entry.svc, res)), svc };
      entry.server.on("error", (err) => this.log.warn({ code: "HEALTH_CHECK_LISTEN", port, service: `${svc.namespace}/${svc.name}`, details: String(err) }, `healthCheckNodePort ${port} could not be served`));
      entry.server.listen(port);
      this.servers.set(port, entry);
    }
  }

  private answer(svc: HealthCheckService, res: import("node:http").ServerResponse): void {
    const body = JSON.stringify({ service: { namespace: svc.namespace, name: svc.name }, localEndpoints: svc.localEndpoints, serviceProxyHealthy: true });
    res.writeHead(svc.localEndpoints > 0 ? 200 : 503, { "Content-Type": "application/json", "X-Content-Type-Options": "nosniff", "X-Load-Balancing-Endpoint-Weight": String(svc.localEndpoints) }).end(body);
  }

  close(): void {
    for (const s of this.servers.values()) s.server.close();
    this.servers.clear();
    this.healthz?.close();
    this.healthz = undefined;
  }
}
