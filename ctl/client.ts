import { existsSync } from "node:fs";
import { request } from "node:http";
import { CTL_PREFIX, EXIT, type ApiError } from "../lib/ctl-api.ts";
import { CtlError } from "./errors.ts";

// How twillctl reaches a node daemon: its unix socket on this node (every
// call), or its health port over HTTP (read-only calls; cluster-wide views).

export type Target = { socket: string; node?: string } | { host: string; port: number; node: string };

const describe = (t: Target) => ("socket" in t ? `the daemon's socket ${t.socket}` : `the daemon on ${t.node} (${t.host}:${t.port})`);

export interface CallOptions {
  method?: "GET" | "POST";
  body?: unknown;
  timeoutMs?: number;
  /** Streaming reply: each line as it comes; resolves when the daemon closes. */
  onLine?: (line: string) => void;
}

export function call<T>(t: Target, path: string, opts: CallOptions = {}): Promise<T> {
  if ("socket" in t && !existsSync(t.socket)) {
    return Promise.reject(new CtlError(EXIT.UNREACHABLE, `no daemon socket at ${t.socket}: run twillctl on a node where the Twill daemon runs (kubectl -n twill-system exec ds/twill -- twillctl …), pass --socket, or use --node/--all-nodes with a kubeconfig`));
  }
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...("socket" in t ? { socketPath: t.socket } : { host: t.host, port: t.port }),
        path: `${CTL_PREFIX}${path}`,
        method: opts.method ?? "GET",
        headers: body ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {},
        timeout: opts.timeoutMs ?? 15_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          if (!opts.onLine || res.statusCode !== 200) {
            text += d;
            return;
          }
          text += d;
          const lines = text.split("\n");
          text = lines.pop()!;
          for (const l of lines) if (l) opts.onLine(l);
        });
        res.on("end", () => {
          if (res.statusCode === 200) return resolve((opts.onLine ? undefined : JSON.parse(text)) as T);
          let err: ApiError = { code: "HTTP_" + res.statusCode, message: text.trim() };
          try {
            err = JSON.parse(text) as ApiError;
          } catch {
            // not JSON: the health port's own 404 on an older daemon
          }
          const exit = err.code === "NOT_FOUND" ? EXIT.NOT_FOUND : err.code === "FORBIDDEN" ? EXIT.FORBIDDEN : err.code === "BAD_REQUEST" ? EXIT.USAGE : EXIT.DAEMON_ERROR;
          reject(new CtlError(exit, `${describe(t)}: ${err.message} (${err.code})`));
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (err: NodeJS.ErrnoException) => {
      const exit = err.code === "EACCES" || err.code === "EPERM" ? EXIT.FORBIDDEN : EXIT.UNREACHABLE;
      const hint = err.code === "EACCES" ? " (the socket is root's: run as root, or ask for the daemon's --ctl-socket-group)" : "socket" in t ? "" : " (is the daemon's --health-address reachable from here? docs/twillctl.md)";
      reject(new CtlError(exit, `cannot reach ${describe(t)}: ${err.message}${hint}`));
    });
    req.end(body);
  });
}
