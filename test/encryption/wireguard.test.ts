import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, NetworkingV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { createPod } from "../../lab/cluster.ts";
import { addNode, pidsIn, startLab, type RunningLab } from "../../lab/lab.ts";
import { WG_ANNOTATION } from "../../daemon/encryption/peers.ts";
import { deleteNodeObject, eventually, routesOf, tcpPeerAddress, unreachablePairs } from "../daemon/helpers.ts";
import { captureUnderlay, notWireguard } from "./capture.ts";
import { annotate, killDaemon, nodeAnnotations, logLength, logSince, pingCounts, publicKeyOn, restartDaemon, sendMarker, wgState } from "./helpers.ts";

// `encryption: wireguard` over the vxlan backend, in a --fast lab of its own
// (these tests kill daemons, rotate keys and tamper with annotations).

let lab: RunningLab;
beforeAll(async () => {
  lab = await startLab({ nodes: 2, podsPerNode: 1, backend: "vxlan", encryption: "wireguard" });
});
afterAll(() => lab?.close());

const node = (i: number) => lab.state.nodes[i - 1]!;
const podOn = (n: string, j = 1) => lab.state.pods.find((p) => p.name === `${n}-pod${j}`)!;
const keyFile = (i: number) => join(node(i).dir, "wireguard", "private.key");

