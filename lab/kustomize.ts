import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parse, parseAllDocuments, stringify } from "yaml";
import { TwillError } from "../lib/errors.ts";
import { exec } from "../lib/kernel/exec.ts";
import { manifestObjects } from "./install.ts";

// Twill installed the way docs/install.md tells an operator to: an overlay
// directory whose kustomization.yaml takes manifests/ as its base, swaps the
// image, replaces config.yaml in the twill-config ConfigMap and gives the
// daemon the apiserver's own address, then `kubectl apply --server-side -k`.
// The overlay written here has the shape of the guide's example (a test
// renders both with the real kubectl and compares them), so every lab that
// installs this way runs the guide's steps.

const MANIFESTS = resolve(import.meta.dirname, "../manifests");

export type ConfigValue = string | number | boolean;

export interface OverlayOptions {
  /** The overlay directory; created if missing. */
  dir: string;
  backend: string;
  /** `name:tag` or `name@sha256:…` in place of the manifest's image; absent: the manifest's own. */
  image?: string;
  /** Where the daemon reaches the apiserver (KUBERNETES_SERVICE_HOST/PORT). */
  apiserver: { host: string; port: number };
  /** config.yaml keys over the manifest's values; `vxlan.directRouting` reaches into a section. */
  config?: Record<string, ConfigValue>;
}

export interface KustomizeInstall extends OverlayOptions {
  kubectl: string;
  kubeconfig: string;
}

type Container = { name: string; image?: string };
type DaemonSetObj = KubernetesObject & { spec: { template: { spec: { containers: Container[] } } } };
type ConfigMapObj = KubernetesObject & { data: Record<string, string> };

/** The manifest's image without its tag: the `name` an `images:` entry matches. */
export function manifestImageName(objects = manifestObjects()): string {
  const ds = objects.find((o) => o.kind === "DaemonSet") as DaemonSetObj | undefined;
  const image = ds?.spec.template.spec.containers.find((c) => c.name === "twill")?.image;
  if (!image) throw new TwillError("MANIFEST_IMAGE", "manifests/twill.yaml has no DaemonSet container named twill with an image");
  return splitImage(image).newName;
}

/** An image reference as kustomize's `images:` fields. */
export function splitImage(ref: string): { newName: string; newTag?: string; digest?: string } {
  const at = ref.indexOf("@");
  if (at >= 0) return { newName: ref.slice(0, at), digest: ref.slice(at + 1) };
  // A colon after the last slash is the tag's; one before it is a registry's port.
  const colon = ref.lastIndexOf(":");
  if (colon > ref.lastIndexOf("/")) return { newName: ref.slice(0, colon), newTag: ref.slice(colon + 1) };
  return { newName: ref };
}

/** config.yaml whole: the manifest's, with the backend and the given keys set. */
export function configYaml(backend: string, overrides: Record<string, ConfigValue> = {}, objects = manifestObjects()): string {
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata?.name === "twill-config") as ConfigMapObj | undefined;
  const text = cm?.data["config.yaml"];
  if (text === undefined) throw new TwillError("MANIFEST_CONFIG", "manifests/twill.yaml has no twill-config ConfigMap with a config.yaml");
  const cfg = parse(text) as Record<string, unknown>;
  cfg.backend = backend;
  for (const [key, value] of Object.entries(overrides)) {
    const dot = key.indexOf(".");
    if (dot < 0) {
      cfg[key] = value;
      continue;
    }
    const section = key.slice(0, dot);
    cfg[section] = { ...((cfg[section] ?? {}) as Record<string, unknown>), [key.slice(dot + 1)]: value };
  }
  return stringify(cfg);
}

/** The overlay's kustomization.yaml, the shape of docs/install.md's example. */
export function kustomization(o: OverlayOptions): string {
  const objects = manifestObjects();
  const configMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "twill-config", namespace: "twill-system" },
    data: { "config.yaml": configYaml(o.backend, o.config, objects) },
  };
  const tun = o.config?.["wireguard.userspace"] === true;
  const daemonSet = {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: "twill", namespace: "twill-system" },
    spec: {
      template: {
        spec: {
          containers: [
            {
              name: "twill",
              env: [
                { name: "KUBERNETES_SERVICE_HOST", value: o.apiserver.host },
                { name: "KUBERNETES_SERVICE_PORT", value: String(o.apiserver.port) },
              ],
              // encryption: wireguard on a kernel without the module: wireguard-go's TUN device (docs/encryption.md).
              ...(tun ? { volumeMounts: [{ name: "dev-tun", mountPath: "/dev/net/tun" }] } : {}),
            },
          ],
          ...(tun ? { volumes: [{ name: "dev-tun", hostPath: { path: "/dev/net/tun", type: "CharDevice" } }] } : {}),
        },
      },
    },
  };
  const doc = {
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    // kustomize takes a local base as a path relative to the overlay.
    resources: [relative(o.dir, MANIFESTS)],
    ...(o.image ? { images: [{ name: manifestImageName(objects), ...splitImage(o.image) }] } : {}),
    patches: [{ patch: stringify(configMap) }, { patch: stringify(daemonSet) }],
  };
  return stringify(doc, { blockQuote: "literal" });
}

/** Writes `<dir>/kustomization.yaml`; returns the directory. */
export function writeOverlay(o: OverlayOptions): string {
  mkdirSync(o.dir, { recursive: true });
  writeFileSync(join(o.dir, "kustomization.yaml"), kustomization(o));
  return o.dir;
}

/** `kubectl apply --server-side -k <dir>`, the guide's command; `extra` for dry runs and output. Returns stdout. */
export async function applyOverlay(kubectl: string, kubeconfig: string, dir: string, extra: string[] = []): Promise<string> {
  const r = await exec([kubectl, "apply", "--server-side", "-k", dir, "--kubeconfig", kubeconfig, ...extra], { allowFailure: true });
  if (r.code !== 0) throw new TwillError("LAB_KUSTOMIZE", `kubectl apply --server-side -k ${dir} failed (exit ${r.code})`, (r.stderr || r.stdout).trim().slice(0, 2000));
  return r.stdout;
}

/** `kubectl kustomize <dir>`: the objects an overlay renders to, without an apiserver. */
export async function renderOverlay(kubectl: string, dir: string): Promise<KubernetesObject[]> {
  const r = await exec([kubectl, "kustomize", dir], { allowFailure: true });
  if (r.code !== 0) throw new TwillError("LAB_KUSTOMIZE", `kubectl kustomize ${dir} failed (exit ${r.code})`, r.stderr.trim().slice(0, 2000));
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as KubernetesObject);
}

/** Installs Twill from an overlay written for these options, as the guide does. */
export async function installWithKustomize(opts: KustomizeInstall): Promise<void> {
  await applyOverlay(opts.kubectl, opts.kubeconfig, writeOverlay(opts));
}
