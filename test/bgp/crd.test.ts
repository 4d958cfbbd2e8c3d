import { CustomObjectsApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bgpBackend, type SpeakerLike } from "../../daemon/backends/bgp/bgp.ts";
import { watchBgpCrds, type BgpCrds } from "../../daemon/backends/bgp/crd.ts";
import type { PeerConfig, SpeakerConfig } from "../../daemon/bgp/speaker/config.ts";
import type { ClusterView, NodeInfo } from "../../daemon/cluster/view.ts";
import { parseConfig } from "../../daemon/config.ts";
import type { RunningLab } from "../../lab/lab.ts";
import type { Logger } from "../../lib/log.ts";
import { sharedLab } from "../support/lab.ts";
import { waitFor } from "./support/lan.ts";

// BGPConfiguration and BGPPeer from the lab's real apiserver (the CRDs of
// manifests/twill.yaml) through the daemon's list+watch into the bgp
// backend's speaker settings and peers; invalid objects are logged once and
// left out (a password in a Secret other than twill-bgp-password among them;
// test/bgp/crd-md5.test.ts has passwords end to end). The speaker is a
// stand-in that records what it is told.

const group = { group: "twill.dev", version: "v1alpha1" };
const suffix = Math.random().toString(36).slice(2, 7);
const peerName = (n: string) => `twbgp-${suffix}-${n}`;

class RecordingSpeaker implements SpeakerLike {
  peers = new Map<string, PeerConfig>();
  readonly cfg: SpeakerConfig;
  constructor(cfg: SpeakerConfig) {
    this.cfg = cfg;
  }
  async start() {}
  addPeer(cfg: PeerConfig) {
    this.peers.set(cfg.address, cfg);
  }
  removePeer(a: string) {
    this.peers.delete(a);
  }
  peerAddresses() {
    return [...this.peers.keys()];
  }
  announce() {}
  withdraw() {}
  routes() {
    return [];
  }
  converged() {
    return true;
  }
}

/** A logger that keeps what is logged at error/warn level (pino's call shape). */
function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (_o: unknown, msg?: string) => void lines.push(msg ?? String(_o));
  const log = { lines, error: keep, warn: keep, info: () => {}, debug: () => {}, trace: () => {}, fatal: keep, child: () => log };
  return log as unknown as Logger & { lines: string[] };
}

