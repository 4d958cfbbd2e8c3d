import { detach } from "../attach/veth.ts";
import { ipamFor, type Invocation } from "./context.ts";
import { notifyDel } from "./notify.ts";

// DEL is idempotent: an unknown container, a vanished namespace or a second
// DEL all succeed. Both steps run even if the first fails, so a DEL retried
// by the runtime finishes what the first one could not.
export async function cmdDel(inv: Invocation): Promise<void> {
  const { env, log } = inv;
  let firstError: unknown;
  try {
    await detach(env.containerId, env.ifname);
  } catch (err) {
    firstError = err;
  }
  try {
    await ipamFor(inv).del();
  } catch (err) {
    firstError ??= err;
  }
  await notifyDel(inv, firstError);
  if (firstError) throw firstError;
  log.info({ cmd: "DEL", containerId: env.containerId }, "pod detached");
}
