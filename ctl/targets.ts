import { DEFAULT_CTL_SOCKET, EXIT } from "../lib/ctl-api.ts";
import type { Parsed } from "./args.ts";
import { call, type CallOptions, type Target } from "./client.ts";
import { Cluster, nodeAddress } from "./cluster.ts";
import { CtlError } from "./errors.ts";

// Which daemons a command asks: this node's over its socket by default; with
// --node or --all-nodes, nodes found through the kubeconfig, over HTTP.

export class Targets {
  readonly socket: string;
  private readonly kubeconfig: string | undefined;
  private readonly port: number;
  private cluster: Cluster | undefined;

  constructor(p: Parsed) {
    this.socket = (p.values.socket as string | undefined) ?? process.env.TWILL_CTL_SOCKET ?? DEFAULT_CTL_SOCKET;
    this.kubeconfig = p.values.kubeconfig as string | undefined;
    this.port = Number(p.values["daemon-port"]);
    if (!Number.isInteger(this.port) || this.port < 1 || this.port > 65535) throw new CtlError(EXIT.USAGE, `--daemon-port ${p.values["daemon-port"]} is not a port`);
  }

  local(): Target {
    return { socket: this.socket };
  }

  apiserver(): Cluster {
    this.cluster ??= new Cluster(this.kubeconfig);
    return this.cluster;
  }

  /** A node's daemon over its health port. */
  async node(name: string): Promise<Target> {
    const n = await this.apiserver().node(name);
    const host = nodeAddress(n);
    if (!host) throw new CtlError(EXIT.NOT_FOUND, `node ${name} has no InternalIP to reach its daemon at`);
    return { host, port: this.port, node: name };
  }

  /** Every node: its target, or why it has none. */
  async all(): Promise<{ node: string; target?: Target; error?: string }[]> {
    return (await this.apiserver().nodes()).map((n) => {
      const name = n.metadata?.name ?? "?";
      const host = nodeAddress(n);
      return host ? { node: name, target: { host, port: this.port, node: name } } : { node: name, error: "no InternalIP" };
    });
  }

  /** --node N, else the local socket. */
  async one(p: Parsed): Promise<Target> {
    const node = p.values.node as string | undefined;
    return node ? this.node(node) : this.local();
  }

  /** Calls every target (one per node with --all-nodes), errors kept per node. */
  async each<T>(p: Parsed, path: string, opts?: CallOptions): Promise<{ node: string; reply?: T; error?: string; exit?: number }[]> {
    if (!p.values["all-nodes"]) return [{ node: (p.values.node as string | undefined) ?? "(this node)", reply: await call<T>(await this.one(p), path, opts) }];
    return Promise.all(
      (await this.all()).map(async (t) => {
        if (!t.target) return { node: t.node, error: t.error };
        try {
          return { node: t.node, reply: await call<T>(t.target, path, opts) };
        } catch (err) {
          return { node: t.node, error: (err as Error).message, exit: (err as CtlError).exit };
        }
      }),
    );
  }
}
