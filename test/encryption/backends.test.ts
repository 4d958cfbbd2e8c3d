import { describe, expect, it } from "vitest";
import { startLab } from "../../lab/lab.ts";
import type { Backend } from "../../lab/lab.ts";
import { daemonConfig } from "../../lab/daemons.ts";
import { execIn } from "../../lib/kernel/netns.ts";
import { eventually, routesOf, unreachablePairs } from "../daemon/helpers.ts";
import { captureUnderlay, notWireguard } from "./capture.ts";
import { killDaemon, restartDaemon, sendMarker } from "./helpers.ts";

// `encryption: wireguard` on top of each backend (vxlan has its own file,
// wireguard.test.ts): two nodes, the pods reach each other, the underlay
// between the nodes carries only WireGuard's UDP (and with bgp the speakers'
// TCP sessions on 179, which are the nodes' own and carry no pod traffic),
// and a marker sent pod → pod never appears in it. Then the same lab with
// encryption turned off: the device and the fail-closed table go, and the
// marker is seen in the clear, which shows the capture would catch it.

describe.each<Backend>(["host-gw", "bgp"])("wireguard over %s", (backend) => {
  it("encrypts pod ↔ pod on the underlay; with encryption off the same marker is seen in the clear", async () => {
    const lab = await startLab({ nodes: 2, podsPerNode: 1, backend, encryption: "wireguard" });
    try {
      const [a, b] = lab.state.pods;
      const [n1, n2] = lab.state.nodes;
      expect(await unreachablePairs(lab.state.pods)).toEqual([]);
      expect(await routesOf(n1!.ns)).toContain(`${n2!.podCIDR} dev twill.wg`);
      const cap = await captureUnderlay(lab.state.name);
      const marker = `TWILL-MARKER-${backend}-${Date.now()}`;
      expect(await sendMarker(a!, b!, 7401, marker)).toBe(marker);
      const enc = await cap.stop();
      expect(enc.lines.length).toBeGreaterThan(0);
      expect(notWireguard(enc.lines, 51820, backend === "bgp")).toEqual([]);
      expect(enc.raw.includes(marker)).toBe(false);

      const plain = daemonConfig({ backend });
      for (const n of [n1!, n2!]) {
        await killDaemon(n);
        restartDaemon(lab, n, plain);
      }
      for (const n of [n1!, n2!]) {
        await eventually(async () => (await execIn(n.ns, ["ip", "link", "show", "twill.wg"], { allowFailure: true })).code !== 0, `${n.name} to remove twill.wg`);
        await eventually(async () => (await execIn(n.ns, ["nft", "list", "table", "inet", "twill-wg"], { allowFailure: true })).code !== 0, `${n.name} to remove its fail-closed table`);
      }
      await eventually(async () => (await unreachablePairs(lab.state.pods)).length === 0, "pods reachable unencrypted");
      const cap2 = await captureUnderlay(lab.state.name);
      expect(await sendMarker(a!, b!, 7402, marker)).toBe(marker);
      const clear = await cap2.stop();
      expect(clear.raw.includes(marker)).toBe(true);
    } finally {
      await lab.close();
    }
  }, 180_000);
});
