import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD_NAMESPACE, PASSWORD_SECRET } from "../../daemon/backends/bgp/password.ts";
import { serviceAccountToken } from "../../lab/install.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { exec } from "../../lib/kernel/exec.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { sharedLab } from "../support/lab.ts";
import { startBird, type PeerDaemon } from "./support/daemons.ts";
import { createLan, waitFor, type Lan } from "./support/lan.ts";

// BGPPeer TCP MD5 end to end: the bgp backend (test/bgp/support/backend-runner.ts,
// the daemon's reconcile) in a test namespace reads its BGPPeer and the
// password Secret from the lab's apiserver as the twill ServiceAccount (so the
// manifest's least-privilege Role is what is exercised), sets the key on its
// listener with dist/cni/twill md5sig, and BIRD 2 connects with the same key.

const HELPER = resolve(import.meta.dirname, "../../dist/cni/twill");
const T = "10.77.0.1";
const B = "10.77.0.2";
const suffix = Math.random().toString(36).slice(2, 7);
const prefix = `twmd5-${suffix}-`;
const peer = `${prefix}bird`;
const key = `bird-${suffix}`;
const group = { group: "twill.dev", version: "v1alpha1", plural: "bgppeers" };

describe.skipIf(!existsSync(HELPER))("BGPPeer with a TCP MD5 password from its Secret, against BIRD 2", () => {
  let lab: RunningLab;
  let lan: Lan;
  let core: CoreV1Api;
  let crds: CustomObjectsApi;
  let runner: ChildProcess;
  let logs = "";
  let bird: PeerDaemon | undefined;
  const startBirdWith = async (password: string) => {
    await bird?.stop();
    bird = await startBird({ ns: lan.ns(2), dir: join(lan.dir, password), asn: 65002, routerId: B, twill: { address: T, asn: 64512 }, holdTime: 30, announce: ["10.99.1.0/24"], password });
  };
  const lines = () => logs.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
  const putSecret = async (value: string) => {
    const body = { metadata: { name: PASSWORD_SECRET, namespace: PASSWORD_NAMESPACE }, stringData: { [key]: value } };
    await core.replaceNamespacedSecret({ name: PASSWORD_SECRET, namespace: PASSWORD_NAMESPACE, body }).catch(() => core.createNamespacedSecret({ namespace: PASSWORD_NAMESPACE, body }));
  };
  const twillRoutes = async () => (await execIn(lan.ns(1), ["ip", "route", "show", "proto", "211"])).stdout;

  beforeAll(async () => {
    lab = await sharedLab();
    core = lab.kc.makeApiClient(CoreV1Api);
    crds = lab.kc.makeApiClient(CustomObjectsApi);
    // Only this file uses the password Secret; a leftover from a killed run goes.
    await core.deleteNamespacedSecret({ name: PASSWORD_SECRET, namespace: PASSWORD_NAMESPACE }).catch(() => {});
    lan = await createLan(2);
    await exec(["ip", "-n", lan.ns(1), "link", "set", "lo", "up"]);
    await crds.createClusterCustomObject({
      ...group,
      body: { apiVersion: "twill.dev/v1alpha1", kind: "BGPPeer", metadata: { name: peer }, spec: { peerIP: B, asNumber: 65002, holdTimeSeconds: 30, password: { secretKeyRef: { name: PASSWORD_SECRET, key } } } },
    });
    const token = await serviceAccountToken(lab.kc, 1);
    const file = join(lan.dir, "node1.json");
    const nodes = [{ name: "node1", ip: T, podCIDRs: ["10.244.1.0/24"], annotations: {} }];
    writeFileSync(file, JSON.stringify({ self: "node1", nodes, lab: { name: lab.state.name, token, peerPrefix: prefix }, twillBinary: HELPER }), { mode: 0o600 });
    runner = spawn("ip", ["netns", "exec", lan.ns(1), process.execPath, "test/bgp/support/backend-runner.ts", file], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, TWILL_LOG_LEVEL: "info" } });
    runner.stderr!.setEncoding("utf8").on("data", (d: string) => (logs += d));
    await startBirdWith("s3cret-one");
  });
  afterAll(async () => {
    runner?.kill("SIGKILL");
    await bird?.stop();
    await crds?.deleteClusterCustomObject({ ...group, name: peer }).catch(() => {});
    await core?.deleteNamespacedSecret({ name: PASSWORD_SECRET, namespace: PASSWORD_NAMESPACE }).catch(() => {});
    await lan?.close();
    lab?.close();
  });

  it("without the Secret the peer is left out, logged once with BGP_PASSWORD_MISSING; nothing else fails", async () => {
    const missing = () => lines().filter((l) => l.code === "BGP_PASSWORD_MISSING" && l.peer === peer);
    await waitFor(`the missing-password line ${logs.slice(-500)}`, () => (missing().length ? true : undefined));
    // Several reconcile ticks (every 2 s) later: still one line, no session, the backend keeps reconciling.
    await new Promise((r) => setTimeout(r, 5000));
    expect(missing()).toHaveLength(1);
    expect(String(missing()[0]!.msg)).toMatch(/does not exist; create it with kubectl/);
    expect(await bird!.established()).toBe(false);
    expect(lines().some((l) => l.level as number >= 50 && l.code !== "BGP_PASSWORD_MISSING")).toBe(false);
    expect(await twillRoutes()).toContain("blackhole 10.244.1.0/24");
  });

  it("when the Secret appears with BIRD's key the session comes up and routes flow both ways", async () => {
    await putSecret("s3cret-one");
    await waitFor("BIRD established with MD5", async () => ((await bird!.established()) ? true : undefined));
    await waitFor("Twill installs BIRD's prefix", async () => ((await twillRoutes()).includes("10.99.1.0/24 via 10.77.0.2") ? true : undefined));
    await waitFor("BIRD learns Twill's block", async () => ((await bird!.learned()).has("10.244.1.0/24") ? true : undefined));
    expect(lines().some((l) => l.peer === peer && /password found/.test(String(l.msg)))).toBe(true);
  });

  it("a rotated password re-keys the listener: BIRD with the old key gets no session, with the new one it does", async () => {
    await putSecret("s3cret-two");
    await waitFor("the session with the old key to go", async () => ((await bird!.established()) ? undefined : true));
    // BIRD retries every 2 s; 8 s without a session is several dropped attempts.
    await new Promise((r) => setTimeout(r, 8000));
    expect(await bird!.established()).toBe(false);
    await startBirdWith("s3cret-two");
    await waitFor("BIRD established with the new key", async () => ((await bird!.established()) ? true : undefined));
    await waitFor("BIRD learns Twill's block again", async () => ((await bird!.learned()).has("10.244.1.0/24") ? true : undefined));
  });

  it("never logs a password; the Secret's get and name-narrowed watch were allowed by the twill Role (no watch failed)", () => {
    expect(logs).not.toContain("s3cret");
    expect(lines().filter((l) => /watch failed/.test(String(l.msg)))).toEqual([]);
  });
});
