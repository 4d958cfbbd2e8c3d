import { TwillError } from "../../lib/errors.ts";
import type { DaemonConfig } from "../config.ts";
import type { Backend, BackendFactory } from "./backend.ts";
import { bgpBackend } from "./bgp/bgp.ts";
import { hostGwBackend } from "./hostgw/hostgw.ts";
import { vxlanBackend } from "./vxlan/vxlan.ts";

// Backend name → constructor. A new backend is a folder plus one line here.
const registry = new Map<string, BackendFactory>([
  ["vxlan", vxlanBackend],
  ["host-gw", hostGwBackend],
  ["bgp", (cfg) => bgpBackend(cfg)],
]);

export function createBackend(cfg: DaemonConfig): Backend {
  const factory = registry.get(cfg.backend);
  if (!factory) {
    throw new TwillError("CONFIG_INVALID", `unknown backend "${cfg.backend}"; this build has ${[...registry.keys()].join(", ")}`);
  }
  return factory(cfg);
}
