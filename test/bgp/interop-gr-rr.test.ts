import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SpeakerConfig } from "../../daemon/bgp/speaker/config.ts";
import { startBird, startGobgp, type PeerDaemon } from "./support/daemons.ts";
import { createLan, waitFor, type Lan } from "./support/lan.ts";
import { TwillProc } from "./support/twill.ts";

// Graceful restart (RFC 4724) in both roles and route reflection (RFC 4456)
// through BIRD, in throwaway namespaces.

describe("interop: graceful restart with BIRD 2 (RFC 4724)", () => {
  let lan: Lan;
  let bird: PeerDaemon;
  let twill: TwillProc;
  const T = "10.77.0.1";
  const B = "10.77.0.2";
  const birdOpts = () => ({ ns: lan.ns(2), dir: lan.dir, asn: 65002, routerId: B, twill: { address: T, asn: 64512 }, holdTime: 30, announce: ["10.99.1.0/24"] });
  const twillCfg = (restarting: boolean): SpeakerConfig & { announce: string[] } => ({
    asn: 64512, routerId: T, listen: { host: "0.0.0.0", port: 179 }, holdTime: 30, connectRetryTime: 2, idleHoldTime: 1,
    gracefulRestart: { restartTime: 120, restarting }, peers: [{ address: B, asn: 65002 }], announce: ["10.244.1.0/24"],
  });

  beforeAll(async () => {
    lan = await createLan(2);
    try {
      bird = await startBird(birdOpts());
      twill = new TwillProc(lan.ns(1), lan.dir, "twill", twillCfg(false));
      await twill.ready();
      await waitFor("BIRD learns Twill's prefix", async () => ((await bird.learned()).has("10.244.1.0/24") ? true : undefined));
      await waitFor("Twill learns BIRD's prefix", () => twill.route("10.99.1.0/24"));
    } catch (err) {
      await lan.close();
      throw err;
    }
  });
  afterAll(async () => {
    await twill?.kill();
    await bird?.stop();
    await lan?.close();
  });

  it("Twill killed and restarted: BIRD keeps Twill's route throughout, the session comes back", async () => {
    await twill.kill("SIGKILL");
    // The session is down at BIRD, yet the route stays (stale).
    await waitFor("BIRD sees the session down", async () => (!(await bird.established()) ? true : undefined));
    expect((await bird.learned()).get("10.244.1.0/24")).toBe(T);
    twill = new TwillProc(lan.ns(1), lan.dir, "twill2", twillCfg(true));
    await twill.ready();
    await waitFor("BIRD established again", async () => ((await bird.established()) ? true : undefined));
    await waitFor("Twill learns BIRD's prefix again", () => twill.route("10.99.1.0/24"));
    expect((await bird.learned()).get("10.244.1.0/24")).toBe(T);
  });

  it("BIRD restarts gracefully: Twill keeps BIRD's route as stale, then fresh once BIRD is back", async () => {
    await bird.gracefulStop!();
    const stale = await waitFor("Twill marks BIRD's route stale", async () => {
      const r = await twill.route("10.99.1.0/24");
      return r?.stale ? r : undefined;
    });
    expect(stale.nextHop).toBe(B);
    bird = await startBird(birdOpts());
    await waitFor("fresh again after End-of-RIB", async () => ((await twill.route("10.99.1.0/24"))?.stale === false ? true : undefined));
  });

  it("BIRD stops for good (no graceful restart): Twill withdraws its routes", async () => {
    await bird.stop();
    await waitFor("Twill drops BIRD's route", async () => ((await twill.route("10.99.1.0/24")) ? undefined : true));
  });
});