const node = (name: string, ip: string, cidr: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({ name, ip, podCIDRs: [cidr], annotations: {}, ...extra });
const a = node("a", "172.30.0.11", "10.244.1.0/24", { labels: { rack: "r1" } });
const b = node("b", "172.30.0.12", "10.244.2.0/24", { annotations: { "twill.dev/bgp-as": "65100" } });
const view: ClusterView = { nodes: new Map([a, b].map((n) => [n.name, n])), skipped: new Map() };
const local = { info: a, underlay: { dev: "eth0", address: "172.30.0.11", prefix: 24, mtu: 1500 } };

let lab: RunningLab;
let api: CustomObjectsApi;
let crds: BgpCrds | undefined;
const created: { plural: string; name: string }[] = [];

async function create(plural: string, kind: string, name: string, spec: Record<string, unknown>): Promise<void> {
  await api.createClusterCustomObject({ ...group, plural, body: { apiVersion: "twill.dev/v1alpha1", kind, metadata: { name }, spec } });
  created.push({ plural, name });
}
const patch = (plural: string, name: string, body: unknown) => api.patchClusterCustomObject({ ...group, plural, name, body });

beforeAll(async () => {
  lab = await sharedLab();
  api = lab.kc.makeApiClient(CustomObjectsApi);
  // Only this file uses the cluster's BGPConfiguration; a leftover from an earlier run is replaced.
  await api.deleteClusterCustomObject({ ...group, plural: "bgpconfigurations", name: "default" }).catch(() => {});
});
afterAll(async () => {
  crds?.stop();
  for (const o of created.reverse()) await api.deleteClusterCustomObject({ ...group, plural: o.plural, name: o.name }).catch(() => {});
  lab?.close();
});

describe("bgp backend settings from BGPConfiguration and BGPPeer", () => {
  it("applies the cluster config, selects peers by node labels, honours per-node AS annotations, logs invalid objects once", async () => {
    await create("bgpconfigurations", "BGPConfiguration", "default", { asNumber: 65010, nodeToNodeMesh: false, listenPort: 1179, gracefulRestartSeconds: 60 });
    await create("bgppeers", "BGPPeer", peerName("tor"), { peerIP: "172.30.0.1", asNumber: 65001, nodeSelector: "rack=r1", holdTimeSeconds: 30, maxPrefixes: { limit: 500 } });
    // The schema refuses a negative prefix limit before Twill sees it.
    await expect(create("bgppeers", "BGPPeer", peerName("bad-limit"), { peerIP: "172.30.0.5", asNumber: 65005, maxPrefixes: { limit: -1 } })).rejects.toThrow();
    await create("bgppeers", "BGPPeer", peerName("other-rack"), { peerIP: "172.30.0.2", asNumber: 65002, nodeSelector: "rack in (r2,r3)" });
    // Accepted by the apiserver's schema, rejected by Twill (the password's Secret is one the daemon may not read).
    await create("bgppeers", "BGPPeer", peerName("bad-selector"), { peerIP: "172.30.0.3", asNumber: 65003, nodeSelector: "rack in (r1" });
    await create("bgppeers", "BGPPeer", peerName("md5"), { peerIP: "172.30.0.4", asNumber: 65004, password: { secretKeyRef: { name: "bgp", key: "password" } } });

    const log = recordingLog();
    crds = watchBgpCrds(lab.kc, log);
    const mine = () => crds!.peers().filter((p) => p.name.startsWith(`twbgp-${suffix}-`));
    await waitFor("the four BGPPeers and the BGPConfiguration", () => (crds!.config()?.asn === 65010 && mine().length === 2 && log.lines.length >= 2 ? true : undefined));
    expect(crds.config()).toEqual({ asn: 65010, mesh: false, port: 1179, routerIdSource: "InternalIP", restartTime: 60 });
    expect(mine().map((p) => p.name).sort()).toEqual([peerName("other-rack"), peerName("tor")]);
    expect(log.lines.filter((l) => l.includes(peerName("bad-selector")))).toHaveLength(1);
    expect(log.lines.find((l) => l.includes(peerName("md5")))).toMatch(/may read only Secret twill-system\/twill-bgp-password/);

    let speaker: RecordingSpeaker | undefined;
    const backend = bgpBackend(parseConfig("clusterCIDR: 10.244.0.0/16\nbackend: bgp\n"), {
      log, crds, routesInstalled: async () => false, makeSpeaker: (cfg) => (speaker = new RecordingSpeaker(cfg)),
    });
    await backend.prepare(local);
    expect(speaker!.cfg).toMatchObject({ asn: 65010, listen: { port: 1179 }, routerId: "172.30.0.11", gracefulRestart: { restartTime: 60 } });
    backend.desired(view, local, 1500);
    // Mesh off: only the BGPPeer whose selector matches node a's labels.
    // The apiserver fills in the limit's defaults (warning at 80 %, 60 s backoff).
    const limit = { limit: 500, warningPercent: 80, restartSeconds: 60 };
    expect([...speaker!.peers.values()]).toEqual([{ address: "172.30.0.1", asn: 65001, port: 179, holdTime: 30, maxPrefixes: limit }]);

    // Mesh on: node b joins in its own AS (annotation), so that session is eBGP.
    await patch("bgpconfigurations", "default", [{ op: "replace", path: "/spec/nodeToNodeMesh", value: true }]);
    await waitFor("the mesh to be switched on", () => (crds!.config()?.mesh ? true : undefined));
    backend.desired(view, local, 1500);
    expect(speaker!.peers.get("172.30.0.12")).toEqual({ address: "172.30.0.12", asn: 65100, port: 1179 });

    // A changed BGPPeer is re-created with its new settings; a deleted one goes; the invalid ones were logged once only.
    await patch("bgppeers", peerName("tor"), [{ op: "replace", path: "/spec/holdTimeSeconds", value: 9 }]);
    await waitFor("the hold time change", () => (mine().find((p) => p.name === peerName("tor"))?.holdTime === 9 ? true : undefined));
    backend.desired(view, local, 1500);
    expect(speaker!.peers.get("172.30.0.1")).toEqual({ address: "172.30.0.1", asn: 65001, port: 179, holdTime: 9, maxPrefixes: limit });
    await api.deleteClusterCustomObject({ ...group, plural: "bgppeers", name: peerName("tor") });
    await waitFor("the BGPPeer to go", () => (mine().some((p) => p.name === peerName("tor")) ? undefined : true));
    backend.desired(view, local, 1500);
    expect(speaker!.peerAddresses()).toEqual(["172.30.0.12"]);
    expect(log.lines.filter((l) => l.includes(peerName("bad-selector")))).toHaveLength(1);
    expect(log.lines.filter((l) => l.includes(peerName("md5")))).toHaveLength(1);

    // The AS is the speaker's identity: a change is reported once, for the next start.
    await patch("bgpconfigurations", "default", [{ op: "replace", path: "/spec/asNumber", value: 65011 }]);
    await waitFor("the AS change", () => (crds!.config()?.asn === 65011 ? true : undefined));
    backend.desired(view, local, 1500);
    backend.desired(view, local, 1500);
    expect(log.lines.filter((l) => l.includes("restart the Twill daemon"))).toHaveLength(1);
    expect(speaker!.cfg.asn).toBe(65010);
  });
});
