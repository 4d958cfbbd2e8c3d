import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Namespace } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchResource, type ResourceWatch } from "../../daemon/cluster/resource-watch.ts";
import { slimNamespace } from "../../daemon/policy/watches.ts";
import type { RunningLab } from "../../lab/lab.ts";
import { createLogger } from "../../lib/log.ts";
import { sharedLab } from "../support/lab.ts";
import { eventually } from "./helpers.ts";

// The daemon's watches against the real apiserver: an update the slim copy
// does not carry (for a Node: status, conditions, taints) must not wake the
// consumers, or heartbeats at scale keep the reconcile loop busy.

let lab: RunningLab;
let core: CoreV1Api;
let watch: ResourceWatch<V1Namespace>;
const name = `watch-${process.pid}`;
const marker = `watch-marker-${process.pid}`;
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

beforeAll(async () => {
  lab = await sharedLab();
  core = lab.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name, labels: { team: "a" } } } });
  await core.createNamespace({ body: { metadata: { name: marker } } });
  const log = createLogger({ name: "watch-test", level: "silent" });
  watch = watchResource<V1Namespace>({ kc: lab.kc, log, onError: () => {}, path: "/api/v1/namespaces", what: "namespace", listPage: () => core.listNamespace(), slim: slimNamespace });
  await eventually(async () => watch.synced() && watch.list().some((n) => n.metadata?.name === name), "the watch to list the namespace");
});
afterAll(async () => {
  watch?.stop();
  for (const n of [name, marker]) await core?.deleteNamespace({ name: n }).catch(() => {});
  await lab?.close();
});

const cached = () => watch.list().find((n) => n.metadata?.name === name)!;

describe("resource watch", () => {
  it("keeps the cached object itself when an update changes nothing it carries", async () => {
    const before = cached();
    await core.patchNamespace({ name, body: { metadata: { annotations: { "example.com/note": "y" } } } }, merge);
    // A label change on another namespace marks the point: one watch stream delivers events in order.
    await core.patchNamespace({ name: marker, body: { metadata: { labels: { seen: "1" } } } }, merge);
    await eventually(async () => watch.list().find((n) => n.metadata?.name === marker)?.metadata?.labels?.seen === "1", "the marker namespace's label");
    expect(cached()).toBe(before);
  });

  it("wakes consumers for an update it carries", async () => {
    let woken = false;
    watch.onChange(() => (woken = true));
    const rev = watch.revision();
    await core.patchNamespace({ name, body: { metadata: { labels: { team: "b" } } } }, merge);
    await eventually(async () => cached().metadata?.labels?.team === "b", "the label change");
    expect(woken).toBe(true);
    expect(watch.revision()).toBeGreaterThan(rev);
  });
});
