import { TwillError } from "../../../lib/errors.ts";
import type { DaemonConfig } from "../../config.ts";
import type { ClusterView } from "../../cluster/view.ts";
import { emptyState, type DesiredState } from "../../kernel/desired.ts";
import type { Backend, LocalNode } from "../backend.ts";
import { onSameL2, peersOf } from "../peers.ts";

// host-gw: no encapsulation; each remote pod CIDR is routed via the peer's
// underlay address. Works only when every node shares one L2 segment.
export function hostGwBackend(_cfg: DaemonConfig): Backend {
  return {
    name: "host-gw",
    overhead: 0,
    async prepare(): Promise<Record<string, string>> {
      return {};
    },
    desired(view: ClusterView, local: LocalNode): DesiredState {
      const state = emptyState();
      for (const peer of peersOf(view, local)) {
        if (!onSameL2(local, peer.ip)) {
          throw new TwillError(
            "HOSTGW_NOT_L2",
            `host-gw needs every node on one L2 segment, but node ${peer.name} (${peer.ip}) is outside ${local.underlay.address}/${local.underlay.prefix}; use the vxlan backend (with directRouting) instead`,
          );
        }
        for (const dst of peer.podCIDRs) state.routes.push({ dst, via: peer.ip, dev: local.underlay.dev, onlink: false });
      }
      return state;
    },
  };
}
