import { request, type RequestOptions } from "node:https";
import { KubeConfig, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { EXIT } from "../lib/ctl-api.ts";
import { CtlError } from "./errors.ts";

// The apiserver, through the caller's kubeconfig (--kubeconfig, $KUBECONFIG,
// ~/.kube/config, or in a pod its ServiceAccount): which nodes exist, where a
// pod runs, and each node's address for the daemon's read-only API.
// @kubernetes/client-node reads the kubeconfig and applies its credentials
// (certificates, tokens, exec plugins) to each request; the requests go
// through node:https, not the generated clients, whose undici dispatcher the
// self-contained (Bun) build ignores, so their TLS settings were lost.

export class Cluster {
  private readonly kc = new KubeConfig();

  constructor(kubeconfig: string | undefined) {
    try {
      if (kubeconfig) this.kc.loadFromFile(kubeconfig);
      else this.kc.loadFromDefault();
    } catch (err) {
      throw new CtlError(EXIT.APISERVER, `cannot load the kubeconfig${kubeconfig ? ` ${kubeconfig}` : ""}: ${(err as Error).message}`);
    }
  }

  private async get<T>(what: string, path: string): Promise<T> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new CtlError(EXIT.APISERVER, "the kubeconfig names no current cluster");
    const url = new URL(path, cluster.server);
    const opts: RequestOptions = { method: "GET", hostname: url.hostname, port: url.port || "443", path: url.pathname + url.search, headers: { accept: "application/json" }, timeout: 15_000 };
    await this.kc.applyToHTTPSOptions(opts);
    return new Promise((resolve, reject) => {
      const req = request(opts, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (d: string) => (text += d));
        res.on("end", () => {
          if (res.statusCode === 200) return resolve(JSON.parse(text) as T);
          if (res.statusCode === 404) return reject(new CtlError(EXIT.NOT_FOUND, `${what}: not found`));
          const message = (() => {
            try {
              return (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              return text;
            }
          })();
          reject(new CtlError(EXIT.APISERVER, `the apiserver refused ${what} (HTTP ${res.statusCode}): ${message.trim().slice(0, 300)}`));
        });
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", (err) => reject(new CtlError(EXIT.APISERVER, `cannot reach the apiserver ${cluster.server} for ${what}: ${err.message}`)));
      req.end();
    });
  }

  async nodes(): Promise<V1Node[]> {
    return (await this.get<{ items: V1Node[] }>("listing nodes", "/api/v1/nodes")).items;
  }

  node(name: string): Promise<V1Node> {
    return this.get(`node ${name}`, `/api/v1/nodes/${encodeURIComponent(name)}`);
  }

  /** The node a pod runs on. */
  async podNode(ref: string): Promise<string> {
    const [namespace, name] = ref.split("/", 2) as [string, string];
    const pod = await this.get<V1Pod>(`pod ${ref}`, `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name ?? "")}`);
    if (!pod.spec?.nodeName) throw new CtlError(EXIT.NOT_FOUND, `pod ${ref} is not scheduled to a node yet`);
    return pod.spec.nodeName;
  }
}

/** Where a node's daemon serves its health port: the twill.dev/public-ip annotation, else its InternalIP. */
export function nodeAddress(n: V1Node): string | undefined {
  return n.metadata?.annotations?.["twill.dev/public-ip"] ?? n.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
}
