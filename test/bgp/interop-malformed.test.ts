import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeMessage } from "../../daemon/bgp/codec/encode.ts";
import type { Notification, Open } from "../../daemon/bgp/codec/types.ts";
import { createLan, waitFor, type Lan } from "./support/lan.ts";
import { RawPeer } from "./support/raw-peer.ts";
import { TwillProc } from "./support/twill.ts";

// The malformed-message matrix (RFC 4271 §6, RFC 7606) against a running Twill
// speaker: a raw peer at 10.77.0.2 (AS 65002) sends exact bytes and the test
// reads Twill's reaction off the wire, and its RIB for treat-as-withdraw.

const T = "10.77.0.1";
const P = "10.77.0.2";
const PEER_AS = 65002;

const be16 = (v: number) => [(v >> 8) & 0xff, v & 0xff];
const be32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const frame = (type: number, body: number[], length = 19 + body.length) => Uint8Array.from([...new Array(16).fill(0xff), ...be16(length), type, ...body]);
const attr = (flags: number, code: number, value: number[]) => [flags, code, value.length, ...value];
const update = (attrs: number[], nlri: number[], withdrawn: number[] = []) => frame(2, [...be16(withdrawn.length), ...withdrawn, ...be16(attrs.length), ...attrs, ...nlri]);

const open = (o: Partial<Open> = {}): Open => ({ type: "open", version: 4, myAs: PEER_AS, holdTime: 90, bgpId: 0x0a4d0002, capabilities: [{ code: 1, afi: 1, safi: 1 }, { code: 65, asn: PEER_AS }], ...o });
const ORIGIN = attr(0x40, 1, [0]);
const AS_PATH = attr(0x40, 2, [2, 1, ...be32(PEER_AS)]);
const NEXT_HOP = attr(0x40, 3, [10, 77, 0, 2]);
const nlri = (third: number) => [24, 10, 99, third];
const prefix = (third: number) => `10.99.${third}.0/24`;

