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

export async function setup(project: TestProject): Promise<void> {
  lab = await startLab({ nodes: 3, podsPerNode: 2, backend: "vxlan", log: (m) => console.log(`[lab] ${m}`) });
  project.provide("lab", lab.state.name);
}

export async function teardown(): Promise<void> {
  await lab?.close();
}