describe("interop: BIRD 2 as route reflector for three Twill nodes (RFC 4456)", () => {
  let lan: Lan;
  let rr: PeerDaemon;
  const twills: TwillProc[] = [];
  const RR = "10.77.0.4";

  beforeAll(async () => {
    lan = await createLan(4);
    try {
      rr = await startBird({ ns: lan.ns(4), dir: lan.dir, asn: 64512, routerId: RR, twill: { address: lan.addr(1), asn: 64512 }, holdTime: 30, announce: [], clients: [lan.addr(2), lan.addr(3)] });
      for (const i of [1, 2, 3]) {
        const t = new TwillProc(lan.ns(i), lan.dir, `twill${i}`, {
          asn: 64512, routerId: lan.addr(i), listen: { host: "0.0.0.0", port: 179 }, holdTime: 30, connectRetryTime: 2, idleHoldTime: 1,
          peers: [{ address: RR, asn: 64512 }], announce: [`10.244.${i}.0/24`],
        });
        twills.push(t);
        await t.ready();
      }
    } catch (err) {
      await lan.close();
      throw err;
    }
  });
  afterAll(async () => {
    for (const t of twills) await t.kill();
    await rr?.stop();
    await lan?.close();
  });

  it("each node learns the other nodes' pod CIDRs through the reflector, next hop = the announcing node", async () => {
    for (const [i, t] of twills.entries()) {
      for (const j of [1, 2, 3]) {
        if (j === i + 1) continue;
        const r = await waitFor(`node ${i + 1} learns 10.244.${j}.0/24`, () => t.route(`10.244.${j}.0/24`));
        expect([r.nextHop, r.peer]).toEqual([lan.addr(j), RR]);
      }
    }
  });

  it("a withdrawal at one node is reflected to the others", async () => {
    for (const t of twills.slice(1)) await waitFor("present first", () => t.route("10.244.1.0/24"));
    twills[0]!.send({ cmd: "withdraw", prefix: "10.244.1.0/24" });
    for (const t of twills.slice(1)) await waitFor("withdrawn everywhere", async () => ((await t.route("10.244.1.0/24")) ? undefined : true));
  });
});

describe("interop: Twill as route reflector for BIRD 2 and GoBGP clients (RFC 4456)", () => {
  let lan: Lan;
  let bird: PeerDaemon;
  let gobgp: PeerDaemon;
  let twill: TwillProc;
  const RR = "10.77.0.1";

  beforeAll(async () => {
    lan = await createLan(3);
    try {
      const common = { dir: lan.dir, asn: 64512, twill: { address: RR, asn: 64512 }, holdTime: 30 };
      bird = await startBird({ ...common, ns: lan.ns(2), routerId: lan.addr(2), announce: ["10.99.2.0/24"] });
      gobgp = await startGobgp({ ...common, ns: lan.ns(3), routerId: lan.addr(3), announce: ["10.99.3.0/24"] });
      twill = new TwillProc(lan.ns(1), lan.dir, "rr", {
        asn: 64512, routerId: RR, clusterId: RR, listen: { host: "0.0.0.0", port: 179 }, holdTime: 30, connectRetryTime: 2, idleHoldTime: 1,
        peers: [{ address: lan.addr(2), asn: 64512, rrClient: true }, { address: lan.addr(3), asn: 64512, rrClient: true }], announce: [],
      });
      await twill.ready();
    } catch (err) {
      await lan.close();
      throw err;
    }
  });
  afterAll(async () => {
    await twill?.kill();
    await bird?.stop();
    await gobgp?.stop();
    await lan?.close();
  });

  it("each client learns the other's prefix through Twill with the original next hop", async () => {
    const atGobgp = await waitFor("GoBGP learns BIRD's prefix", async () => (await gobgp.learned()).get("10.99.2.0/24"));
    expect(atGobgp).toBe(lan.addr(2));
    const atBird = await waitFor("BIRD learns GoBGP's prefix", async () => (await bird.learned()).get("10.99.3.0/24"));
    expect(atBird).toBe(lan.addr(3));
  });

  it("a client's withdrawal is reflected", async () => {
    await gobgp.withdraw("10.99.3.0/24");
    await waitFor("BIRD drops it", async () => ((await bird.learned()).has("10.99.3.0/24") ? undefined : true));
  });
});
