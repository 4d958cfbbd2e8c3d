import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../lib/log.ts";
import type { PeerLeftOut } from "../kernel/desired.ts";

// A Kubernetes Event on the Node that this node leaves out of its tunnel
// (`kubectl describe node N` shows why N's pods are unreachable from here),
// once per node and reason, beside the one log line left-out.ts writes.
// Events are namespaced; Node events go to "default", as kubelet's do.

/** WG_KEY_INVALID → WireGuardKeyInvalid. */
const reasonOf = (code: string) => code.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase()).replace(/^Wg/, "WireGuard");

/**
 * A node that has published no key yet (WG_NO_KEY) gets no Event: during a
 * rollout every node waits for the others for a moment, and at 1,000 nodes
 * that would be a million Events. Broken keys and endpoints get one.
 */
const worthAnEvent = (code: string) => code !== "WG_NO_KEY";

export class LeftOutEvents {
  private reported = new Map<string, string>();
  private readonly kc: KubeConfig;
  private readonly log: Logger;
  private readonly self: string;

  constructor(kc: KubeConfig, log: Logger, self: string) {
    this.kc = kc;
    this.log = log;
    this.self = self;
  }

  /** Reports nodes newly left out (or for a new reason); forgets those back in. Never throws: an Event is a courtesy. */
  update(leftOut: PeerLeftOut[]): void {
    const broken = leftOut.filter((l) => worthAnEvent(l.code));
    const now = new Map(broken.map((l) => [l.node, l.code]));
    for (const node of [...this.reported.keys()]) if (!now.has(node)) this.reported.delete(node);
    for (const l of broken) {
      if (this.reported.get(l.node) === l.code) continue;
      this.reported.set(l.node, l.code);
      const at = new Date();
      void this.kc
        .makeApiClient(CoreV1Api)
        .createNamespacedEvent({
          namespace: "default",
          body: {
            metadata: { generateName: `${l.node}.wireguard.` },
            involvedObject: { kind: "Node", name: l.node, apiVersion: "v1" },
            reason: reasonOf(l.code),
            message: `left out of ${this.self}'s WireGuard tunnel: ${l.reason}`,
            type: "Warning",
            source: { component: "twill-daemon", host: this.self },
            firstTimestamp: at,
            lastTimestamp: at,
            count: 1,
          },
        })
        .catch((err: unknown) => this.log.debug({ node: l.node, err: String(err) }, "could not record an Event for a node left out"));
    }
  }
}
