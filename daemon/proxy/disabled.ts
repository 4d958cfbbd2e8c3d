import { exec } from "../../lib/kernel/exec.ts";
import type { Logger } from "../../lib/log.ts";
import { PROXY_TABLE } from "./compile.ts";

// serviceProxy switched off (kube-proxy back in charge): a table left by an
// earlier run with it on would still DNAT ahead of kube-proxy's rules, so the
// daemon removes it at start. Twill's own table only; nothing else is touched.

export async function removeProxyTable(log: Logger): Promise<void> {
  const r = await exec(["nft", "delete", "table", "inet", PROXY_TABLE], { allowFailure: true });
  if (r.code === 0) log.info({ table: `inet ${PROXY_TABLE}` }, "serviceProxy is off: removed the service proxy table an earlier run left");
}
