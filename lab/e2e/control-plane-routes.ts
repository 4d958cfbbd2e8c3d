import { execIn } from "../../lib/kernel/netns.ts";
import type { LabState } from "../lab.ts";
import { controlPlaneNs } from "../names.ts";

// The apiserver dials pods itself: `pods/proxy` and `services/proxy` (the
// DNS specs read their probers' results that way, the Proxy specs test it),
// webhooks, aggregated APIs. In a real cluster the control-plane host is a
// node of the pod network; the lab's control plane is a bare host on the
// underlay, so it gets what host-gw would give it: one route per node's pod
// CIDR via that node. The node forwards to its local pod as for any
// underlay peer, and the pod's reply goes straight back over the underlay.

export async function routeControlPlaneToPods(s: LabState): Promise<void> {
  const ns = controlPlaneNs(s.name);
  for (const n of s.nodes) await execIn(ns, ["ip", "route", "replace", n.podCIDR, "via", n.ip, "dev", "eth0"]);
}
