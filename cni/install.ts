import {
  closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync,
  unlinkSync, writeSync,
} from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { TwillError } from "../lib/errors.ts";
import { SUPPORTED_VERSIONS } from "./spec.ts";

// `twill install`: what the DaemonSet's init step runs to put the plugin and
// its conflist on the node. Every file appears by rename(2), so a kubelet or
// container runtime reading the directories at any instant sees the old file
// or the new one, never part of one. Temp files start with a dot and end in
// neither .conf, .conflist nor .json, which runtimes ignore.

export const DEFAULT_CONFLIST_NAME = "10-twill.conflist";

export function defaultConflist(nodeFile = "/run/twill/node.json"): Record<string, unknown> {
  return {
    cniVersion: "1.1.0",
    name: "twill",
    plugins: [
      { type: "twill", nodeFile, ipam: { type: "twill-ipam" } },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/** Checks a conflist before it is installed: a broken one would stop every pod on the node. */
export function validateConflist(text: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TwillError("CONFLIST_INVALID", "the CNI conflist is not valid JSON", String(err));
  }
  const o = raw as Record<string, unknown>;
  if (typeof o !== "object" || o === null) throw new TwillError("CONFLIST_INVALID", "the CNI conflist must be a JSON object");
  if (typeof o.cniVersion !== "string" || !(SUPPORTED_VERSIONS as readonly string[]).includes(o.cniVersion)) {
    throw new TwillError("CONFLIST_INVALID", `the CNI conflist's cniVersion must be one of ${SUPPORTED_VERSIONS.join(", ")}`);
  }
  if (typeof o.name !== "string" || !o.name) throw new TwillError("CONFLIST_INVALID", "the CNI conflist needs a name");
  const plugins = o.plugins;
  if (!Array.isArray(plugins) || plugins.length === 0 || (plugins[0] as { type?: unknown }).type !== "twill") {
    throw new TwillError("CONFLIST_INVALID", 'the CNI conflist needs a "plugins" list whose first plugin has type "twill"');
  }
  return o;
}

function tempName(dir: string, name: string): string {
  return join(dir, `.${name}.tmp-${process.pid}`);
}

function atomicWrite(dir: string, name: string, data: string, mode: number): void {
  const tmp = tempName(dir, name);
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, name));
}

function atomicCopy(src: string, dir: string, name: string): void {
  const tmp = tempName(dir, name);
  copyFileSync(src, tmp);
  const fd = openSync(tmp, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // A running plugin keeps its old inode; rename never writes into a busy binary.
  renameSync(tmp, join(dir, name));
}

/** Removes temp files an interrupted install left behind. */
function sweep(dir: string): void {
  for (const f of readdirSync(dir)) {
    if (f.startsWith(".") && f.includes(".tmp-")) rmSync(join(dir, f), { force: true });
  }
}

export interface InstallOptions {
  binDir: string;
  confDir: string;
  /** The executable to install (this binary). */
  self: string;
  conflist: string;
  conflistName: string;
}

export function install(o: InstallOptions): { binaries: string[]; conflist: string } {
  validateConflist(o.conflist);
  for (const dir of [o.binDir, o.confDir]) {
    mkdirSync(dir, { recursive: true });
    sweep(dir);
  }
  for (const name of ["twill", "twill-ipam"]) {
    atomicCopy(o.self, o.binDir, name);
  }
  atomicWrite(o.confDir, o.conflistName, o.conflist.endsWith("\n") ? o.conflist : `${o.conflist}\n`, 0o644);
  return { binaries: ["twill", "twill-ipam"].map((n) => join(o.binDir, n)), conflist: join(o.confDir, o.conflistName) };
}

/** `twill uninstall`: the conflist first, so no new pod is sent to a plugin about to vanish. */
export function uninstall(binDir: string, confDir: string, conflistName: string): void {
  for (const path of [join(confDir, conflistName), join(binDir, "twill"), join(binDir, "twill-ipam")]) {
    if (existsSync(path)) unlinkSync(path);
  }
}

const USAGE = `usage: twill install [--bin-dir DIR] [--conf-dir DIR] [--conflist FILE] [--conflist-name NAME] [--node-file PATH]
       twill uninstall [--bin-dir DIR] [--conf-dir DIR] [--conflist-name NAME]`;

/** Runs the command-line form; returns the exit code. */
export function runInstallCli(args: string[], self: string): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "bin-dir": { type: "string", default: "/opt/cni/bin" },
      "conf-dir": { type: "string", default: "/etc/cni/net.d" },
      conflist: { type: "string" },
      "conflist-name": { type: "string", default: DEFAULT_CONFLIST_NAME },
      "node-file": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  const verb = positionals[0];
  if (values.help || (verb !== "install" && verb !== "uninstall")) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  if (verb === "uninstall") {
    uninstall(values["bin-dir"], values["conf-dir"], values["conflist-name"]);
    console.error(JSON.stringify({ msg: "uninstalled", binDir: values["bin-dir"], confDir: values["conf-dir"] }));
    return 0;
  }
  const conflist = values.conflist ? readFileSync(values.conflist, "utf8") : JSON.stringify(defaultConflist(values["node-file"]), null, 2);
  const done = install({ binDir: values["bin-dir"], confDir: values["conf-dir"], self, conflist, conflistName: values["conflist-name"] });
  console.error(JSON.stringify({ msg: "installed", ...done }));
  return 0;
}
