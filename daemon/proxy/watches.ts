import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1EndpointSlice, type V1Service } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import { watchResource, type ResourceWatch } from "../cluster/resource-watch.ts";
import { SERVICE_PROXY_NAME, SLICE_SERVICE_NAME } from "./model.ts";

// What the service proxy needs from the apiserver, kept slim: Services (spec,
// LoadBalancer ingress, the proxy-name label) and EndpointSlices (endpoints
// with conditions, node and hints; ports). An unchanged slim copy keeps its
// identity, which the controller uses to find what changed.

export interface ProxyWatches {
  services: ResourceWatch<V1Service>;
  slices: ResourceWatch<V1EndpointSlice>;
}

export function slimService(s: V1Service): V1Service {
  const labels = s.metadata?.labels?.[SERVICE_PROXY_NAME] ? { [SERVICE_PROXY_NAME]: s.metadata.labels[SERVICE_PROXY_NAME] } : undefined;
  const ingress = s.status?.loadBalancer?.ingress?.map((i) => ({ ...(i.ip ? { ip: i.ip } : {}) }));
  return {
    // creationTimestamp: LoadBalancer pools give the older Service an address first.
    metadata: { name: s.metadata?.name ?? "", namespace: s.metadata?.namespace ?? "", ...(s.metadata?.creationTimestamp ? { creationTimestamp: s.metadata.creationTimestamp } : {}), ...(labels ? { labels } : {}) },
    spec: s.spec ?? {},
    ...(ingress?.length ? { status: { loadBalancer: { ingress } } } : {}),
  };
}

export function slimSlice(s: V1EndpointSlice): V1EndpointSlice {
  return {
    metadata: { name: s.metadata?.name ?? "", namespace: s.metadata?.namespace ?? "", labels: { [SLICE_SERVICE_NAME]: s.metadata?.labels?.[SLICE_SERVICE_NAME] ?? "" } },
    addressType: s.addressType,
    endpoints: (s.endpoints ?? []).map((e) => ({
      addresses: e.addresses,
      ...(e.conditions ? { conditions: e.conditions } : {}),
      ...(e.nodeName ? { nodeName: e.nodeName } : {}),
      ...(e.hints ? { hints: e.hints } : {}),
    })),
    ...(s.ports ? { ports: s.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })) } : {}),
  };
}

export function watchProxyInputs(kc: KubeConfig, log: Logger, onError: (err: unknown) => void): ProxyWatches {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const page = (cont: string | undefined) => ({ limit: 500, ...(cont ? { _continue: cont } : {}) });
  return {
    services: watchResource<V1Service>({ kc, log, onError, path: "/api/v1/services", what: "service", listPage: (c) => core.listServiceForAllNamespaces(page(c)), slim: slimService }),
    slices: watchResource<V1EndpointSlice>({ kc, log, onError, path: "/apis/discovery.k8s.io/v1/endpointslices", what: "endpointslice", listPage: (c) => discovery.listEndpointSliceForAllNamespaces(page(c)), slim: slimSlice }),
  };
}
