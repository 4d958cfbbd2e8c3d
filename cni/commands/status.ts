import { ipamFor, type Invocation } from "./context.ts";
import { requireVersion } from "./versions.ts";

/** STATUS (spec 1.1): ready to serve ADD once the node's pod CIDR is known and free addresses remain. */
export async function cmdStatus(inv: Invocation): Promise<void> {
  requireVersion(inv.conf.cniVersion, "1.1.0", "STATUS");
  await ipamFor(inv).status();
}
