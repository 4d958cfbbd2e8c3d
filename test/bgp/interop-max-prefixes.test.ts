import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBird, type PeerDaemon } from "./support/daemons.ts";
import { createLan, waitFor, type Lan } from "./support/lan.ts";
import { TwillProc } from "./support/twill.ts";

// A real peer (BIRD 2) announcing more prefixes than Twill's limit for it:
// a warning near the limit, then NOTIFICATION Cease / Maximum Number of
// Prefixes Reached (RFC 4486) with the limit in its data, the peer's routes
// withdrawn, and no session until the backoff has passed (doubling when the
// peer trips again). Twill at 10.77.0.1 (AS 64512), BIRD at 10.77.0.2 (AS 65002).

const T = "10.77.0.1";
const P = "10.77.0.2";
const LIMIT = 10;
const RESTART_S = 3;
const prefix = (i: number) => `10.98.${i}.0/24`;

describe("interop: a peer past its maximum prefix count", () => {
  let lan: Lan;
  let bird: PeerDaemon;
  let twill: TwillProc;
  let wire: ChildProcess;
  let decoded = "";

  beforeAll(async () => {
    lan = await createLan(2);
    try {
      // tcpdump decodes the NOTIFICATIONs on the wire, data field included.
      wire = spawn("ip", ["netns", "exec", lan.ns(2), "tcpdump", "-i", "eth0", "-n", "-l", "-v", "tcp port 179"], { stdio: ["ignore", "pipe", "ignore"] });
      wire.stdout!.setEncoding("utf8").on("data", (d: string) => (decoded += d));
      bird = await startBird({ ns: lan.ns(2), dir: lan.dir, asn: 65002, routerId: P, twill: { address: T, asn: 64512 }, holdTime: 9, announce: [1, 2, 3, 4, 5, 6].map(prefix) });
      twill = new TwillProc(lan.ns(1), lan.dir, "twill", {
        asn: 64512, routerId: T, listen: { host: "0.0.0.0", port: 179 }, holdTime: 9, connectRetryTime: 1, idleHoldTime: 1,
        peers: [{ address: P, asn: 65002, maxPrefixes: { limit: LIMIT, warningPercent: 50, restartSeconds: RESTART_S } }],
      });
      await twill.ready();
    } catch (err) {
      await lan.close();
      throw err;
    }
  });

  afterAll(async () => {
    wire?.kill("SIGKILL");
    await twill?.kill();
    await bird?.stop();
    await lan?.close();
  });

  const peerEvents = () => twill.events.filter((e) => e.event === "peer" && e.peer === P) as { state: string; detail: string; at: number }[];

  it("at half the limit: a warning, and the session stays up with all six routes", async () => {
    await waitFor("Twill learns six prefixes", async () => ((await twill.routes()).length === 6 ? true : undefined));
    await waitFor("the warning", () => (twill.stderr.includes("BGP_MAX_PREFIXES_WARNING") ? true : undefined));
    expect(twill.established(P)).toBe(true);
    expect(twill.stderr).not.toContain('"code":"BGP_MAX_PREFIXES"');
  });

  it("past the limit: Cease / Maximum Number of Prefixes Reached with the limit as data, and every route of the peer withdrawn", async () => {
    for (let i = 7; i <= 12; i++) await bird.announce(prefix(i));
    await waitFor("the session closed by Twill", () => (peerEvents().some((e) => e.state === "down" && e.detail === "sent NOTIFICATION 6/1") ? true : undefined));
    await waitFor("the peer's routes gone", async () => ((await twill.routes()).length === 0 ? true : undefined));
    await waitFor("the NOTIFICATION on the wire", () => (/Cease.*Maximum Number of Prefixes/is.test(decoded) ? true : undefined));
    expect(decoded).toMatch(/AFI IPv4 \(1\), SAFI Unicast \(1\), Max Prefixes: 10/);
    expect(twill.stderr).toContain('"code":"BGP_MAX_PREFIXES"');
  });

  it("no session during the backoff; after it the peer comes back, trips again, and the next backoff is twice as long", async () => {
    const firstDown = peerEvents().find((e) => e.state === "down")!;
    // BIRD retries every second or two meanwhile; Twill takes none of it before the backoff ends.
    await waitFor("the session back after the backoff", () => (peerEvents().some((e) => e.state === "established" && e.at > firstDown.at) ? true : undefined), 30_000);
    const back = peerEvents().find((e) => e.state === "established" && e.at > firstDown.at)!;
    // The down event is stamped just after the backoff starts (the NOTIFICATION goes out in between): a few ms of slack.
    expect(back.at - firstDown.at).toBeGreaterThanOrEqual(RESTART_S * 1000 - 250);
    await waitFor("the second trip", () => (peerEvents().filter((e) => e.state === "down").length >= 2 ? true : undefined));
    expect(twill.stderr).toMatch(new RegExp(`"restartSeconds":${RESTART_S * 2}`));
  });

  it("once the peer is within its limit again, the session comes up after the backoff and stays up", async () => {
    for (let i = 9; i <= 12; i++) await bird.withdraw(prefix(i));
    await waitFor("eight routes learned", async () => (twill.established(P) && (await twill.routes()).length === 8 ? true : undefined), 30_000);
    const downs = peerEvents().filter((e) => e.state === "down").length;
    await new Promise((r) => setTimeout(r, 2000));
    expect(peerEvents().filter((e) => e.state === "down").length).toBe(downs);
    expect(twill.established(P)).toBe(true);
  });
});

describe("interop: a peer without a limit of its own past the node-wide limit", () => {
  let lan: Lan;
  let bird: PeerDaemon;
  let twill: TwillProc;

  beforeAll(async () => {
    lan = await createLan(2);
    try {
      bird = await startBird({ ns: lan.ns(2), dir: lan.dir, asn: 65002, routerId: P, twill: { address: T, asn: 64512 }, holdTime: 9, announce: Array.from({ length: 12 }, (_, i) => prefix(i + 1)) });
      // The bgp backend sets maxPrefixesTotal from the heap limit (memory-guard.ts); here it is small.
      twill = new TwillProc(lan.ns(1), lan.dir, "twill", {
        asn: 64512, routerId: T, listen: { host: "0.0.0.0", port: 179 }, holdTime: 9, connectRetryTime: 1, idleHoldTime: 1, maxPrefixesTotal: 8,
        peers: [{ address: P, asn: 65002 }],
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
    await lan?.close();
  });

  it("the session is closed with Cease 6/1 naming the node's limit, and nothing of the peer stays", async () => {
    await waitFor("the session closed by Twill", () => (twill.events.some((e) => e.event === "peer" && e.state === "down" && e.detail === "sent NOTIFICATION 6/1") ? true : undefined));
    expect(twill.stderr).toContain('"code":"BGP_MAX_PREFIXES_NODE"');
    expect(twill.stderr).toMatch(/past 8 learned prefixes/);
    await waitFor("the peer's routes gone", async () => ((await twill.routes()).length === 0 ? true : undefined));
  });
});
