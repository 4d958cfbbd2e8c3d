import net from "node:net";
import type { Logger } from "../../../lib/log.ts";
import { decodeMessage } from "../codec/decode.ts";
import { encodeMessage } from "../codec/encode.ts";
import type { Notification, Open } from "../codec/types.ts";
import { Fsm, type FsmAction, type FsmConfig, type FsmEvent } from "../fsm/fsm.ts";
import { FsmTimers, type Clock } from "../fsm/timers.ts";

// One TCP connection and the FSM that runs it: framing, decoding, and turning
// FSM actions into socket writes and timers. Whatever the peer sends, the
// worst outcome is this connection's reset.

export interface SessionHooks {
  /** The peer's OPEN, before the FSM sees it: "dump" when collision detection drops this connection. */
  onOpen(s: Session, open: Open): "continue" | "dump";
  onEstablished(s: Session, peer: Open, holdTime: number): void;
  onUpdate(s: Session, body: Uint8Array): void;
  onRouteRefresh(s: Session, afi: number, safi: number): void;
  /** The session left Established; `closedOnly` when the transport just went away (graceful restart applies). */
  onDown(s: Session, reason: string, closedOnly: boolean): void;
  /** The connection is gone and the FSM back in Idle. */
  onIdle(s: Session): void;
}

export interface Target {
  host: string;
  port: number;
  localAddress: string | undefined;
}

export class Session {
  readonly direction: "outgoing" | "incoming";
  readonly fsm: Fsm;
  private readonly timers: FsmTimers;
  private readonly hooks: SessionHooks;
  private readonly target: Target;
  private readonly log: Logger;
  private socket: net.Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private lastEvent: FsmEvent["type"] | undefined;
  /** Bytes received and messages handled, for the logs and tests. */
  stats = { messagesIn: 0, messagesOut: 0 };

  constructor(direction: "outgoing" | "incoming", cfg: FsmConfig, target: Target, clock: Clock, hooks: SessionHooks, log: Logger) {
    this.direction = direction;
    this.fsm = new Fsm(cfg);
    this.target = target;
    this.hooks = hooks;
    this.log = log;
    this.timers = new FsmTimers(clock, (type) => this.feed({ type }));
  }

  get state() {
    return this.fsm.state;
  }

  get localAddress(): string | undefined {
    return this.socket?.localAddress?.replace(/^::ffff:/, "");
  }

  start(): void {
    this.feed({ type: "ManualStart" });
  }

  /** Takes over an accepted connection. */
  adopt(sock: net.Socket): void {
    this.feed({ type: "ManualStart" });
    this.attach(sock);
    this.feed({ type: "TcpConnectionConfirmed" });
  }

  stop(): void {
    this.feed({ type: "ManualStop" });
  }

  /** Ends this connection for good (collision loser, peer removed). */
  dispose(): void {
    this.feed({ type: "ManualStop" });
    this.timers.stopAll();
  }

  collisionDump(): void {
    this.feed({ type: "OpenCollisionDump" });
  }

  /** Closes the session with `error` and stays Idle (RFC 4271 AutomaticStop): whoever owns it restarts it. */
  automaticStop(error: Notification): void {
    this.feed({ type: "AutomaticStop", error });
  }

  /** The UPDATE codec said session reset. */
  updateError(error: Notification): void {
    this.feed({ type: "UpdateMsgErr", error });
  }

  /** Writes pre-encoded messages (UPDATEs) on an established session. */
  write(messages: Uint8Array[]): void {
    const s = this.socket;
    if (!s || this.fsm.state !== "Established") return;
    s.cork();
    for (const m of messages) s.write(m);
    s.uncork();
    this.stats.messagesOut += messages.length;
  }

