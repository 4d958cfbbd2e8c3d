import { TwillError } from "../errors.ts";
import type { ExecOptions, ExecResult } from "./exec.ts";

/**
 * The blocking variant of exec, for the CNI plugin's rare calls to other
 * programs (CHECK, GC, delegated IPAM). node:child_process is loaded on first
 * use: ADD and DEL never need it, and loading it costs every plugin run ~2 ms
 * (measured). In Bun's compiled binaries a synchronous spawn is also ~8 ms
 * cheaper than the asynchronous one with pipes.
 */
export function execSync(argv: readonly string[], opts: ExecOptions = {}): ExecResult {
  const [file, ...args] = argv;
  if (!file) throw new TwillError("EXEC_EMPTY", "no program given to run");
  const { spawnSync } = process.getBuiltinModule("node:child_process");
  const r = spawnSync(file, args, { input: opts.input ?? "", env: opts.env ?? process.env, encoding: "utf8" });
  if (r.error) throw new TwillError("EXEC_START", `could not start ${file}: is it installed?`, r.error.message);
  const result = { stdout: r.stdout ?? "", stderr: r.stderr ?? "", code: r.status ?? 128 };
  if (result.code !== 0 && !opts.allowFailure) {
    throw new TwillError("EXEC_FAILED", `${argv.join(" ")} failed (${r.signal ?? `exit ${r.status}`})`, result.stderr.trim() || result.stdout.trim());
  }
  return result;
}
