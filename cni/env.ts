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

/** The pod a runtime's CNI_ARGS name (containerd and CRI-O pass these; the spec leaves CNI_ARGS to conventions). */
export interface PodIdentity {
  namespace: string;
  name: string;
  uid: string;
}

/**
 * CNI_ARGS is "K1=V1;K2=V2" (spec §"Parameters", conventions doc). Keys other
 * than the three K8S_POD_* ones are ignored, as is IgnoreUnknown: Twill reads
 * no argument it could reject. Undefined when the pod is not fully named (a
 * runtime other than Kubernetes', or a hand-run ADD): no handshake then.
 */
export function podIdentity(args: string): PodIdentity | undefined {
  const kv = new Map<string, string>();
  for (const pair of args.split(";")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    kv.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  const namespace = kv.get("K8S_POD_NAMESPACE");
  const name = kv.get("K8S_POD_NAME");
  const uid = kv.get("K8S_POD_UID");
  return namespace && name && uid ? { namespace, name, uid } : undefined;
}
