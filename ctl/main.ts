// twillctl (and kubectl-twill, the same executable under kubectl's plugin
// name): the operator's view of Twill, from the node daemons' API
// (lib/ctl-api.ts). Built self-contained like the CNI plugin (scripts/build.sh).
import { basename } from "node:path";
import { EXIT } from "../lib/ctl-api.ts";
import pkg from "../package.json" with { type: "json" };
import { parseArgs } from "node:util";
import { GLOBAL_OPTIONS, helpText, overview, parse } from "./args.ts";
import { COMMANDS, type Command } from "./commands.ts";
import { CtlError } from "./errors.ts";
import { writeOut, type Format } from "./output.ts";

/** The command named by the first words of argv (two-word commands first), and the rest. */
function find(argv: string[]): { cmd: Command | undefined; rest: string[]; words: string[] } {
  // Positionals as parseArgs sees them with every command's options: an option's value is no command word.
  const options = Object.assign({}, GLOBAL_OPTIONS, ...COMMANDS.map((c) => c.options)) as typeof GLOBAL_OPTIONS;
  const words = parseArgs({ args: argv, options, strict: false, allowPositionals: true }).positionals.slice(0, 2);
  for (const n of [2, 1]) {
    const name = words.slice(0, n).join(" ");
    const cmd = COMMANDS.find((c) => c.name === name);
    if (cmd) {
      const rest = [...argv];
      for (const w of name.split(" ")) rest.splice(rest.indexOf(w), 1);
      return { cmd, rest, words };
    }
  }
  return { cmd: undefined, rest: argv, words };
}

async function main(argv: string[]): Promise<number> {
  const self = basename(process.execPath) === "kubectl-twill" ? "kubectl twill" : "twillctl";
  if (argv[0] === "--version" || argv[0] === "version") {
    writeOut(`${self} ${pkg.version}\n`);
    return EXIT.OK;
  }
  const { cmd, rest, words } = find(argv);
  if (!cmd) {
    const wanted = words.join(" ");
    if (wanted && wanted !== "help") throw new CtlError(EXIT.USAGE, `unknown command: ${wanted} (twillctl --help lists them)`);
    writeOut(overview(COMMANDS));
    return argv.length === 0 || argv.includes("--help") || argv.includes("-h") || wanted === "help" ? EXIT.OK : EXIT.USAGE;
  }
  const p = parse(cmd, rest);
  if (p.values.help) {
    writeOut(helpText(cmd));
    return EXIT.OK;
  }
  const format = p.values.output as Format;
  if (!["table", "json", "yaml"].includes(format)) throw new CtlError(EXIT.USAGE, `-o ${format}: use table, json or yaml`);
  return cmd.run(p, format);
}

// Output is written synchronously (output.ts writeOut), so exiting at once loses none of it.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = err as CtlError;
    process.stderr.write(`twillctl: ${e.message}\n`);
    process.exit(e.exit ?? EXIT.DAEMON_ERROR);
  },
);
