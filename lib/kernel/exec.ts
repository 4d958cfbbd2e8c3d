import { spawn } from "node:child_process";
import { TwillError } from "../errors.ts";

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  input?: string;
  /** Resolve instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
  env?: NodeJS.ProcessEnv;
}

// Runs a program without a shell. The kernel tools (ip, nft, nsenter) report
// failures on stderr; the error keeps that text so a person sees the cause.
export function exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new TwillError("EXEC_EMPTY", "no program given to run");
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err) =>
      reject(new TwillError("EXEC_START", `could not start ${file}: is it installed?`, err.message)),
    );
    child.on("close", (code, signal) => {
      const result = { stdout, stderr, code: code ?? 128 };
      if (result.code === 0 || opts.allowFailure) resolve(result);
      else
        reject(
          new TwillError(
            "EXEC_FAILED",
            `${argv.join(" ")} failed (${signal ?? `exit ${code}`})`,
            stderr.trim() || stdout.trim(),
          ),
        );
    });
    child.stdin.on("error", () => {}); // the program may exit before reading all input
    child.stdin.end(opts.input ?? "");
  });
}