describe("wireguard over vxlan", () => {
  it("connects the pods through twill.wg, with the peer's key and pod CIDR, MTU 1500 - 60 in the node file", async () => {
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
    const s = await wgState(node(1));
    expect(s.peers.map((p) => [p.publicKey, p.endpoint, p.allowedIps])).toEqual([[await publicKeyOn(lab, "node2"), `${node(2).ip}:51820`, [node(2).podCIDR]]]);
    expect(await routesOf(node(1).ns)).toContain(`${node(2).podCIDR} dev twill.wg`);
    expect(JSON.parse(readFileSync(node(1).nodeFile, "utf8")).mtu).toBe(1440);
    // Masquerade is on in the lab's config: pod ↔ pod through the tunnel keeps the pod's own address.
    expect(await tcpPeerAddress(podOn("node1"), podOn("node2").ns, podOn("node2").ip, 7300)).toBe(podOn("node1").ip);
  });

  it("enforces NetworkPolicy on the decrypted side: an ingress policy on node2's pod stops node1's pod through the tunnel", async () => {
    const net = lab.kc.makeApiClient(NetworkingV1Api);
    const [a, b] = [podOn("node1"), podOn("node2")];
    await net.createNamespacedNetworkPolicy({
      namespace: b.namespace,
      body: { metadata: { name: "wg-deny-node1" }, spec: { podSelector: { matchLabels: { app: b.name } }, policyTypes: ["Ingress"], ingress: [{ _from: [{ podSelector: { matchLabels: { app: "nobody" } } }] }] } },
    });
    try {
      await eventually(async () => (await unreachablePairs([a, b])).includes(`${a.name}->${b.name}`), "the policy to stop node1's pod");
      expect(await unreachablePairs([a, b])).toEqual([`${a.name}->${b.name}`]);
    } finally {
      await net.deleteNamespacedNetworkPolicy({ name: "wg-deny-node1", namespace: b.namespace });
    }
    await eventually(async () => (await unreachablePairs([a, b])).length === 0, "node1's pod to reach node2's again");
  });

  it("keeps the private key in a 0600 file only: the device has it, the log and the annotations do not", async () => {
    const priv = readFileSync(keyFile(1), "utf8").trim();
    expect(statSync(keyFile(1)).mode & 0o777).toBe(0o600);
    expect((await wgState(node(1))).privateKey).toBe(priv);
    expect(logSince(node(1), 0)).not.toContain(priv);
    expect(JSON.stringify(await lab.kc.makeApiClient(CoreV1Api).readNode({ name: "node1" }))).not.toContain(priv);
  });

  it("puts only WireGuard UDP on the underlay between nodes: a marker sent pod → pod is not in the capture", async () => {
    const cap = await captureUnderlay(lab.state.name);
    const marker = `TWILL-MARKER-${Date.now()}`;
    expect(await sendMarker(podOn("node1"), podOn("node2"), 7301, marker)).toBe(marker);
    const { raw, lines } = await cap.stop();
    expect(lines.length).toBeGreaterThan(0);
    expect(notWireguard(lines)).toEqual([]);
    expect(raw.includes(marker)).toBe(false);
  });

  it("sends nothing in the clear when the route into the tunnel is deleted by hand (fail-closed table), and heals", async () => {
    const cap = await captureUnderlay(lab.state.name);
    await execIn(node(1).ns, ["ip", "route", "del", node(2).podCIDR]);
    // With no route the packet would follow the default route to the router in the clear; the guard drops it.
    await execIn(podOn("node1").ns, ["ping", "-c", "3", "-i", "0.2", "-W", "1", podOn("node2").ip], { allowFailure: true });
    const { lines } = await cap.stop();
    expect(notWireguard(lines)).toEqual([]);
    await eventually(async () => (await routesOf(node(1).ns)).includes(`${node(2).podCIDR} dev twill.wg`), "the route into the tunnel to heal", 20_000);
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
  });

  it("a node that joins is reachable encrypted; deleted, its peer and routes go", async () => {
    const n3 = await addNode(lab, 3);
    const pod3 = await createPod(lab.kc, lab.state.name, n3, "node3-pod1");
    try {
      await eventually(async () => (await unreachablePairs([podOn("node1"), podOn("node2"), pod3])).length === 0, "node3's pod to be reachable");
      const key3 = await publicKeyOn(lab, "node3");
      for (const i of [1, 2]) expect((await wgState(node(i))).peers.map((p) => p.publicKey)).toContain(key3);
      const cap = await captureUnderlay(lab.state.name);
      const marker = `TWILL-MARKER-JOIN-${Date.now()}`;
      expect(await sendMarker(podOn("node1"), pod3, 7302, marker)).toBe(marker);
      const { raw, lines } = await cap.stop();
      expect(notWireguard(lines)).toEqual([]);
      expect(raw.includes(marker)).toBe(false);

      await deleteNodeObject(lab, "node3");
      for (const i of [1, 2]) {
        await eventually(async () => !(await wgState(node(i))).peers.some((p) => p.publicKey === key3) && !(await routesOf(node(i).ns)).includes(n3.podCIDR), `node${i} to forget node3`);
      }
    } finally {
      await killDaemon(n3);
    }
  });

  it("a daemon restart keeps the key and every session: no packet lost, no write to the device, no new handshake", async () => {
    const [a, b] = [podOn("node1"), podOn("node2")];
    const before = await Promise.all([1, 2].map((i) => wgState(node(i))));
    const keys = await Promise.all(["node1", "node2"].map((n) => publicKeyOn(lab, n)));
    const flow = execIn(a.ns, ["ping", "-q", "-i", "0.01", "-c", "600", "-W", "1", b.ip], { allowFailure: true });
    await new Promise((r) => setTimeout(r, 500));
    const marks = [1, 2].map((i) => logLength(node(i)));
    for (const i of [1, 2]) await killDaemon(node(i));
    for (const i of [1, 2]) restartDaemon(lab, node(i));
    const { sent, received } = pingCounts((await flow).stdout);
    expect(received).toBe(sent);
    await eventually(async () => [1, 2].every((i, k) => logSince(node(i), marks[k]!).includes("WireGuard key pair loaded")), "restarted daemons to load their keys");
    await new Promise((r) => setTimeout(r, 1500));
    for (const [k, i] of [1, 2].entries()) {
      const log = logSince(node(i), marks[k]!);
      expect(log).not.toContain("WireGuard peers reconciled");
      expect(log).not.toContain("published this node's WireGuard key");
    }
    const after = await Promise.all([1, 2].map((i) => wgState(node(i))));
    for (const k of [0, 1]) {
      expect(after[k]!.privateKey).toBe(before[k]!.privateKey);
      expect(after[k]!.peers.map((p) => [p.publicKey, p.lastHandshake])).toEqual(before[k]!.peers.map((p) => [p.publicKey, p.lastHandshake]));
    }
    expect(await Promise.all(["node1", "node2"].map((n) => publicKeyOn(lab, n)))).toEqual(keys);
  });

  it("rotates the key when the key file is removed, under traffic: new key published, peer re-keyed, loss bounded", async () => {
    const [a, b] = [podOn("node1"), podOn("node2")];
    const old = await publicKeyOn(lab, "node2");
    // 600 pings at 10 ms; the key file goes 2 s in. What is lost is the time between node2's new key and node1's reconcile.
    const flow = execIn(a.ns, ["ping", "-q", "-i", "0.01", "-c", "600", "-W", "1", b.ip], { allowFailure: true });
    await new Promise((r) => setTimeout(r, 2000));
    rmSync(keyFile(2));
    const fresh = await eventually(async () => {
      const k = await publicKeyOn(lab, "node2");
      return k !== old && k;
    }, "node2 to publish a new key", 20_000);
    await eventually(async () => (await wgState(node(1))).peers.some((p) => p.publicKey === fresh), "node1 to re-key node2");
    const { sent, received } = pingCounts((await flow).stdout);
    console.log(`[wireguard] rotation by key file removal under a 100 pkt/s flow: ${sent - received} of ${sent} lost`);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThanOrEqual(sent);
    expect((await wgState(node(1))).peers.map((p) => p.publicKey)).toEqual([fresh]);
    expect(await unreachablePairs(lab.state.pods)).toEqual([]);
  });

  it("rotates the key on request (annotation) under traffic, and records the request as handled", async () => {
    const [a, b] = [podOn("node1"), podOn("node2")];
    const old = await publicKeyOn(lab, "node1");
    const flow = execIn(a.ns, ["ping", "-q", "-i", "0.01", "-c", "600", "-W", "1", b.ip], { allowFailure: true });
    await new Promise((r) => setTimeout(r, 2000));
    await annotate(lab, "node1", { [WG_ANNOTATION.rotate]: `t${Date.now()}` });
    const fresh = await eventually(async () => {
      const k = await publicKeyOn(lab, "node1");
      return k !== old && k;
    }, "node1 to publish a new key", 20_000);
    await eventually(async () => (await wgState(node(2))).peers.some((p) => p.publicKey === fresh), "node2 to re-key node1");
    const { sent, received } = pingCounts((await flow).stdout);
    console.log(`[wireguard] rotation on request (annotation) under a 100 pkt/s flow: ${sent - received} of ${sent} lost`);
    expect(received).toBeGreaterThan(0);
    await eventually(async () => (await unreachablePairs(lab.state.pods)).length === 0, "pods reachable with the new key");
    expect((await nodeAnnotations(lab, "node1"))[WG_ANNOTATION.rotated]).toBe((await nodeAnnotations(lab, "node1"))[WG_ANNOTATION.rotate]);
    // Handled once: the next resync pass does not rotate again.
    await new Promise((r) => setTimeout(r, 6000));
    expect(await publicKeyOn(lab, "node1")).toBe(fresh);
  });

  it("a tampered public-key annotation leaves the node out with one line and nothing in the clear; its daemon restores it", async () => {
    const mark = logLength(node(1));
    await killDaemon(node(2));
    const good = await publicKeyOn(lab, "node2");
    await annotate(lab, "node2", { [WG_ANNOTATION.publicKey]: "not-a-key" });
    await eventually(async () => (await routesOf(node(1).ns)).includes(`blackhole ${node(2).podCIDR}`), "node1 to blackhole node2's pods");
    const cap = await captureUnderlay(lab.state.name);
    const marker = `TWILL-MARKER-TAMPER-${Date.now()}`;
    const sent = await execIn(podOn("node1").ns, ["sh", "-c", `printf '%s' '${marker}' | socat -u - TCP:${podOn("node2").ip}:7303,connect-timeout=1`], { allowFailure: true });
    expect(sent.code).not.toBe(0);
    // A well-formed key that is not node2's: traffic goes into the tunnel and no one can decrypt it.
    await annotate(lab, "node2", { [WG_ANNOTATION.publicKey]: "B2WmBzmsKADlmyedg5v8eMILmbEGW590aLhFvx/tLxY=" });
    await eventually(async () => (await routesOf(node(1).ns)).includes(`${node(2).podCIDR} dev twill.wg`), "node1 to route node2 into the tunnel again");
    await execIn(podOn("node1").ns, ["sh", "-c", `printf '%s' '${marker}' | socat -u - TCP:${podOn("node2").ip}:7303,connect-timeout=1`], { allowFailure: true });
    const { raw, lines } = await cap.stop();
    expect(notWireguard(lines)).toEqual([]);
    expect(raw.includes(marker)).toBe(false);
    const warnings = logSince(node(1), mark).split("\n").filter((l) => l.includes("WG_KEY_INVALID"));
    expect(warnings).toHaveLength(1);
    const events = await lab.kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: "default", fieldSelector: "involvedObject.name=node2,reason=WireGuardKeyInvalid" });
    expect(events.items.map((e) => [e.type, e.source?.host])).toEqual([["Warning", "node1"]]);
    restartDaemon(lab, node(2));
    await eventually(async () => (await publicKeyOn(lab, "node2")) === good, "node2's daemon to republish its key");
    await eventually(async () => (await unreachablePairs(lab.state.pods)).length === 0, "node2 reachable again");
  });

  it("cleanup removes the device (wireguard-go exits with it), the fail-closed table and the key file", async () => {
    const n = node(2);
    await killDaemon(n);
    const r = await execIn(n.ns, [process.execPath, join(import.meta.dirname, "../../daemon/cleanup.ts"), "--node-file", n.nodeFile, "--ipam-dir", n.ipamDir, "--cni-bin-dir", join(n.dir, "bin"), "--cni-conf-dir", join(n.dir, "conf"), "--wireguard-key-file", keyFile(2)]);
    expect(r.stderr).toContain("link twill.wg");
    expect((await execIn(n.ns, ["ip", "-o", "link"])).stdout).not.toContain("twill.wg");
    expect((await execIn(n.ns, ["nft", "list", "tables"])).stdout).not.toContain("twill");
    expect(existsSync(keyFile(2))).toBe(false);
    await eventually(async () => (await pidsIn(n.ns, "wireguard-go")).length === 0, "wireguard-go to exit with its device");
  });
});
