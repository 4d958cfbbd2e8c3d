import { chmodSync, chownSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { CTL_MAX_REQUEST_BYTES, CTL_PREFIX, parsePortProto, type ApiError, type TraceRequest } from "../../lib/ctl-api.ts";
import { TwillError } from "../../lib/errors.ts";
import type { ApiContext } from "./context.ts";
import { drops } from "./drops.ts";
import { explain } from "./explain.ts";
import { ipam, ipamGc } from "./ipam.ts";
import { peers, routes } from "./kernel-diff.ts";
import { status } from "./status.ts";
import { trace } from "./trace.ts";

// The operator API (lib/ctl-api.ts) over HTTP. Served on two transports:
// - the unix socket beside the node file (ctl.sock), mode 0600 root (or 0660
//   with the group given by --ctl-socket-group): every call, the mutating ones
//   included (`ipam gc --apply`, a trace's probe). Its own socket, not the CNI
//   plugin's notice socket: another protocol, other permissions, and an
//   operator's slow call never queues before a pod's ADD.
// - the daemon's health port (read-only): the calls that change nothing, for
//   twillctl's cluster-wide views, and the observing half of a trace (a rule
//   that marks one connection's packets for at most 5 s, in a table of its own).

export type Transport = "socket" | "tcp";

const STATUS: Record<string, number> = { BAD_REQUEST: 400, NOT_FOUND: 404, FORBIDDEN: 403, POLICY_OFF: 409, NOT_SYNCED: 503, TRACE_BUSY: 409 };

function send(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, err: unknown): void {
  const e = err as TwillError;
  const body: ApiError = { code: e.code ?? "INTERNAL", message: e.message + (e.details ? `: ${e.details}` : "") };
  send(res, STATUS[body.code] ?? 500, body);
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      text += d;
      if (text.length > CTL_MAX_REQUEST_BYTES) {
        reject(new TwillError("BAD_REQUEST", "request too large"));
        req.destroy();
      }
    });
    req.on("end", () => {
      try {
        resolve(text ? JSON.parse(text) : {});
      } catch {
        reject(new TwillError("BAD_REQUEST", "the request body is not JSON"));
      }
    });
  });
}

const forbidden = (what: string) => new TwillError("FORBIDDEN", `${what} changes the node: only over the daemon's unix socket (run twillctl on the node, e.g. kubectl -n twill-system exec ds/twill -- twillctl …)`);

function endpointQuery(q: URLSearchParams): { src: string; dst: string; port: number; proto: "tcp" | "udp" | "sctp" } {
  const pp = parsePortProto(`${q.get("port") ?? ""}/${q.get("proto") ?? "tcp"}`);
  const src = q.get("src");
  const dst = q.get("dst");
  if (!src || !dst || !pp) throw new TwillError("BAD_REQUEST", "src, dst and port (1-65535) with proto tcp|udp|sctp are required");
  return { src, dst, ...pp };
}

/** Answers a request under CTL_PREFIX; false for any other path. */
export function handleCtl(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, transport: Transport): boolean {
  const url = new URL(req.url ?? "/", "http://twill");
  if (!url.pathname.startsWith(`${CTL_PREFIX}/`)) return false;
  const path = url.pathname.slice(CTL_PREFIX.length);
  const q = url.searchParams;
  const run = async (): Promise<unknown> => {
    const get = req.method === "GET";
    if (get && path === "/status") return status(ctx);
    if (get && path === "/ipam") return ipam(ctx);
    if (get && path === "/routes") return routes(ctx);
    if (get && path === "/peers") return peers(ctx);
    if (get && path === "/explain") return explain(ctx, endpointQuery(q));
    if (get && path === "/drops") {
      const pod = q.get("pod") ?? undefined;
      if (q.get("follow") === "1") return follow(ctx, res, pod);
      return drops(ctx.nft, ctx.drops, ctx.policy?.inputs(), ctx.nodeName, pod);
    }
    if (req.method === "POST" && path === "/ipam/gc") {
      const body = (await readBody(req)) as { apply?: boolean };
      if (body.apply && transport !== "socket") throw forbidden("ipam gc --apply");
      return ipamGc(ctx, !!body.apply);
    }
    if (req.method === "POST" && path === "/trace") {
      const body = (await readBody(req)) as Partial<TraceRequest>;
      const ep = endpointQuery(new URLSearchParams({ src: String(body.src ?? ""), dst: String(body.dst ?? ""), port: String(body.port ?? ""), proto: String(body.proto ?? "tcp") }));
      const mode = body.mode === "observe" ? "observe" : "probe";
      if (mode === "probe" && transport !== "socket") throw forbidden("a trace's probe");
      return trace(ctx, { ...ep, mode, ...(body.seconds ? { seconds: Number(body.seconds) } : {}) });
    }
    throw new TwillError("NOT_FOUND", `no call ${req.method} ${url.pathname}`);
  };
  run().then((body) => body !== STREAMING && send(res, 200, body), (err: unknown) => fail(res, err));
  return true;
}

const STREAMING = Symbol("streaming");

/** `drops --follow`: one JSON line per drop as the nflog reader sees it, until the client goes. */
function follow(ctx: ApiContext, res: ServerResponse, pod: string | undefined): typeof STREAMING {
  if (!ctx.drops) throw new TwillError("POLICY_OFF", "NetworkPolicy is off on this node: nothing is dropped by policy");
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  const stop = ctx.drops.follow((e) => {
    if (!pod || e.pod === pod) res.write(JSON.stringify(e) + "\n");
  });
  res.on("close", stop);
  return STREAMING;
}

export interface SocketOptions {
  /** A group that may use the socket too (mode 0660); default root only (0600). */
  group?: number;
}

/** Serves the whole API on a unix socket at `path` (a stale socket there is replaced). */
export function startCtlServer(path: string, ctx: ApiContext, opts: SocketOptions = {}): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  try {
    unlinkSync(path);
  } catch {
    // none there
  }
  const server = createServer((req, res) => {
    if (!handleCtl(ctx, req, res, "socket")) send(res, 404, { code: "NOT_FOUND", message: `no call ${req.url}` });
  });
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new TwillError("CTL_SOCKET", `cannot listen on ${path} for twillctl; check that its directory is writable by root`, String(err))));
    // The socket is born 0600 (bind(2) applies the umask), then opened to the group if asked.
    const umask = process.umask(0o177);
    server.listen(path, () => {
      chmodSync(path, opts.group === undefined ? 0o600 : 0o660);
      if (opts.group !== undefined) chownSync(path, 0, opts.group);
      resolve(server);
    });
    process.umask(umask);
  });
}
