import { TwillError } from "../../lib/errors.ts";
import type { DaemonConfig } from "../config.ts";
import type { Backend, BackendContext, BackendFactory } from "./backend.ts";
import { bgpBackend } from "./bgp/bgp.ts";
import { watchBgpCrds } from "./bgp/crd.ts";
import { hostGwBackend } from "./hostgw/hostgw.ts";
import { vxlanBackend } from "./vxlan/vxlan.ts";

// Backend name → constructor. A new backend is a folder plus one line here.
const registry = new Map<string, BackendFactory>([
  ["vxlan", vxlanBackend],
  ["host-gw", hostGwBackend],
  ["bgp", (cfg, ctx) => bgpBackend(cfg, ctx ? { log: ctx.log, crds: watchBgpCrds(ctx.kc, ctx.log, ctx.onWatchError), ...(ctx.twillBinary ? { twillBinary: ctx.twillBinary } : {}), ...(ctx.sessions ? { sessions: ctx.sessions } : {}) } : {})],
]);

/** The configured backend's constructor: an unknown name is a config error, found before anything starts. */
export function backendFactory(cfg: DaemonConfig): (ctx?: BackendContext) => Backend {
  const factory = registry.get(cfg.backend);
  if (!factory) {
    throw new TwillError("CONFIG_INVALID", `unknown backend "${cfg.backend}"; this build has ${[...registry.keys()].join(", ")}`);
  }
  return (ctx) => factory(cfg, ctx);
}

export function createBackend(cfg: DaemonConfig, ctx?: BackendContext): Backend {
  return backendFactory(cfg)(ctx);
}
