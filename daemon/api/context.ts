import type { KubeConfig, V1Pod } from "@kubernetes/client-node";
import type { BgpSession } from "../../lib/ctl-api.ts";
import type { Logger } from "../../lib/log.ts";
import type { PassSnapshot } from "../agent.ts";
import type { NftDescription } from "../policy/compile.ts";
import type { ClusterState } from "../policy/model.ts";
import type { DropLog } from "./drops.ts";

// What the operator API reads of the daemon. Each part is a view the daemon
// already keeps (the agent's last pass, the policy controller's inputs and
// programmed table); the API computes nothing the daemon does not.

export interface ApiContext {
  nodeName: string;
  version: string;
  backend: { name: string; sessions?(): BgpSession[] };
  agent: { snapshot(): { pass: PassSnapshot | undefined; lastOk: number; lastError: string }; ready(): boolean; live(): boolean };
  /** Absent when NetworkPolicy is off in the ConfigMap. */
  policy?: { inputs(): ClusterState | undefined; programmed(): NftDescription | undefined };
  /** Pods bound to this node (from the policy watch when it runs, else one list call). */
  podsOnNode(): Promise<V1Pod[]>;
  ipamDir: string;
  kc: KubeConfig;
  log: Logger;
  drops?: DropLog;
  /** nft, inside a namespace in tests; the daemon's own namespace otherwise. */
  nft: string[];
}
