import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SpeakerConfig } from "../../daemon/bgp/speaker/config.ts";
import { startBird, type PeerDaemon } from "./support/daemons.ts";
import { createLan, waitFor, type Lan } from "./support/lan.ts";
import { TwillProc } from "./support/twill.ts";

// TCP MD5 (RFC 2385) with BIRD 2: Twill's listener gets the key through the
// Bun-compiled `twill md5sig` (dist/cni/twill, built by npm test), so the
// session is passive on Twill's side and BIRD connects.

const HELPER = resolve(import.meta.dirname, "../../dist/cni/twill");
const T = "10.77.0.1";
const B = "10.77.0.2";

describe.skipIf(!existsSync(HELPER))("interop: TCP MD5 with BIRD 2 (RFC 2385)", () => {
  let lan: Lan;
  const birds: PeerDaemon[] = [];
  const twills: TwillProc[] = [];
  const twillCfg = (password: string): SpeakerConfig & { announce: string[] } => ({
    asn: 64512, routerId: T, listen: { host: "0.0.0.0", port: 179 }, holdTime: 30, connectRetryTime: 1, idleHoldTime: 1,
    md5Helper: HELPER, peers: [{ address: B, asn: 65002, password }], announce: ["10.244.1.0/24"],
  });
  const bird = (password: string) => startBird({ ns: lan.ns(2), dir: join(lan.dir, password), asn: 65002, routerId: B, twill: { address: T, asn: 64512 }, holdTime: 30, announce: ["10.99.1.0/24"], password });

  beforeAll(async () => {
    lan = await createLan(2);
  });
  afterAll(async () => {
    for (const t of twills) await t.kill();
    for (const b of birds) await b.stop();
    await lan?.close();
  });

  it("with the same key on both sides the session comes up and routes flow both ways", async () => {
    const twill = new TwillProc(lan.ns(1), lan.dir, "twill-md5", twillCfg("s3cret-key"));
    twills.push(twill);
    await twill.ready();
    const b = await bird("s3cret-key");
    birds.push(b);
    await waitFor("BIRD established with MD5", async () => ((await b.established()) ? true : undefined));
    await waitFor("Twill learns BIRD's prefix", () => twill.route("10.99.1.0/24"));
    await waitFor("BIRD learns Twill's prefix", async () => ((await b.learned()).has("10.244.1.0/24") ? true : undefined));
    await b.stop();
    await twill.kill();
  });

  it("with a different key the kernel drops BIRD's segments: no session", async () => {
    const twill = new TwillProc(lan.ns(1), lan.dir, "twill-md5-2", twillCfg("s3cret-key"));
    twills.push(twill);
    await twill.ready();
    const b = await bird("another-key");
    birds.push(b);
    // BIRD retries every 2 s; 8 s without a session is several refused attempts.
    await new Promise((r) => setTimeout(r, 8000));
    expect(await b.established()).toBe(false);
    expect(twill.established(B)).toBe(false);
  });
});
