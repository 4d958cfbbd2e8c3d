import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import type { NodeInfo } from "./view.ts";

/** Publishes what peers need on this node's own Node object; only when something differs. */
export async function publishAnnotations(kc: KubeConfig, self: NodeInfo, wanted: Record<string, string>): Promise<boolean> {
  const changed = Object.entries(wanted).filter(([k, v]) => self.annotations[k] !== v);
  if (changed.length === 0) return false;
  await kc.makeApiClient(CoreV1Api).patchNode(
    { name: self.name, body: { metadata: { annotations: Object.fromEntries(changed) } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  return true;
}
