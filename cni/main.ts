import { readFileSync, writeSync } from "node:fs";
import { basename } from "node:path";
import { TwillError } from "../lib/errors.ts";
import type { Invocation } from "./commands/context.ts";
import { decodeJson, parseNetConf } from "./config.ts";
import { readCommand, readEnv } from "./env.ts";
import { createCniLogger, type CniLogger } from "./log.ts";
import { CniError, ErrorCode, formatResult, isSupportedVersion, SPEC_VERSION, SUPPORTED_VERSIONS, type Result } from "./spec.ts";

// Entry point of the CNI executable. One binary serves two names: `twill`
// (the plugin) and `twill-ipam` (the IPAM plugin alone). stdout carries only
// the spec's result or error object; logs go to stderr or the configured file.
//
// Each command's modules are imported when that command runs, not at start:
// a run loads only what it uses (node:net, for one, costs ~2 ms of CPU in the
// compiled binary, measured; docs/cni.md).

const IPAM_ONLY = basename(process.execPath) === "twill-ipam";

// Kernel and IPAM errors raised below the CNI layer, mapped to spec codes.
function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof TwillError) {
    if (err.code === "NODE_FILE_MISSING") return new CniError(ErrorCode.TryAgainLater, err.message, err.details);
    if (err.code === "IPAM_EXHAUSTED") return new CniError(ErrorCode.RangeExhausted, err.message, err.details);
    if (err.code.endsWith("_INVALID")) return new CniError(ErrorCode.InvalidConfig, err.message, err.details);
    return new CniError(ErrorCode.KernelFailure, err.message, err.details);
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code && typeof e.syscall === "string") return new CniError(ErrorCode.IOFailure, `${e.syscall} failed: ${e.code}`, String(e.message));
  return new CniError(ErrorCode.IOFailure, "unexpected internal error", err instanceof Error ? (err.stack ?? err.message) : String(err));
}

function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch {
    return "";
  }
}

// writeSync, not process.stdout.write: in the compiled binary setting up the
// stream costs ~14 ms per run (measured), more than all our own code.
function write(obj: unknown): void {
  writeSync(1, JSON.stringify(obj) + "\n");
}

async function dispatch(inv: Invocation): Promise<Result | undefined> {
  if (IPAM_ONLY) return (await import("./ipam/plugin.ts")).runIpamPlugin(inv);
  switch (inv.env.command) {
    case "ADD":
      return (await import("./commands/add.ts")).cmdAdd(inv).catch(async (err: unknown) => {
        // Only a failed ADD loads the notice code here; it reports the failure to the daemon (metrics, Events).
        await (await import("./commands/notify.ts")).notifyAddFailed(inv, err);
        throw err;
      });
    case "DEL":
      await (await import("./commands/del.ts")).cmdDel(inv);
      return undefined;
    case "CHECK":
      await (await import("./commands/check.ts")).cmdCheck(inv);
      return undefined;
    case "STATUS":
      await (await import("./commands/status.ts")).cmdStatus(inv);
      return undefined;
    case "GC":
      await (await import("./commands/gc.ts")).cmdGc(inv);
      return undefined;
    default:
      return undefined;
  }
}

async function main(): Promise<number> {
  // Run by the daemon: set a TCP MD5 key on a socket it lends (Node has no setsockopt).
  if (!process.env.CNI_COMMAND && process.argv[2] === "md5sig") {
    try {
      return (await import("./md5sig.ts")).runMd5sigCli(process.argv.slice(3));
    } catch (err) {
      console.error(JSON.stringify({ msg: "md5sig failed", code: (err as TwillError).code ?? "MD5SIG_FAILED", error: String((err as Error).message) }));
      return 1;
    }
  }
  // Run by a person or an init container (no CNI_COMMAND): the install step.
  if (!process.env.CNI_COMMAND && process.argv.length > 2) {
    try {
      return (await import("./install.ts")).runInstallCli(process.argv.slice(2), process.execPath);
    } catch (err) {
      console.error(JSON.stringify({ msg: "install failed", code: (err as TwillError).code ?? "INSTALL_FAILED", error: String((err as Error).message), details: (err as TwillError).details }));
      return 1;
    }
  }
  let cniVersion = SPEC_VERSION;
  let log: CniLogger | undefined;
  try {
    const command = readCommand(process.env);
    const stdin = readStdin();
    if (command === "VERSION") {
      let asked: unknown;
      try {
        asked = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
      } catch {
        asked = undefined;
      }
      write({ cniVersion: typeof asked === "string" && isSupportedVersion(asked) ? asked : SPEC_VERSION, supportedVersions: SUPPORTED_VERSIONS });
      return 0;
    }
    const raw = decodeJson(stdin);
    if (typeof raw.cniVersion === "string" && isSupportedVersion(raw.cniVersion)) cniVersion = raw.cniVersion;
    const env = readEnv(process.env);
    const conf = parseNetConf(raw);
    log = createCniLogger(IPAM_ONLY ? "twill-ipam" : "twill-cni", conf.logLevel, conf.logFile);
    const result = await dispatch({ env, conf, stdin, log });
    if (result) write(formatResult(result, conf.cniVersion));
    return 0;
  } catch (err) {
    const e = toCniError(err);
    log?.error({ code: e.code, error: e.message, details: e.details }, "CNI command failed");
    write(e.toJSON(cniVersion));
    return 1;
  }
}

void main().then((code) => {
  // Every write was synchronous: nothing is left to flush, and exiting at once skips the runtime's teardown.
  process.exit(code);
});
