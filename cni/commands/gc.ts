import { listHostVeths } from "../attach/inspect.ts";
import { removeHostVeth } from "../attach/veth.ts";
import { validAttachments } from "../ipam/local.ts";
import { ipamFor, type Invocation } from "./context.ts";
import { requireVersion } from "./versions.ts";

/**
 * GC (spec 1.1): remove every attachment of this network the runtime no
 * longer lists — host veths (matched by their alias) and addresses.
 */
export async function cmdGc(inv: Invocation): Promise<void> {
  const { conf, log } = inv;
  requireVersion(conf.cniVersion, "1.1.0", "GC");
  const valid = validAttachments(conf.raw);
  const removed: string[] = [];
  for (const veth of await listHostVeths()) {
    const a = veth.attachment;
    // A Twill veth without an alias is what an ADD killed between creating
    // the pair and labelling it leaves behind: no one owns it.
    if (a && (a.network !== conf.name || valid.has(`${a.containerId}/${a.ifname}`))) continue;
    await removeHostVeth(veth.ifname);
    removed.push(veth.ifname);
  }
  await ipamFor(inv).gc();
  log.info({ cmd: "GC", valid: valid.size, removedLinks: removed }, "garbage collected");
}
