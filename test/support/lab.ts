import { inject } from "vitest";
import { attachLab, type RunningLab } from "../../lab/lab.ts";

/** The run's shared lab (started by test/lab/global-setup.ts). */
export function sharedLab(): Promise<RunningLab> {
  return attachLab(inject("lab"));
}
