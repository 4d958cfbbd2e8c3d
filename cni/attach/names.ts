import { sha256Hex } from "../../lib/hash.ts";
import { HOST_VETH_PREFIX } from "../../lib/kernel/protocols.ts";

// Host-side names and MACs are derived from the attachment (container ID +
// interface), so a retried ADD, a DEL or a GC finds them without any record.

export { HOST_VETH_PREFIX } from "../../lib/kernel/protocols.ts";
export const ALIAS_PREFIX = "twill:";

function digest(containerId: string, ifname: string): Buffer {
  return Buffer.from(sha256Hex(`${containerId}/${ifname}`), "hex");
}

export function hostVethName(containerId: string, ifname: string): string {
  return HOST_VETH_PREFIX + digest(containerId, ifname).toString("hex").slice(0, 11);
}

/** Locally administered unicast MACs for the two ends of the pair. */
export function vethMacs(containerId: string, ifname: string): { host: string; pod: string } {
  const d = digest(containerId, ifname);
  const mac = (first: number, off: number) =>
    [first, ...d.subarray(off, off + 5)].map((b) => b.toString(16).padStart(2, "0")).join(":");
  return { host: mac(0xee, 11), pod: mac(0x0a, 16) };
}

export interface AttachmentId {
  network: string;
  containerId: string;
  ifname: string;
}

// The host veth's alias records the attachment, so GC can match it against the
// runtime's valid attachments of that network. "/" appears in none of the
// three parts (the spec forbids it in each).
export function attachmentAlias(a: AttachmentId): string {
  return `${ALIAS_PREFIX}${a.network}/${a.containerId}/${a.ifname}`;
}

export function parseAttachmentAlias(alias: string): AttachmentId | undefined {
  if (!alias.startsWith(ALIAS_PREFIX)) return undefined;
  const parts = alias.slice(ALIAS_PREFIX.length).split("/");
  if (parts.length !== 3 || parts.some((p) => !p)) return undefined;
  const [network, containerId, ifname] = parts as [string, string, string];
  return { network, containerId, ifname };
}
