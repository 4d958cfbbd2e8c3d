import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execIn } from "../../lib/kernel/netns.ts";
import { startBird, startFrr, startGobgp, type PeerDaemon } from "./support/daemons.ts";
import { createLan, waitFor, type Lan } from "./support/lan.ts";
import { TwillProc } from "./support/twill.ts";

// Twill's speaker against the real BGP daemons from Debian, eBGP over a veth
// LAN in throwaway namespaces: Twill (AS 64512) at 10.77.0.1, the daemon at 10.77.0.2.

const HOLD = 6;
const daemons = { "BIRD 2": startBird, GoBGP: startGobgp, FRR: startFrr } as const;

for (const [name, start] of Object.entries(daemons)) {
  describe(`interop: Twill ↔ ${name}`, () => {
    let lan: Lan;
    let peer: PeerDaemon;
    let twill: TwillProc;
    const T = "10.77.0.1";
    const P = "10.77.0.2";

    beforeAll(async () => {
      lan = await createLan(2);
      try {
        peer = await start({ ns: lan.ns(2), dir: lan.dir, asn: 65002, routerId: P, twill: { address: T, asn: 64512 }, holdTime: HOLD, announce: ["10.99.1.0/24", "10.99.2.0/24"] });
        twill = new TwillProc(lan.ns(1), lan.dir, "twill", {
          asn: 64512, routerId: T, listen: { host: "0.0.0.0", port: 179 }, holdTime: HOLD, connectRetryTime: 2, idleHoldTime: 1,
          peers: [{ address: P, asn: 65002 }], announce: ["10.244.1.0/24"],
        });
        await twill.ready();
      } catch (err) {
        await lan.close();
        throw err;
      }
    });

    afterAll(async () => {
      await twill?.kill();
      await peer?.stop();
      await lan?.close();
    });

    it("the session establishes, seen from both sides", async () => {
      await waitFor("Twill established", () => (twill.established(P) ? true : undefined));
      await waitFor(`${name} established`, async () => ((await peer.established()) ? true : undefined));
    });

    it(`Twill's prefix is in ${name}'s table with Twill as next hop, and ${name}'s prefixes in Twill's RIB`, async () => {
      const learned = await waitFor(`${name} learns 10.244.1.0/24`, async () => ((await peer.learned()).has("10.244.1.0/24") ? peer.learned() : undefined));
      expect(learned.get("10.244.1.0/24")).toBe(T);
      for (const p of ["10.99.1.0/24", "10.99.2.0/24"]) {
        const r = await waitFor(`Twill learns ${p}`, () => twill.route(p));
        expect([r.nextHop, r.peer]).toEqual([P, P]);
      }
    });

    it("announcements and withdrawals made later propagate both ways", async () => {
      twill.send({ cmd: "announce", prefix: "10.244.7.0/24" });
      await waitFor(`${name} learns 10.244.7.0/24`, async () => ((await peer.learned()).has("10.244.7.0/24") ? true : undefined));
      twill.send({ cmd: "withdraw", prefix: "10.244.7.0/24" });
      await waitFor(`${name} drops 10.244.7.0/24`, async () => (!(await peer.learned()).has("10.244.7.0/24") ? true : undefined));
      await peer.announce("10.99.3.0/24");
      await waitFor("Twill learns 10.99.3.0/24", () => twill.route("10.99.3.0/24"));
      await peer.withdraw("10.99.1.0/24");
      await waitFor("Twill drops 10.99.1.0/24", async () => ((await twill.route("10.99.1.0/24")) ? undefined : true));
      expect(await twill.route("10.99.2.0/24")).toBeDefined();
    });

    it("a silent peer: Twill's hold timer expires, the routes go, and the session comes back when the link does", async () => {
      // The link goes down inside the daemon's namespace: TCP stays open but nothing arrives.
      await execIn(lan.ns(2), ["ip", "link", "set", "eth0", "down"]);
      try {
        await waitFor("hold timer expiry", () => (twill.events.some((e) => e.event === "peer" && e.state === "down" && e.detail === "hold timer expired") ? true : undefined), (HOLD + 10) * 1000);
        await waitFor("Twill drops the peer's routes", async () => ((await twill.route("10.99.2.0/24")) ? undefined : true));
      } finally {
        await execIn(lan.ns(2), ["ip", "link", "set", "eth0", "up"]);
      }
      await waitFor("re-established", async () => (twill.established(P) && (await twill.route("10.99.2.0/24")) ? true : undefined));
    });
  });
}
