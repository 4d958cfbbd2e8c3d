import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseConfig } from "../../daemon/config.ts";
import { kubectlBinary } from "../../lab/binaries.ts";
import { manifestObjects, objectPath } from "../../lab/install.ts";
import { kubeConfig, rawRequest } from "../../lab/kube.ts";
import { applyOverlay, manifestImageName, renderOverlay, writeOverlay, type OverlayOptions } from "../../lab/kustomize.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { CONTROL_PLANE_IP } from "../../lab/names.ts";
import { sharedLab } from "../support/lab.ts";

// docs/install.md's overlay and the one the lab installs from
// (lab/kustomize.ts), both rendered by the kubectl built with the control
// plane: they must override the image, config.yaml and the apiserver address
// and leave every other byte of manifests/twill.yaml alone. Then the lab's
// apiserver judges a lab overlay with a server-side dry run.

const REPO = resolve(import.meta.dirname, "../..");
const GUIDE = join(REPO, "docs/install.md");
const MARKER = "<!-- twill-test: overlay -->";

type Env = { name: string; value?: string; valueFrom?: unknown };
type Container = { name: string; image: string; env?: Env[] };
type Pod = { spec: { template: { spec: { containers: Container[]; initContainers?: Container[] } } } };
type Obj = KubernetesObject & { data?: Record<string, string> } & Partial<Pod>;

let kubectl: string;
let scratch: string;
beforeAll(async () => {
  kubectl = await kubectlBinary((m) => console.log(`[kubectl] ${m}`));
  scratch = mkdtempSync(join(tmpdir(), "twill-kustomize-"));
}, 900_000);
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The yaml block right after the marker comment. */
function guideOverlay(): string {
  const md = readFileSync(GUIDE, "utf8");
  const at = md.indexOf(MARKER);
  const m = at < 0 ? null : /^```yaml\n([\s\S]*?)^```$/m.exec(md.slice(at + MARKER.length));
  if (!m) throw new Error(`docs/install.md has no yaml block after ${MARKER}`);
  return m[1]!;
}

/** The guide's layout: the checkout at ../twill (here a link to this one), the overlay in my-cluster/. */
function writeGuideOverlay(): string {
  const root = mkdtempSync(join(scratch, "guide-"));
  symlinkSync(REPO, join(root, "twill"));
  mkdirSync(join(root, "my-cluster"));
  writeFileSync(join(root, "my-cluster/kustomization.yaml"), guideOverlay());
  return join(root, "my-cluster");
}

