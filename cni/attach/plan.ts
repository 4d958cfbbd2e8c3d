import { POD_GATEWAY_V4 } from "../config.ts";
import { CniError, ErrorCode } from "../spec.ts";
import { vethMacs } from "./names.ts";

// Several attachments in one pod (Multus and other meta plugins: the same
// container and namespace, another CNI_IFNAME). What the pod's namespace
// already holds decides what this attachment may add, and a combination that
// cannot work is refused here, before anything is created.

/** The pod's devices and main-table routes, as read before ADD touches anything. */
export interface PodState {
  links: { index: number; name: string; mac: string }[];
  routes: { dst: string; oif: number }[];
}

/** `defaultRoute` of the config: "auto" gives the default route to the first attachment only. */
export type DefaultRoutePolicy = "auto" | boolean;

export interface AttachmentPlan {
  /** This attachment's own pod end exists already (a retried ADD): it is replaced. */
  retry: boolean;
  /** No other Twill attachment of this container is in the pod: this one stands for the pod (the daemon handshake). */
  primary: boolean;
  /** Another attachment holds the link route to 169.254.1.1: this one adds its own with a metric. */
  sharedGateway: boolean;
  /** The routes the pod gets through this attachment. */
  routes: { dst: string; gw?: string }[];
}

export interface PlanRequest {
  containerId: string;
  ifname: string;
  ips: string[];
  /** IPAM's routes; empty: a default route per family, as `defaultRoute` allows. */
  routes: { dst: string; gw?: string }[];
  defaultRoute: DefaultRoutePolicy;
}

const isV6 = (ip: string) => ip.includes(":");
const DEFAULTS = { 4: "0.0.0.0/0", 6: "::/0" } as const;

function refuse(msg: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, msg);
}

export function planAttachment(state: PodState, req: PlanRequest): AttachmentPlan {
  const own = state.links.find((l) => l.name === req.ifname);
  const ownMac = vethMacs(req.containerId, req.ifname).pod;
  if (own && own.mac !== ownMac) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `interface ${req.ifname} already exists in the pod's namespace and is not Twill's attachment of container ${req.containerId}; give this attachment another CNI_IFNAME`,
    );
  }
  const siblings = state.links.filter((l) => l.name !== req.ifname && l.mac === vethMacs(req.containerId, l.name).pod);
  // Routes through this attachment's own old pod end go with it (a retry replaces the pair).
  const others = state.routes.filter((r) => r.oif !== own?.index);
  const deviceOf = (oif: number) => state.links.find((l) => l.index === oif)?.name ?? `interface ${oif}`;
  const holder = (dst: string) => others.find((r) => r.dst === dst);

  const families = [...new Set(req.ips.map((ip) => (isV6(ip) ? 6 : 4)))] as (4 | 6)[];
  let routes: { dst: string; gw?: string }[];
  if (req.routes.length > 0) {
    routes = req.routes;
  } else if (req.defaultRoute === false) {
    routes = [];
  } else {
    routes = [];
    for (const f of families) {
      const held = holder(DEFAULTS[f]);
      if (held && req.defaultRoute === true) {
        throw refuse(
          `defaultRoute is true, but the pod's IPv${f} default route already goes via ${deviceOf(held.oif)} (another attachment); set "defaultRoute": false in one of the two networks' configs`,
        );
      }
      if (!held) routes.push({ dst: DEFAULTS[f] });
    }
  }
  for (const r of routes) {
    const held = holder(r.dst);
    if (held) {
      throw refuse(`route ${r.dst} is already in the pod via ${deviceOf(held.oif)} (another attachment); a destination can go through one attachment only: remove it from one of the networks' ipam routes`);
    }
  }
  return { retry: own !== undefined, primary: siblings.length === 0, sharedGateway: holder(`${POD_GATEWAY_V4}/32`) !== undefined, routes };
}
