import { describe, expect, it } from "vitest";
import { collisionKeeps, Fsm, LARGE_HOLD_TIME, type FsmAction, type FsmConfig, type FsmEvent } from "../../daemon/bgp/fsm/fsm.ts";
import { FsmTimers, ManualClock } from "../../daemon/bgp/fsm/timers.ts";
import type { Open } from "../../daemon/bgp/codec/types.ts";

const ourOpen: Open = { type: "open", version: 4, myAs: 64512, holdTime: 90, bgpId: 1, capabilities: [{ code: 65, asn: 64512 }] };
const peerOpen = (holdTime = 30, asn = 64512, bgpId = 2): Open => ({ type: "open", version: 4, myAs: asn, holdTime, bgpId, capabilities: [{ code: 65, asn }] });
const cfg: FsmConfig = { localAs: 64512, peerAs: 64512, bgpId: 1, holdTime: 90, connectRetryTime: 30, idleHoldTime: 5, passive: false, open: ourOpen };

/** An FSM on a manual clock, recording what it asks of the outside. */
function harness(c: Partial<FsmConfig> = {}) {
  const clock = new ManualClock();
  const fsm = new Fsm({ ...cfg, ...c });
  const log: FsmAction[] = [];
  const timers: FsmTimers = new FsmTimers(clock, (type) => feed({ type }));
  function feed(ev: FsmEvent): void {
    for (const a of fsm.handle(ev)) {
      if (a.do === "timer") timers.apply(a);
      else log.push(a);
    }
  }
  const sent = () => log.flatMap((a) => (a.do === "send" ? [a.message.type === "notification" ? `notification ${a.message.code}/${a.message.subcode}` : a.message.type] : []));
  const did = (what: string) => log.filter((a) => a.do === what).length;
  return { clock, fsm, feed, log, sent, did };
}

function established(h: ReturnType<typeof harness>, holdTime = 30) {
  h.feed({ type: "ManualStart" });
  h.feed({ type: "TcpCRAcked" });
  h.feed({ type: "BGPOpen", open: peerOpen(holdTime) });
  h.feed({ type: "KeepAliveMsg" });
  expect(h.fsm.state).toBe("Established");
}

