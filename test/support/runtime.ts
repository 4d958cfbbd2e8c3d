import { runCni, type CniRun } from "./cni.ts";

// What a container runtime does with a conflist (spec "Network configuration
// lists"): ADD runs the plugins in order, each getting the previous result as
// prevResult and its runtimeConfig from the capabilities it declares; CHECK
// runs them in order with the final result; DEL runs them in reverse.

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

export interface Attachment {
  nodeNs: string;
  containerId: string;
  netns: string;
  ifname: string;
  /** Values for capabilities, e.g. { portMappings: [...], bandwidth: {...} }. */
  capabilityArgs?: Record<string, unknown>;
}

function pluginConf(list: Conflist, plugin: Record<string, unknown>, att: Attachment, prevResult: unknown): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  delete conf.capabilities;
  const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, on] of Object.entries(caps)) {
    if (on && att.capabilityArgs?.[cap] !== undefined) runtimeConfig[cap] = att.capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}

function call(att: Attachment, command: string, bin: string, stdin: object): Promise<CniRun> {
  return runCni(att.nodeNs, { command, containerId: att.containerId, netns: att.netns, ifname: att.ifname, stdin, bin });
}

export function pluginBin(type: string): string {
  return type === "twill" || type === "twill-ipam" ? `${import.meta.dirname}/../../dist/cni/${type}` : `/usr/lib/cni/${type}`;
}

export async function chainAdd(list: Conflist, att: Attachment): Promise<{ result: any; runs: CniRun[] }> {
  let prev: unknown;
  const runs: CniRun[] = [];
  for (const plugin of list.plugins) {
    const r = await call(att, "ADD", pluginBin(String(plugin.type)), pluginConf(list, plugin, att, prev));
    runs.push(r);
    if (r.code !== 0) throw new Error(`${String(plugin.type)} ADD failed: ${r.stdout} ${r.stderr}`);
    prev = r.json;
  }
  return { result: prev, runs };
}

export async function chainCheck(list: Conflist, att: Attachment, result: unknown): Promise<CniRun[]> {
  const runs: CniRun[] = [];
  for (const plugin of list.plugins) {
    runs.push(await call(att, "CHECK", pluginBin(String(plugin.type)), pluginConf(list, plugin, att, result)));
  }
  return runs;
}

export async function chainDel(list: Conflist, att: Attachment, result: unknown): Promise<CniRun[]> {
  const runs: CniRun[] = [];
  for (const plugin of [...list.plugins].reverse()) {
    runs.push(await call(att, "DEL", pluginBin(String(plugin.type)), pluginConf(list, plugin, att, result)));
  }
  return runs;
}