const id = (o: KubernetesObject) => `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
const byId = (objs: KubernetesObject[]) => Object.fromEntries(objs.map((o) => [id(o), o]));
const find = (objs: Obj[], kind: string) => objs.find((o) => o.kind === kind)!;
const twillContainer = (objs: Obj[]) => find(objs, "DaemonSet").spec!.template.spec.containers.find((c) => c.name === "twill")!;
const images = (objs: Obj[]) => {
  const pod = find(objs, "DaemonSet").spec!.template.spec;
  return [...(pod.initContainers ?? []), ...pod.containers].map((c) => c.image);
};

/** The objects with what an overlay may change put back to the manifest's values. */
function undoOverrides(objs: Obj[], base: Obj[]): Obj[] {
  const out = structuredClone(objs);
  find(out, "ConfigMap").data!["config.yaml"] = find(base, "ConfigMap").data!["config.yaml"]!;
  const pod = find(out, "DaemonSet").spec!.template.spec;
  const image = images(base)[0]!;
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    c.image = image;
    if (c.env) c.env = c.env.filter((e) => !e.name.startsWith("KUBERNETES_SERVICE_"));
  }
  return out;
}

/** What the overlay sets, as the rendered objects carry it. */
function overrides(objs: Obj[]) {
  const env = Object.fromEntries((twillContainer(objs).env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
  return { images: [...new Set(images(objs))], config: parseConfig(find(objs, "ConfigMap").data!["config.yaml"]!), env };
}

/** A kustomization's structure without its values: keys, patch targets, config.yaml's keys, env names. */
function shape(text: string) {
  const k = parse(text) as { resources: string[]; images?: Record<string, string>[]; patches: { patch: string }[] } & Record<string, unknown>;
  const patches = k.patches.map((p) => {
    const o = parse(p.patch) as Obj;
    const config = o.data?.["config.yaml"] ? (parse(o.data["config.yaml"]) as Record<string, unknown>) : undefined;
    return {
      target: id(o),
      dataKeys: Object.keys(o.data ?? {}),
      configKeys: config ? Object.entries(config).map(([key, v]) => (typeof v === "object" && v ? `${key}{${Object.keys(v).join(",")}}` : key)) : [],
      containers: (o.spec?.template.spec.containers ?? []).map((c) => `${c.name}: ${(c.env ?? []).map((e) => e.name).join(",")}`),
    };
  });
  return { keys: Object.keys(k), resources: k.resources.length, images: (k.images ?? []).map((i) => Object.keys(i)), patches };
}

const LAB_OVERLAY: Omit<OverlayOptions, "dir"> = {
  backend: "bgp",
  image: "registry.example.com:5000/net/twill:1.2.3",
  apiserver: { host: CONTROL_PLANE_IP, port: 6443 },
  config: { masquerade: false, "vxlan.directRouting": true },
};

describe("manifests/kustomization.yaml", () => {
  it("renders manifests/twill.yaml unchanged", async () => {
    const rendered = await renderOverlay(kubectl, join(REPO, "manifests"));
    expect(byId(rendered)).toEqual(byId(manifestObjects()));
  });
});

describe("docs/install.md's overlay", () => {
  it("renders the manifest's objects with the guide's image, config.yaml and apiserver address, nothing else changed", async () => {
    const base = manifestObjects() as Obj[];
    const rendered = (await renderOverlay(kubectl, writeGuideOverlay())) as Obj[];
    expect(Object.keys(byId(rendered)).sort()).toEqual(Object.keys(byId(base)).sort());
    const got = overrides(rendered);
    expect(got.images).toEqual(["registry.example.com/net/twill:0.1.0"]);
    expect(got.config).toMatchObject({ clusterCIDR: "10.244.0.0/16", backend: "host-gw", masquerade: true, policy: true });
    expect(got.env).toEqual({ NODE_NAME: { fieldRef: { fieldPath: "spec.nodeName" } }, KUBERNETES_SERVICE_HOST: "192.0.2.10", KUBERNETES_SERVICE_PORT: "6443" });
    expect(byId(undoOverrides(rendered, base))).toEqual(byId(base));
  });

  it("has the shape of the overlay the lab installs from (same keys, patch targets, config.yaml keys, env names)", () => {
    const dir = writeOverlay({ dir: join(scratch, "shape"), ...LAB_OVERLAY });
    const lab = shape(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
    expect(lab).toEqual(shape(guideOverlay()));
    expect(lab.images).toEqual([["name", "newName", "newTag"]]);
  });
});

describe("the lab's overlay (lab/kustomize.ts)", () => {
  it("renders the manifest's objects with its image, backend, switches and apiserver address, nothing else changed", async () => {
    const base = manifestObjects() as Obj[];
    const rendered = (await renderOverlay(kubectl, writeOverlay({ dir: join(scratch, "lab"), ...LAB_OVERLAY }))) as Obj[];
    const got = overrides(rendered);
    expect(got.images).toEqual(["registry.example.com:5000/net/twill:1.2.3"]);
    expect(got.config).toMatchObject({ clusterCIDR: "10.244.0.0/16", backend: "bgp", masquerade: false, policy: true, vxlan: { vni: 1, port: 8472, directRouting: true } });
    expect(got.env).toMatchObject({ KUBERNETES_SERVICE_HOST: CONTROL_PLANE_IP, KUBERNETES_SERVICE_PORT: "6443" });
    expect(byId(undoOverrides(rendered, base))).toEqual(byId(base));
  });

  it("matches the manifest's image by name, whatever its tag", () => {
    expect(manifestImageName()).toBe(images(manifestObjects() as Obj[])[0]!.replace(/:[^:/]+$/, ""));
  });
});

describe("kubectl apply -k against the lab's apiserver", () => {
  let lab: RunningLab;
  beforeAll(async () => {
    lab = await sharedLab();
  });
  afterAll(() => lab?.close());

  it("accepts a lab overlay in a server-side dry run, with the overlay's values, and stores nothing", async () => {
    const kubeconfig = join(scratch, "admin.kubeconfig");
    writeFileSync(kubeconfig, kubeConfig(lab.forwarder.port, lab.state.admin).exportConfig(), { mode: 0o600 });
    const dir = writeOverlay({ dir: join(scratch, "dry-run"), ...LAB_OVERLAY });
    // The shared lab's objects belong to field manager twill-lab: take them over, in the dry run only.
    const out = await applyOverlay(kubectl, kubeconfig, dir, ["--dry-run=server", "--force-conflicts", "-o", "json"]);
    const answered = (JSON.parse(out) as { items: Obj[] }).items;
    expect(Object.keys(byId(answered)).sort()).toEqual(Object.keys(byId(manifestObjects())).sort());
    const got = overrides(answered);
    expect(got.images).toEqual(["registry.example.com:5000/net/twill:1.2.3"]);
    expect(got.config.backend).toBe("bgp");
    expect(got.env).toMatchObject({ KUBERNETES_SERVICE_HOST: CONTROL_PLANE_IP, KUBERNETES_SERVICE_PORT: "6443" });
    // The apiserver's defaults are in its answer: it admitted the DaemonSet, not just parsed it.
    expect((find(answered, "DaemonSet").spec as unknown as { revisionHistoryLimit: number }).revisionHistoryLimit).toBe(10);

    const cm = find(manifestObjects() as Obj[], "ConfigMap");
    const stored = JSON.parse((await rawRequest(lab.forwarder.port, lab.state.admin, "GET", objectPath(cm))).body) as Obj;
    expect(parseConfig(stored.data!["config.yaml"]!).backend).toBe("vxlan");
  });
});
