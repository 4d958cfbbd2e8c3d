import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exec } from "../../lib/kernel/exec.ts";
import { execIn, listNetns } from "../../lib/kernel/netns.ts";
import { rawRequest } from "../../lab/kube.ts";
import { labDir } from "../../lab/names.ts";
import { issue } from "../../lab/pki.ts";
import { sameNodeOnly } from "../../lab/matrix.ts";
import { probeTcpMatrix } from "../../lab/tcp-probe.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { sharedLab } from "../support/lab.ts";

const REPO = resolve(import.meta.dirname, "../..");
let lab: RunningLab;
beforeAll(async () => {
  lab = await sharedLab();
});
afterAll(() => lab.close());

describe("the lab's control plane", () => {
  it("serves TLS verified by the lab's CA and reports the real release", async () => {
    const r = await rawRequest(lab.forwarder.port, lab.state.admin, "GET", "/version");
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).gitVersion).toBe("v1.36.3");
  });

  it("refuses an unauthenticated request", async () => {
    const r = await rawRequest(lab.forwarder.port, { ca: lab.state.admin.ca }, "GET", "/api/v1/nodes");
    expect([401, 403]).toContain(r.status);
  });

  it("enforces RBAC: an authenticated user without bindings is forbidden", async () => {
    const pki = join(lab.state.dir, "pki");
    const nobody = await issue({ dir: pki, ca: join(pki, "ca.crt"), caKey: join(pki, "ca.key"), saKey: "", saPub: "" }, { name: "nobody", commonName: "nobody", usage: "client" });
    const r = await rawRequest(lab.forwarder.port, { ca: lab.state.admin.ca, ...nobody }, "GET", "/api/v1/nodes");
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).message).toContain('User "nobody" cannot list resource "nodes"');
  });

  it("gives every node a distinct pod CIDR inside the cluster CIDR (kube-controller-manager's node IPAM)", async () => {
    const nodes = (await lab.kc.makeApiClient(CoreV1Api).listNode()).items;
    expect(nodes.map((n) => n.metadata?.name).sort()).toEqual(["node1", "node2", "node3"]);
    const cidrs = nodes.map((n) => n.spec?.podCIDR ?? "");
    for (const c of cidrs) expect(c).toMatch(/^10\.244\.\d+\.0\/24$/);
    expect(new Set(cidrs).size).toBe(3);
    for (const n of nodes) {
      expect(n.status?.addresses?.find((a) => a.type === "InternalIP")?.address).toMatch(/^172\.30\.0\.\d+$/);
    }
  });
});

describe("the lab's pods", () => {
  it("carry the address Twill's CNI plugin gave them in status, inside their node's pod CIDR", async () => {
    const pods = (await lab.kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: "default" })).items;
    for (const p of lab.state.pods) {
      const obj = pods.find((x) => x.metadata?.name === p.name);
      expect(obj?.status?.podIP).toBe(p.ip);
      const node = lab.state.nodes.find((n) => n.name === p.node)!;
      expect(p.ip.split(".").slice(0, 3).join(".")).toBe(node.podCIDR.split(".").slice(0, 3).join("."));
      const addr = (await execIn(p.ns, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])).stdout;
      expect(addr).toContain(`${p.ip}/32`);
    }
  });

  it("on the same node reach each other", async () => {
    for (const node of lab.state.nodes) {
      const [a, b] = lab.state.pods.filter((p) => p.node === node.name);
      await execIn(a!.ns, ["ping", "-c1", "-W2", b!.ip]);
    }
  });
});

describe("the lab's TCP probe", () => {
  it("completes a handshake between every pair of pods on the same node, and marks other pairs by the expectation", async () => {
    const probes = await probeTcpMatrix(lab.state.pods, sameNodeOnly);
    expect(probes).toHaveLength(lab.state.pods.length * (lab.state.pods.length - 1));
    for (const p of probes.filter((x) => x.expected)) {
      expect(p.ok, `${p.from.name} -> ${p.to.name}`).toBe(true);
      expect(p.rttMs).toBeGreaterThan(0);
    }
    expect(probes.filter((x) => !x.expected).every((x) => x.from.node !== x.to.node)).toBe(true);
    // Its listeners are gone afterwards.
    const left = await exec(["pgrep", "-f", "TCP-LISTEN:7070"], { allowFailure: true });
    expect(left.stdout.trim()).toBe("");
  });
});

describe("lab lifecycle", () => {
  it("a second lab runs beside the first; killed with SIGKILL, it is found and removed by `lab down`", async () => {
    const child = spawn(process.execPath, [join(REPO, "lab/main.ts"), "--nodes", "1", "--pods", "1"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    const name = await new Promise<string>((res, rej) => {
      const t = setInterval(() => {
        const m = /lab (twlab\w+) is up/.exec(out);
        if (m) {
          clearInterval(t);
          res(m[1]!);
        }
        if (child.exitCode !== null) {
          clearInterval(t);
          rej(new Error(`second lab exited: ${out}`));
        }
      }, 200);
    });
    expect(name).not.toBe(lab.state.name);
    expect((await listNetns(`${name}-`)).length).toBeGreaterThanOrEqual(4);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));

    const down = await exec([process.execPath, join(REPO, "lab/main.ts"), "down"]);
    expect(down.stdout).toContain(`removing ${name}`);
    expect(await listNetns(`${name}-`)).toEqual([]);
    expect(existsSync(labDir(name))).toBe(false);
    const procs = await exec(["pgrep", "-f", labDir(name)], { allowFailure: true });
    expect(procs.stdout.trim()).toBe("");
    // The shared lab was left alone.
    expect((await listNetns(`${lab.state.name}-`)).length).toBeGreaterThan(0);
  });
});
