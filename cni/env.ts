import { CniError, ErrorCode } from "./spec.ts";

export type Command = "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";
const COMMANDS: readonly Command[] = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"];

export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string[];
}

// Spec §"Parameters": container IDs are alphanumeric plus _ . -, interface
// names follow the kernel's rules (at most 15 bytes, no / : or whitespace).
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME_BAD = /[/:\s]/;

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironment, msg);
}

export function readCommand(env: NodeJS.ProcessEnv): Command {
  const c = env.CNI_COMMAND ?? "";
  if (!(COMMANDS as readonly string[]).includes(c)) {
    throw invalid(`CNI_COMMAND is "${c}"; expected one of ${COMMANDS.join(", ")}`);
  }
  return c as Command;
}

export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = readCommand(env);
  const containerId = env.CNI_CONTAINERID ?? "";
  const netns = env.CNI_NETNS ?? "";
  const ifname = env.CNI_IFNAME ?? "";
  const perContainer = command === "ADD" || command === "DEL" || command === "CHECK";
  if (perContainer) {
    if (!containerId) throw invalid("CNI_CONTAINERID is required");
    if (!CONTAINER_ID.test(containerId)) throw invalid(`CNI_CONTAINERID "${containerId}" may hold only letters, digits, _ . -`);
    if (!ifname) throw invalid("CNI_IFNAME is required");
    if (ifname.length > 15 || ifname === "." || ifname === ".." || IFNAME_BAD.test(ifname)) {
      throw invalid(`CNI_IFNAME "${ifname}" is not a valid interface name (at most 15 characters, no / : or spaces)`);
    }
  }
  if ((command === "ADD" || command === "CHECK") && !netns) throw invalid("CNI_NETNS is required");
  const path = (env.CNI_PATH ?? "").split(":").filter(Boolean);
  return { command, containerId, netns, ifname, args: env.CNI_ARGS ?? "", path };
}
