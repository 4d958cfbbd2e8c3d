import { CoreV1Api, KubeConfig, type V1Node } from "@kubernetes/client-node";
import { EXIT } from "../lib/ctl-api.ts";
import { CtlError } from "./errors.ts";

// The apiserver, through the caller's kubeconfig (--kubeconfig, $KUBECONFIG,
// ~/.kube/config, or in a pod its ServiceAccount): which nodes exist, where a
// pod runs, and each node's address for the daemon's read-only API.

export class Cluster {
  private readonly core: CoreV1Api;

  constructor(kubeconfig: string | undefined) {
    const kc = new KubeConfig();
    try {
      if (kubeconfig) kc.loadFromFile(kubeconfig);
      else kc.loadFromDefault();
    } catch (err) {
      throw new CtlError(EXIT.APISERVER, `cannot load the kubeconfig${kubeconfig ? ` ${kubeconfig}` : ""}: ${(err as Error).message}`);
    }
    this.core = kc.makeApiClient(CoreV1Api);
  }

  private async api<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 404) throw new CtlError(EXIT.NOT_FOUND, `${what}: not found`);
      throw new CtlError(EXIT.APISERVER, `the apiserver refused ${what}: ${(err as Error).message.split("\n")[0]}`);
    }
  }

  nodes(): Promise<V1Node[]> {
    return this.api("listing nodes", async () => (await this.core.listNode()).items);
  }

  async node(name: string): Promise<V1Node> {
    return this.api(`node ${name}`, () => this.core.readNode({ name }));
  }

  /** The node a pod runs on. */
  async podNode(ref: string): Promise<string> {
    const [namespace, name] = ref.split("/", 2) as [string, string];
    const pod = await this.api(`pod ${ref}`, () => this.core.readNamespacedPod({ namespace, name }));
    if (!pod.spec?.nodeName) throw new CtlError(EXIT.NOT_FOUND, `pod ${ref} is not scheduled to a node yet`);
    return pod.spec.nodeName;
  }
}

/** Where a node's daemon serves its health port: the twill.dev/public-ip annotation, else its InternalIP. */
export function nodeAddress(n: V1Node): string | undefined {
  return n.metadata?.annotations?.["twill.dev/public-ip"] ?? n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
}
