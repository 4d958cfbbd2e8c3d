import { attach } from "../attach/veth.ts";
import { POD_GATEWAY_V4, POD_GATEWAY_V6 } from "../config.ts";
import type { Result } from "../spec.ts";
import { podIdentity } from "../env.ts";
import { notifyAdd } from "./notify.ts";
import { bareIp, ipamFor, podMtu, readNodeFileQuietly, requireNetns, type Invocation } from "./context.ts";

export async function cmdAdd(inv: Invocation): Promise<Result> {
  const { env, conf, log } = inv;
  requireNetns(env.netns);
  const t0 = performance.now();
  const ipam = ipamFor(inv);
  const lease = await ipam.add();
  const t1 = performance.now();
  const ips = lease.ips.map((ip) => bareIp(ip.address));
  const node = readNodeFileQuietly(conf.nodeFile);
  const mtu = podMtu(conf, node);
  let veth;
  try {
    veth = await attach({
      network: conf.name,
      containerId: env.containerId,
      ifname: env.ifname,
      netns: env.netns,
      mtu,
      ips,
      routes: lease.routes.map((r) => ({ dst: r.dst, ...(r.gw ? { gw: r.gw } : {}) })),
      defaultRoute: conf.defaultRoute,
      ...(node?.gso ? { gso: node.gso } : {}),
    });
  } catch (err) {
    // Nothing of a failed ADD may stay allocated.
    await ipam.del().catch((e: unknown) => log.error({ err: e }, "releasing the address after a failed ADD failed"));
    throw err;
  }
  const tAttached = performance.now();
  // Before ADD returns: kubelet may report the pod Ready right after, and a Ready pod must be able to talk.
  // Only the pod's first attachment speaks for it: the daemon keeps one set of addresses per pod (the ones
  // kubelet will report), and a secondary network's must not replace them.
  const handshake = veth.primary ? await notifyAdd(inv, ips) : undefined;
  if (veth.globalIpv6Forwarding) {
    log.warn({ cmd: "ADD", containerId: env.containerId }, "this kernel has no per-device IPv6 force_forwarding (Linux 6.17+): net.ipv6.conf.all.forwarding was turned on for the pod's IPv6 path");
  }
  // processMs: since this process started (performance's time origin) until the result goes back, so a
  // runtime's share of pod start-up shows; daemonMs: of it, the wait for the daemon's "programmed".
  const t2 = performance.now();
  const pod = podIdentity(env.args);
  log.info(
    {
      cmd: "ADD",
      containerId: env.containerId,
      ...(pod ? { pod: `${pod.namespace}/${pod.name}` } : {}),
      ips,
      ifname: env.ifname,
      hostIf: veth.hostIfname,
      ipamMs: +(t1 - t0).toFixed(2),
      kernelMs: +(tAttached - t1).toFixed(2),
      ...(handshake ? { daemonMs: handshake.waitedMs, policyProgrammed: handshake.programmed } : {}),
      processMs: +t2.toFixed(2),
    },
    "pod attached",
  );
  const gw = (ip: string) => (ip.includes(":") ? POD_GATEWAY_V6 : POD_GATEWAY_V4);
  return {
    interfaces: [
      { name: veth.hostIfname, mac: veth.hostMac },
      { name: env.ifname, mac: veth.podMac, mtu, sandbox: env.netns },
    ],
    ips: ips.map((ip) => ({ address: `${ip}/${ip.includes(":") ? 128 : 32}`, gateway: gw(ip), interface: 1 })),
    routes: veth.routes,
    dns: lease.dns,
  };
}
