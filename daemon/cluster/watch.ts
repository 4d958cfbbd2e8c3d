import { CoreV1Api, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import { watchResource, type ResourceWatch } from "./resource-watch.ts";

// Nodes, keeping only what cluster/view.ts reads: real kubelet-written Node
// objects (image lists, conditions, managed fields) are large and a cluster
// has thousands.

export type NodeWatch = ResourceWatch<V1Node>;

const PREFIX = "twill.dev/";

export function slimNode(n: V1Node): V1Node {
  const annotations = Object.fromEntries(Object.entries(n.metadata?.annotations ?? {}).filter(([k]) => k.startsWith(PREFIX)));
  return {
    // uid: Events about the node name it (cluster/events.ts), as `kubectl describe node` looks them up.
    metadata: { name: n.metadata?.name ?? "", ...(n.metadata?.uid ? { uid: n.metadata.uid } : {}), annotations, ...(n.metadata?.labels ? { labels: n.metadata.labels } : {}) },
    spec: { ...(n.spec?.podCIDR ? { podCIDR: n.spec.podCIDR } : {}), ...(n.spec?.podCIDRs ? { podCIDRs: n.spec.podCIDRs } : {}) },
    status: { addresses: (n.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })) },
  };
}

export function watchNodes(kc: KubeConfig, log: Logger, onError: (err: unknown) => void): NodeWatch {
  const core = kc.makeApiClient(CoreV1Api);
  return watchResource<V1Node>({
    kc,
    log,
    path: "/api/v1/nodes",
    what: "node",
    listPage: (cont) => core.listNode({ limit: 500, ...(cont ? { _continue: cont } : {}) }),
    slim: slimNode,
    onError,
  });
}
