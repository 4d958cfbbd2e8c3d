import { exec } from "../../lib/kernel/exec.ts";
import { TwillError } from "../../lib/errors.ts";

/** Reads `ip -json ...` (or `bridge -json ...`); a missing device reads as empty. */
export async function readJson<T>(argv: string[]): Promise<T[]> {
  const r = await exec(argv, { allowFailure: true });
  if (r.code !== 0) {
    if (/does not exist|Cannot find device|not found/i.test(r.stderr)) return [];
    throw new TwillError("KERNEL_READ", `${argv.join(" ")} failed`, r.stderr.trim());
  }
  return r.stdout.trim() ? (JSON.parse(r.stdout) as T[]) : [];
}

/** Applies commands in one `ip -batch` (or `bridge -batch`) run; nothing to do runs nothing. */
export async function batch(tool: "ip" | "bridge", lines: string[]): Promise<number> {
  if (lines.length === 0) return 0;
  const input = lines.join("\n") + "\n";
  const r = await exec([tool, "-batch", "-"], { input, allowFailure: true });
  if (r.code !== 0) {
    const m = /Command failed -:(\d+)/.exec(r.stderr);
    const line = m ? lines[Number(m[1]) - 1] : undefined;
    throw new TwillError("KERNEL_WRITE", `${tool} ${line ?? "batch"} failed`, r.stderr.trim());
  }
  return lines.length;
}
