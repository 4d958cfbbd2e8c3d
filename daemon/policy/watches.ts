import { CoreV1Api, NetworkingV1Api, type KubeConfig, type V1Namespace, type V1NetworkPolicy, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import { watchResource, type ResourceWatch } from "../cluster/resource-watch.ts";

// What NetworkPolicy needs from the apiserver, each kept slim: pods (labels,
// node, IPs, container ports for named ports), namespaces (labels) and the
// policies themselves.

export interface PolicyWatches {
  pods: ResourceWatch<V1Pod>;
  namespaces: ResourceWatch<V1Namespace>;
  policies: ResourceWatch<V1NetworkPolicy>;
}

export function slimPod(p: V1Pod): V1Pod {
  return {
    // uid: the CNI plugin's pod notices name the pod by it (notices.ts).
    metadata: { name: p.metadata?.name ?? "", namespace: p.metadata?.namespace ?? "", ...(p.metadata?.uid ? { uid: p.metadata.uid } : {}), labels: { ...(p.metadata?.labels ?? {}) } },
    spec: {
      ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
      containers: (p.spec?.containers ?? []).map((c) => ({ name: c.name, ...(c.ports ? { ports: c.ports.map((x) => ({ name: x.name, containerPort: x.containerPort, protocol: x.protocol })) } : {}) })),
    },
    status: { ...(p.status?.podIP ? { podIP: p.status.podIP } : {}), ...(p.status?.podIPs ? { podIPs: p.status.podIPs } : {}) },
  };
}

export function slimNamespace(n: V1Namespace): V1Namespace {
  return { metadata: { name: n.metadata?.name ?? "", labels: { ...(n.metadata?.labels ?? {}) } } };
}

export function watchPolicyInputs(kc: KubeConfig, log: Logger, onError: (err: unknown) => void): PolicyWatches {
  const core = kc.makeApiClient(CoreV1Api);
  const net = kc.makeApiClient(NetworkingV1Api);
  const page = (cont: string | undefined) => ({ limit: 500, ...(cont ? { _continue: cont } : {}) });
  return {
    pods: watchResource<V1Pod>({ kc, log, onError, path: "/api/v1/pods", what: "pod", listPage: (c) => core.listPodForAllNamespaces(page(c)), slim: slimPod }),
    namespaces: watchResource<V1Namespace>({ kc, log, onError, path: "/api/v1/namespaces", what: "namespace", listPage: (c) => core.listNamespace(page(c)), slim: slimNamespace }),
    policies: watchResource<V1NetworkPolicy>({
      kc,
      log,
      onError,
      path: "/apis/networking.k8s.io/v1/networkpolicies",
      what: "networkpolicy",
      listPage: (c) => net.listNetworkPolicyForAllNamespaces(page(c)),
      // uid: for the Events about the policy (lint findings), as `kubectl describe` looks them up.
      slim: (p) => ({ metadata: { name: p.metadata?.name ?? "", namespace: p.metadata?.namespace ?? "", ...(p.metadata?.uid ? { uid: p.metadata.uid } : {}) }, spec: p.spec! }),
    }),
  };
}
