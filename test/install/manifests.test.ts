import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyObject, manifestObjects, objectPath, serviceAccountToken } from "../../lab/install.ts";
import { rawRequest } from "../../lab/kube.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { sharedLab } from "../support/lab.ts";

// manifests/twill.yaml against the lab's real kube-apiserver: schema
// validation, CRDs, and the RBAC the daemon runs under (the lab's daemons
// already authenticate with this ServiceAccount's token).

let lab: RunningLab;
let token: string;
beforeAll(async () => {
  lab = await sharedLab();
  token = await serviceAccountToken(lab.kc, 1);
});
afterAll(() => lab.close());

const asDaemon = (method: string, path: string, body?: unknown) => rawRequest(lab.forwarder.port, { ca: lab.state.admin.ca, token }, method, path, body);
const asAdmin = (method: string, path: string, body?: unknown) => rawRequest(lab.forwarder.port, lab.state.admin, method, path, body);

describe("manifests/twill.yaml", () => {
  it("every object passes server-side dry-run apply, then applies for real (the DaemonSet too)", async () => {
    for (const obj of manifestObjects()) await applyObject(lab.forwarder.port, lab.state.admin, obj, true);
    for (const obj of manifestObjects()) await applyObject(lab.forwarder.port, lab.state.admin, obj);
    const ds = manifestObjects().find((o) => o.kind === "DaemonSet")!;
    const stored = JSON.parse((await asAdmin("GET", objectPath(ds))).body);
    expect(stored.spec.template.spec.hostNetwork).toBe(true);
    expect(stored.spec.updateStrategy.rollingUpdate.maxUnavailable).toBe(1);
  });

  it("its CRDs reach Established", async () => {
    for (const name of ["bgpconfigurations.twill.dev", "bgppeers.twill.dev"]) {
      const r = await asAdmin("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
      const conds = JSON.parse(r.body).status.conditions as { type: string; status: string }[];
      expect(conds.find((c) => c.type === "Established")?.status).toBe("True");
    }
  });

  it("the apiserver's schema validation rejects invalid custom resources and defaults valid ones", async () => {
    const peer = (spec: Record<string, unknown>, name = `p${Math.random().toString(36).slice(2, 8)}`) =>
      asAdmin("POST", "/apis/twill.dev/v1alpha1/bgppeers", { apiVersion: "twill.dev/v1alpha1", kind: "BGPPeer", metadata: { name }, spec });
    const invalid = [
      {}, // missing peerIP and asNumber
      { peerIP: "10.0.0.1", asNumber: "sixty-four" },
      { peerIP: "10.0.0.1", asNumber: 0 },
      { peerIP: "not-an-address", asNumber: 64512 },
      { peerIP: "10.0.0.1", asNumber: 64512, holdTimeSeconds: 2 },
      { peerIP: "10.0.0.1", asNumber: 64512, password: { secretKeyRef: { name: "x" } } },
    ];
    for (const spec of invalid) {
      const r = await peer(spec);
      expect(r.status, JSON.stringify(spec)).toBe(422);
    }
    const cfg = await asAdmin("POST", "/apis/twill.dev/v1alpha1/bgpconfigurations", { apiVersion: "twill.dev/v1alpha1", kind: "BGPConfiguration", metadata: { name: "bad" }, spec: { listenPort: 70000 } });
    expect(cfg.status).toBe(422);

    const ok = await peer({ peerIP: "fd00::1", asNumber: 4_200_000_000 }, "tor-1");
    expect(ok.status, ok.body).toBe(201);
    const created = JSON.parse(ok.body);
    expect(created.spec).toMatchObject({ holdTimeSeconds: 90, routeReflector: false, nodeSelector: "" });
    await asAdmin("DELETE", "/apis/twill.dev/v1alpha1/bgppeers/tor-1");
  });
});

describe("the daemon's ServiceAccount (least privilege)", () => {
  it("can read what the daemon uses", async () => {
    for (const path of ["/api/v1/nodes", "/api/v1/pods", "/api/v1/namespaces", "/apis/networking.k8s.io/v1/networkpolicies", "/apis/twill.dev/v1alpha1/bgppeers", "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices", "/apis/twill.dev/v1alpha1/loadbalancerpools"]) {
      // A CRD applied moments ago may still answer 429 while its storage initializes.
      let status = 429;
      for (let i = 0; i < 50 && status === 429; i++) {
        status = (await asDaemon("GET", path)).status;
        if (status === 429) await new Promise((r) => setTimeout(r, 200));
      }
      expect(status, path).toBe(200);
    }
  });

  it("is refused what the role does not grant: Secrets, deleting Nodes, writing Pods", async () => {
    expect((await asDaemon("GET", "/api/v1/namespaces/twill-system/secrets")).status).toBe(403);
    expect((await asDaemon("GET", "/api/v1/namespaces/kube-system/secrets/anything")).status).toBe(403);
    expect((await asDaemon("DELETE", "/api/v1/nodes/node1")).status).toBe(403);
    expect((await asDaemon("POST", "/api/v1/namespaces/default/pods", { apiVersion: "v1", kind: "Pod", metadata: { name: "x" }, spec: { containers: [{ name: "c", image: "i" }] } })).status).toBe(403);
    // The one Secret it may read is the named BGP password (absent here: 404, not 403).
    expect((await asDaemon("GET", "/api/v1/namespaces/twill-system/secrets/twill-bgp-password")).status).toBe(404);
  });

  it("has no wildcard and no cluster-admin in its roles", () => {
    const roles = manifestObjects().filter((o) => o.kind === "ClusterRole" || o.kind === "Role") as unknown as { rules: { verbs: string[]; resources: string[]; apiGroups: string[] }[] }[];
    for (const r of roles) {
      for (const rule of r.rules) {
        expect([...rule.verbs, ...rule.resources, ...rule.apiGroups]).not.toContain("*");
      }
    }
    const bindings = manifestObjects().filter((o) => o.kind?.endsWith("Binding")) as unknown as { roleRef: { name: string } }[];
    for (const b of bindings) expect(b.roleRef.name).not.toBe("cluster-admin");
  });

  it("lets the daemon bind BGP's port 179: the bgp backend listens there, and a port below 1024 needs NET_BIND_SERVICE", () => {
    type Container = { name: string; securityContext?: { capabilities?: { add?: string[]; drop?: string[] } } };
    const ds = manifestObjects().find((o) => o.kind === "DaemonSet") as unknown as { spec: { template: { spec: { containers: Container[] } } } };
    const twill = ds.spec.template.spec.containers.find((c) => c.name === "twill")!;
    expect(twill.securityContext?.capabilities?.drop).toContain("ALL");
    expect(twill.securityContext?.capabilities?.add).toEqual(expect.arrayContaining(["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]));
  });
});
