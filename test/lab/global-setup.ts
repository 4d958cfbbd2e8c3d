import type { TestProject } from "vitest/node";
import { startLab, type RunningLab } from "../../lab/lab.ts";

// One lab per test run, shared by every test file: files attach to it by name
// (test/support/lab.ts) and clean up the objects they create.

declare module "vitest" {
  export interface ProvidedContext {
    lab: string;
  }
}

let lab: RunningLab | undefined;

/** Files that start labs of their own (test/kubelet): a run of only those needs no shared lab. */
const OWN_LAB_DIRS = ["test/kubelet", "test/encryption", "test/observe"];

function onlyOwnLabFiles(): boolean {
  const filters = process.argv.slice(2).filter((a) => !a.startsWith("-") && a !== "run" && a.includes("/"));
  return filters.length > 0 && filters.every((f) => OWN_LAB_DIRS.some((d) => f.replace(/^\.\//, "").startsWith(d)));
}

export async function setup(project: TestProject): Promise<void> {
  if (onlyOwnLabFiles()) return;
  lab = await startLab({ nodes: 3, podsPerNode: 2, backend: "vxlan", log: (m) => console.log(`[lab] ${m}`) });
  project.provide("lab", lab.state.name);
}

export async function teardown(): Promise<void> {
  await lab?.close();
}
