import { exec } from "../../../lib/kernel/exec.ts";

/** The MAC of an existing VXLAN device, so a restarted daemon keeps it. */
export async function currentVtepMac(dev: string): Promise<string | undefined> {
  const r = await exec(["ip", "-j", "link", "show", "dev", dev], { allowFailure: true });
  if (r.code !== 0) return undefined;
  const links = JSON.parse(r.stdout) as { address?: string }[];
  return links[0]?.address;
}
