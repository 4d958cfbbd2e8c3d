import { parseArgs, type ParseArgsConfig } from "node:util";
import { EXIT } from "../lib/ctl-api.ts";
import { CtlError } from "./errors.ts";

// Command lines: node:util's parseArgs (strict: an unknown option is an error)
// with a small table of commands that also writes each one's --help. Enough
// for eight commands with a handful of flags each, and nothing to ship.

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface CommandSpec {
  /** "status", "ipam gc", "policy explain". */
  name: string;
  args: string;
  summary: string;
  options: Options;
  /** Lines for --help beyond the usage line: the options' meaning, examples. */
  help: string[];
}

export const GLOBAL_OPTIONS: Options = {
  output: { type: "string", short: "o", default: "table" },
  socket: { type: "string" },
  kubeconfig: { type: "string" },
  "daemon-port": { type: "string", default: "9099" },
  help: { type: "boolean", short: "h" },
};

export const GLOBAL_HELP = [
  "  -o, --output table|json|yaml   output format (default table)",
  "      --socket PATH              the local daemon's socket (default $TWILL_CTL_SOCKET or /run/twill/ctl.sock)",
  "      --kubeconfig PATH          for --node, --all-nodes and pods on other nodes (default $KUBECONFIG, ~/.kube/config, in-cluster)",
  "      --daemon-port N            other nodes' daemons' health port, read-only API (default 9099)",
  "  -h, --help                     this help",
];

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parse(spec: CommandSpec, argv: string[]): Parsed {
  try {
    const r = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...spec.options }, allowPositionals: true, strict: true });
    return { values: r.values as Parsed["values"], positionals: r.positionals };
  } catch (err) {
    throw new CtlError(EXIT.USAGE, `${(err as Error).message.split("\n")[0]}\nsee: twillctl ${spec.name} --help`);
  }
}

export function helpText(spec: CommandSpec): string {
  return [`twillctl ${spec.name}${spec.args ? ` ${spec.args}` : ""}`, "", `  ${spec.summary}`, "", ...spec.help, ...(spec.help.length ? [""] : []), "Global options:", ...GLOBAL_HELP, ""].join("\n");
}

export function overview(specs: CommandSpec[]): string {
  const w = Math.max(...specs.map((s) => s.name.length));
  return [
    "twillctl: the Twill node daemon's view of the node and the cluster (also `kubectl twill`)",
    "",
    "Commands:",
    ...specs.map((s) => `  ${s.name.padEnd(w)}   ${s.summary}`),
    "",
    "Global options:",
    ...GLOBAL_HELP,
    "",
    "twillctl COMMAND --help shows a command's options. Exit codes: 0 ok, 1 findings (deny, drift, leaks, not ready),",
    "2 usage, 3 daemon unreachable, 4 daemon error, 5 apiserver, 6 not found, 7 forbidden (docs/twillctl.md).",
    "",
  ].join("\n");
}
