import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import type { DaemonConfig } from "../config.ts";
import type { ClusterView, NodeInfo } from "../cluster/view.ts";
import type { DesiredState } from "../kernel/desired.ts";
import type { Underlay } from "../kernel/underlay.ts";

/** What a backend knows about the node it runs on. */
export interface LocalNode {
  info: NodeInfo;
  /** The underlay device holding the node's address, and its CIDR there. */
  underlay: Underlay;
}

/**
 * One interface for every way of connecting nodes (STYLE.md §1). The daemon's
 * loop calls these and never names a backend.
 */
export interface Backend {
  readonly name: string;
  /** Bytes the encapsulation adds to each packet (pod MTU = underlay MTU - overhead). */
  readonly overhead: number;
  /**
   * Checks what the backend needs of this node and returns the annotations
   * peers need from it (published on the node's own Node object).
   */
  prepare(local: LocalNode): Promise<Record<string, string>>;
  /** The kernel state for this cluster view (pure). Throws when the topology cannot work. */
  desired(view: ClusterView, local: LocalNode, podMtu: number): DesiredState;
  /** For backends whose state also changes on its own (bgp: learned routes): call back to get reconciled. */
  watch?(onChange: () => void): void;
  /**
   * Addresses this node originates besides its pod CIDRs (the service proxy's Service /32s, docs/services.md),
   * for backends that announce routes (bgp); the others have no such method.
   */
  advertise?(prefixes: string[]): void;
}

/** What the daemon gives a backend that reads more of the cluster than Nodes (bgp: its CRDs). */
export interface BackendContext {
  kc: KubeConfig;
  log: Logger;
  onWatchError: (err: unknown) => void;
  /** The `twill` binary (bgp: TCP MD5 keys through `twill md5sig`). */
  twillBinary?: string;
}

export type BackendFactory = (cfg: DaemonConfig, ctx?: BackendContext) => Backend;