describe("BGP FSM (RFC 4271 §8)", () => {
  it("Idle → Connect → OpenSent → OpenConfirm → Established, sending OPEN then KEEPALIVE", () => {
    const h = harness();
    h.feed({ type: "ManualStart" });
    expect([h.fsm.state, h.did("connect")]).toEqual(["Connect", 1]);
    h.feed({ type: "TcpCRAcked" });
    expect([h.fsm.state, h.sent()]).toEqual(["OpenSent", ["open"]]);
    h.feed({ type: "BGPOpen", open: peerOpen() });
    expect([h.fsm.state, h.sent()]).toEqual(["OpenConfirm", ["open", "keepalive"]]);
    h.feed({ type: "KeepAliveMsg" });
    expect(h.fsm.state).toBe("Established");
    expect(h.log.find((a) => a.do === "established")).toMatchObject({ holdTime: 30, peer: { bgpId: 2 } });
  });

  it("a passive peer waits in Active and starts from an incoming connection", () => {
    const h = harness({ passive: true });
    h.feed({ type: "ManualStart" });
    expect([h.fsm.state, h.did("connect")]).toEqual(["Active", 0]);
    h.feed({ type: "TcpConnectionConfirmed" });
    expect(h.fsm.state).toBe("OpenSent");
  });

  it("hold time is the smaller proposal; KEEPALIVEs go out every third of it; silence past it sends Hold Timer Expired", () => {
    const h = harness();
    established(h, 30);
    expect(h.fsm.holdTime).toBe(30);
    const before = h.sent().length;
    h.clock.advance(25_000);
    // 10 s and 20 s keepalives.
    expect(h.sent().slice(before)).toEqual(["keepalive", "keepalive"]);
    h.feed({ type: "UpdateMsg" }); // restarts the hold timer at t=25 s
    h.clock.advance(29_000);
    expect(h.fsm.state).toBe("Established");
    h.clock.advance(1_000);
    expect(h.fsm.state).toBe("Idle");
    expect(h.sent().at(-1)).toBe("notification 4/0");
    expect(h.log.at(-1)).toMatchObject({ do: "down", reason: "hold timer expired" });
  });

  it("hold time 0 on either side: no KEEPALIVEs and no hold timer (RFC 4271 §4.4)", () => {
    const h = harness();
    established(h, 0);
    const before = h.sent().length;
    h.clock.advance(3_600_000);
    expect([h.fsm.state, h.sent().length]).toEqual(["Established", before]);
  });

  it("OpenSent waits the large hold time for the peer's OPEN", () => {
    const h = harness();
    h.feed({ type: "ManualStart" });
    h.feed({ type: "TcpCRAcked" });
    h.clock.advance(LARGE_HOLD_TIME * 1000 - 1);
    expect(h.fsm.state).toBe("OpenSent");
    h.clock.advance(1);
    expect([h.fsm.state, h.sent().at(-1)]).toEqual(["Idle", "notification 4/0"]);
  });

  it("connect retry: a failed connect waits in Active, the timer tries again", () => {
    const h = harness();
    h.feed({ type: "ManualStart" });
    h.feed({ type: "TcpConnectionFails" });
    expect(h.fsm.state).toBe("Active");
    h.clock.advance(30_000);
    expect([h.fsm.state, h.did("connect")]).toEqual(["Connect", 2]);
  });

  it("a session that failed restarts on its own after the idle hold time", () => {
    const h = harness();
    established(h);
    h.feed({ type: "NotifMsg", notification: { type: "notification", code: 6, subcode: 4, data: new Uint8Array() } });
    expect([h.fsm.state, h.fsm.connectRetryCounter]).toEqual(["Idle", 1]);
    h.clock.advance(5_000);
    expect(h.fsm.state).toBe("Connect");
    h.feed({ type: "TcpCRAcked" });
    h.feed({ type: "BGPOpen", open: peerOpen() });
    h.feed({ type: "KeepAliveMsg" });
    // Established again: the failure count starts over.
    expect([h.fsm.state, h.fsm.connectRetryCounter]).toEqual(["Established", 0]);
  });

  it("ManualStop sends Cease / Administrative Shutdown and stays down", () => {
    const h = harness();
    established(h);
    h.feed({ type: "ManualStop" });
    expect([h.fsm.state, h.sent().at(-1)]).toEqual(["Idle", "notification 6/2"]);
    h.clock.advance(600_000);
    expect(h.fsm.state).toBe("Idle");
  });

  it("an OPEN from the wrong AS: Bad Peer AS; our own identifier on iBGP: Bad BGP Identifier", () => {
    const h = harness();
    h.feed({ type: "ManualStart" });
    h.feed({ type: "TcpCRAcked" });
    h.feed({ type: "BGPOpen", open: peerOpen(30, 65000) });
    expect([h.fsm.state, h.sent().at(-1)]).toEqual(["Idle", "notification 2/2"]);
    const g = harness();
    g.feed({ type: "ManualStart" });
    g.feed({ type: "TcpCRAcked" });
    g.feed({ type: "BGPOpen", open: peerOpen(30, 64512, 1) });
    expect(g.sent().at(-1)).toBe("notification 2/3");
  });

  it("an unexpected message is an FSM Error with the RFC 6608 subcode of the state", () => {
    const h = harness();
    h.feed({ type: "ManualStart" });
    h.feed({ type: "TcpCRAcked" });
    h.feed({ type: "KeepAliveMsg" });
    expect(h.sent().at(-1)).toBe("notification 5/1");
    const g = harness();
    established(g);
    g.feed({ type: "BGPOpen", open: peerOpen() });
    expect(g.sent().at(-1)).toBe("notification 5/3");
  });

  it("codec errors are sent as they are and reset the session", () => {
    const h = harness();
    established(h);
    h.feed({ type: "UpdateMsgErr", error: { type: "notification", code: 3, subcode: 1, data: new Uint8Array() } });
    expect([h.fsm.state, h.sent().at(-1), h.did("down"), h.did("drop")]).toEqual(["Idle", "notification 3/1", 1, 1]);
  });

  it("collision detection keeps the connection opened by the higher BGP Identifier (RFC 4271 §6.8)", () => {
    expect(collisionKeeps(0x0a000002, 0x0a000001)).toBe("outgoing");
    expect(collisionKeeps(0x0a000001, 0x0a000002)).toBe("incoming");
    // Identifiers compare as unsigned 32-bit numbers.
    expect(collisionKeeps(0xc0000001, 0x0a000001)).toBe("outgoing");
    const h = harness();
    h.feed({ type: "ManualStart" });
    h.feed({ type: "TcpCRAcked" });
    h.feed({ type: "BGPOpen", open: peerOpen() });
    h.feed({ type: "OpenCollisionDump" });
    expect([h.fsm.state, h.sent().at(-1)]).toEqual(["Idle", "notification 6/7"]);
  });
});