  private feed(ev: FsmEvent): void {
    const was = this.fsm.state;
    this.lastEvent = ev.type;
    let actions: FsmAction[];
    try {
      actions = this.fsm.handle(ev);
    } catch (err) {
      // The FSM is pure and total; this is a bug, and it must not take the process down.
      this.log.error({ err, event: ev.type }, "BGP FSM failed; resetting the connection");
      this.socket?.destroy();
      return;
    }
    for (const a of actions) this.apply(a);
    if (was !== this.fsm.state) {
      this.log.debug({ from: was, to: this.fsm.state, event: ev.type }, "BGP state");
      if (this.fsm.state === "Idle") this.hooks.onIdle(this);
    }
  }

  private apply(a: FsmAction): void {
    switch (a.do) {
      case "timer":
        this.timers.apply(a);
        return;
      case "connect":
        this.connect();
        return;
      case "drop": {
        const s = this.socket;
        this.socket = undefined;
        this.buf = Buffer.alloc(0);
        if (s) {
          // end() lets a NOTIFICATION written just before reach the peer.
          s.end();
          setTimeout(() => s.destroy(), 1000).unref();
        }
        return;
      }
      case "send":
        if (this.socket && !this.socket.destroyed) {
          this.socket.write(encodeMessage(a.message));
          this.stats.messagesOut++;
        }
        if (a.message.type === "notification") this.log.info({ code: a.message.code, subcode: a.message.subcode }, "BGP NOTIFICATION sent");
        return;
      case "established":
        this.hooks.onEstablished(this, a.peer, a.holdTime);
        return;
      case "down":
        this.hooks.onDown(this, a.reason, this.lastEvent === "TcpConnectionFails");
        return;
    }
  }

  private connect(): void {
    this.socket?.destroy();
    const sock = net.connect({ host: this.target.host, port: this.target.port, ...(this.target.localAddress ? { localAddress: this.target.localAddress } : {}) });
    this.attach(sock);
    sock.once("connect", () => {
      if (this.socket === sock) this.feed({ type: "TcpCRAcked" });
    });
  }

  private attach(sock: net.Socket): void {
    this.socket = sock;
    sock.setNoDelay(true);
    sock.on("data", (d: Buffer) => {
      if (this.socket !== sock) return;
      try {
        this.receive(d);
      } catch (err) {
        this.log.error({ err }, "BGP receive failed; resetting the connection");
        this.feed({ type: "TcpConnectionFails" });
      }
    });
    const gone = () => {
      if (this.socket === sock) {
        this.socket = undefined;
        this.feed({ type: "TcpConnectionFails" });
      }
    };
    sock.on("error", (err) => {
      this.log.debug({ err: err.message }, "BGP connection error");
      gone();
    });
    sock.on("close", gone);
  }

  private receive(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let o = 0;
    const start = this.socket;
    while (this.socket === start && this.socket) {
      const r = decodeMessage(this.buf.subarray(o));
      if (r.ok === "incomplete") break;
      if (r.ok === false) {
        this.log.info({ code: r.error.code, subcode: r.error.subcode }, "BGP malformed message");
        this.feed({ type: "MsgErr", error: r.error });
        return;
      }
      o += r.length;
      this.stats.messagesIn++;
      const m = r.message;
      switch (m.type) {
        case "open":
          if (this.fsm.state === "OpenSent" && this.hooks.onOpen(this, m) === "dump") this.feed({ type: "OpenCollisionDump" });
          else this.feed({ type: "BGPOpen", open: m });
          break;
        case "keepalive":
          this.feed({ type: "KeepAliveMsg" });
          break;
        case "notification":
          this.log.info({ code: m.code, subcode: m.subcode }, "BGP NOTIFICATION received");
          this.feed({ type: "NotifMsg", notification: m });
          break;
        case "update":
          this.feed({ type: "UpdateMsg" });
          if (this.fsm.state === "Established") this.hooks.onUpdate(this, m.body);
          break;
        case "route-refresh":
          if (this.fsm.state === "Established") this.hooks.onRouteRefresh(this, m.afi, m.safi);
          break;
      }
    }
    if (this.socket === start) this.buf = o === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(o);
  }
}