describe("interop: malformed messages from a raw peer get the RFC's reaction on the wire", () => {
  let lan: Lan;
  let twill: TwillProc;
  const peers: RawPeer[] = [];

  beforeAll(async () => {
    lan = await createLan(2);
    try {
      twill = new TwillProc(lan.ns(1), lan.dir, "twill", { asn: 64512, routerId: T, listen: { host: "0.0.0.0", port: 179 }, peers: [{ address: P, asn: PEER_AS, passive: true }] });
      await twill.ready();
    } catch (err) {
      await lan.close();
      throw err;
    }
  });
  afterEach(async () => {
    for (const p of peers.splice(0)) await p.close();
  });
  afterAll(async () => {
    await twill?.kill();
    await lan?.close();
  });

  /** A connection that has received Twill's OPEN. */
  async function connect(): Promise<RawPeer> {
    const p = new RawPeer(lan.ns(2), T);
    peers.push(p);
    await p.nth("open");
    return p;
  }

  /** A connection with the session Established. */
  async function established(): Promise<RawPeer> {
    const p = await connect();
    p.send(encodeMessage(open()), encodeMessage({ type: "keepalive" }));
    await p.nth("keepalive");
    await waitFor("Twill established", () => (twill.established(P) ? true : undefined));
    return p;
  }

  async function expectNotification(p: RawPeer, code: number, subcode: number, data?: number[]) {
    const n = (await p.nth("notification")) as Notification;
    expect({ code: n.code, subcode: n.subcode, ...(data ? { data: [...n.data] } : {}) }).toEqual({ code, subcode, ...(data ? { data } : {}) });
    await waitFor("Twill closes the connection", () => (p.closed ? true : undefined));
  }

  const headerCases: [string, Uint8Array, number, number, number[]][] = [
    ["a marker not all ones: 1/1 Connection Not Synchronized", (() => { const b = encodeMessage({ type: "keepalive" }); b[5] = 0; return b; })(), 1, 1, []],
    ["a length below 19: 1/2 Bad Message Length, data = the length", frame(4, [], 18), 1, 2, [0, 18]],
    ["a KEEPALIVE of 20 octets: 1/2 Bad Message Length", frame(4, [0]), 1, 2, [0, 20]],
    ["an unknown type: 1/3 Bad Message Type, data = the type", frame(9, []), 1, 3, [9]],
    ["an OPEN of version 3: 2/1 Unsupported Version Number, data = 4", encodeMessage({ ...open(), version: 3 }), 2, 1, [0, 4]],
    ["an OPEN from the wrong AS: 2/2 Bad Peer AS", encodeMessage(open({ myAs: 65099, capabilities: [{ code: 65, asn: 65099 }] })), 2, 2, []],
    ["an OPEN with hold time 1: 2/6 Unacceptable Hold Time", encodeMessage(open({ holdTime: 1 })), 2, 6, []],
    ["an OPEN with hold time 2: 2/6 Unacceptable Hold Time", encodeMessage(open({ holdTime: 2 })), 2, 6, []],
    ["an OPEN with BGP Identifier 0: 2/3 Bad BGP Identifier", encodeMessage(open({ bgpId: 0 })), 2, 3, []],
  ];
  for (const [what, bytes, code, subcode, data] of headerCases) {
    it(what, async () => {
      const p = await connect();
      p.send(bytes);
      await expectNotification(p, code, subcode, data);
    });
  }

  const resetCases: [string, Uint8Array, number, number[] | undefined][] = [
    ["an UPDATE whose Total Attribute Length overruns the message: 3/1 Malformed Attribute List", Uint8Array.from([...frame(2, [0, 0, 0, 40, ...ORIGIN])]), 1, []],
    ["an UPDATE with MP_UNREACH_NLRI twice: 3/1 Malformed Attribute List", update([...attr(0x80, 15, [0, 1, 1]), ...attr(0x80, 15, [0, 1, 1])], []), 1, []],
    ["an UPDATE with an unrecognized well-known attribute: 3/2, data = the attribute", update([...ORIGIN, ...AS_PATH, ...NEXT_HOP, ...attr(0x40, 77, [1, 2])], nlri(1)), 2, attr(0x40, 77, [1, 2])],
    ["an UPDATE with a prefix length of 33: 3/10 Invalid Network Field", update([...ORIGIN, ...AS_PATH, ...NEXT_HOP], [33, 10, 99, 1, 0, 0]), 10, []],
    ["an UPDATE whose MP_REACH_NLRI next hop length is wrong: 3/9 Optional Attribute Error", update([...ORIGIN, ...AS_PATH, ...attr(0x80, 14, [0, 1, 1, 3, 10, 77, 0, 0, 24, 10, 99, 1])], []), 9, undefined],
  ];
  for (const [what, bytes, subcode, data] of resetCases) {
    it(what, async () => {
      const p = await established();
      p.send(bytes);
      await expectNotification(p, 3, subcode, data);
    });
  }

  const withdrawCases: [string, number[]][] = [
    ["ORIGIN sent as optional (attribute flags error)", [...attr(0xc0, 1, [0]), ...AS_PATH, ...NEXT_HOP]],
    ["ORIGIN with an undefined value", [...attr(0x40, 1, [5]), ...AS_PATH, ...NEXT_HOP]],
    ["an attribute whose length overruns the attribute list", [...ORIGIN, ...AS_PATH, 0x40, 3, 9, 10, 77, 0, 2]],
    ["an AS_PATH segment overrunning the attribute", [...ORIGIN, ...attr(0x40, 2, [2, 2, ...be32(PEER_AS)]), ...NEXT_HOP]],
    ["an AS_PATH whose leftmost AS is not the peer's", [...ORIGIN, ...attr(0x40, 2, [2, 1, ...be32(65077)]), ...NEXT_HOP]],
    ["a NEXT_HOP of 5 octets", [...ORIGIN, ...AS_PATH, ...attr(0x40, 3, [10, 77, 0, 2, 0])]],
    ["a NEXT_HOP of 0.0.0.0", [...ORIGIN, ...AS_PATH, ...attr(0x40, 3, [0, 0, 0, 0])]],
    ["a missing NEXT_HOP", [...ORIGIN, ...AS_PATH]],
    ["a MED of 3 octets", [...ORIGIN, ...AS_PATH, ...NEXT_HOP, ...attr(0x80, 4, [0, 0, 1])]],
  ];
  it("treat-as-withdraw (RFC 7606): the prefix leaves Twill's RIB, no NOTIFICATION, the session stays up", async () => {
    const p = await established();
    let third = 10;
    for (const [what, attrs] of withdrawCases) {
      third++;
      p.send(update([...ORIGIN, ...AS_PATH, ...NEXT_HOP], nlri(third)));
      await waitFor(`Twill learns ${prefix(third)}`, () => twill.route(prefix(third)));
      p.send(update(attrs, nlri(third)));
      await waitFor(`${what}: ${prefix(third)} withdrawn`, async () => ((await twill.route(prefix(third))) ? undefined : true));
      expect(p.notifications(), what).toEqual([]);
    }
    expect([p.closed, twill.established(P)]).toEqual([false, true]);
  });

  it("a repeated attribute keeps the first and the UPDATE stands; a discarded ATOMIC_AGGREGATE does not cost the route", async () => {
    const p = await established();
    p.send(update([...ORIGIN, ...AS_PATH, ...NEXT_HOP, ...attr(0x40, 1, [2])], nlri(50)));
    await waitFor("Twill learns 10.99.50.0/24", () => twill.route(prefix(50)));
    p.send(update([...ORIGIN, ...AS_PATH, ...NEXT_HOP, ...attr(0x40, 6, [1])], nlri(51)));
    await waitFor("Twill learns 10.99.51.0/24", () => twill.route(prefix(51)));
    expect(p.notifications()).toEqual([]);
  });

  it("a session reset drops what the peer announced", async () => {
    const p = await established();
    p.send(update([...ORIGIN, ...AS_PATH, ...NEXT_HOP], nlri(60)));
    await waitFor("Twill learns 10.99.60.0/24", () => twill.route(prefix(60)));
    p.send(frame(9, []));
    await expectNotification(p, 1, 3, [9]);
    await waitFor("10.99.60.0/24 gone", async () => ((await twill.route(prefix(60))) ? undefined : true));
  });

  it("after all of it Twill still runs", () => {
    expect(twill.child.exitCode).toBeNull();
  });
});
