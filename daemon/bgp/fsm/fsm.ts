import { Err, notification, OpenSub, peerAs, type Message, type Notification, type Open } from "../codec/types.ts";

// The RFC 4271 §8 finite state machine for one BGP connection, pure: events
// in, actions out. Sockets and real timers live in the speaker; timers here
// are only named and (re)started or stopped through actions.

export type State = "Idle" | "Connect" | "Active" | "OpenSent" | "OpenConfirm" | "Established";
export type TimerName = "connectRetry" | "hold" | "keepalive" | "idleHold";

export type FsmEvent =
  | { type: "ManualStart" }
  | { type: "ManualStop" }
  /**
   * RFC 4271 event 8: the local system stops the session by itself (here: the
   * peer sent more prefixes than its limit), with the NOTIFICATION to send. No
   * automatic restart follows: the peer decides when to start it again.
   */
  | { type: "AutomaticStop"; error: Notification }
  | { type: "AutomaticStart" }
  | { type: "ConnectRetryTimerExpires" }
  | { type: "HoldTimerExpires" }
  | { type: "KeepaliveTimerExpires" }
  /** Our outgoing connection completed (RFC event 16/17). */
  | { type: "TcpCRAcked" }
  /** An incoming connection was accepted for this peer (RFC event 17). */
  | { type: "TcpConnectionConfirmed" }
  | { type: "TcpConnectionFails" }
  | { type: "BGPOpen"; open: Open }
  /** A header or OPEN error found by the codec (RFC events 21, 22), with the NOTIFICATION to send. */
  | { type: "MsgErr"; error: Notification }
  | { type: "NotifMsg"; notification: Notification }
  | { type: "KeepAliveMsg" }
  | { type: "UpdateMsg" }
  /** An UPDATE the codec graded as session reset (RFC event 28). */
  | { type: "UpdateMsgErr"; error: Notification }
  /** This connection lost collision detection (RFC 4271 §6.8, event 23). */
  | { type: "OpenCollisionDump" };

export type FsmAction =
  | { do: "connect" }
  | { do: "drop" }
  | { do: "send"; message: Message }
  /** Start (or restart) a timer; seconds 0 stops it. */
  | { do: "timer"; timer: TimerName; seconds: number }
  | { do: "established"; peer: Open; holdTime: number }
  /** The session left Established: its routes go (or turn stale under graceful restart). */
  | { do: "down"; reason: string };

export interface FsmConfig {
  localAs: number;
  /** The AS the peer must announce; undefined accepts any (then eBGP/iBGP follows from what it sends). */
  peerAs: number | undefined;
  bgpId: number;
  /** Our proposed hold time: 0 or at least 3 seconds. */
  holdTime: number;
  connectRetryTime: number;
  /** Delay before an automatic restart after a failure (RFC 4271 §8.1.1 IdleHoldTimer). */
  idleHoldTime: number;
  /** Only wait for the peer to connect (RFC 4271 §8.1.1 PassiveTcpEstablishment). */
  passive: boolean;
  /** The OPEN we send. */
  open: Open;
}

/** Hold time before the peer's OPEN arrives (RFC 4271 §8.2.2 suggests 4 minutes). */
export const LARGE_HOLD_TIME = 240;

/** RFC 6608 subcodes of Finite State Machine Error: unexpected message in each state. */
const FSM_SUB: Partial<Record<State, number>> = { OpenSent: 1, OpenConfirm: 2, Established: 3 };
const CEASE_ADMIN_SHUTDOWN = 2;
export const CEASE_COLLISION = 7;

/** RFC 4271 §6.8: which connection survives a collision: the one started by the higher BGP Identifier. */
export function collisionKeeps(localId: number, remoteId: number): "outgoing" | "incoming" {
  return localId > remoteId ? "outgoing" : "incoming";
}

export class Fsm {
  state: State = "Idle";
  connectRetryCounter = 0;
  /** Negotiated in OpenSent: min of both proposals (RFC 4271 §4.2). */
  holdTime = 0;
  peerOpen: Open | undefined;
  readonly cfg: FsmConfig;

  constructor(cfg: FsmConfig) {
    this.cfg = cfg;
  }

  handle(ev: FsmEvent): FsmAction[] {
    const a: FsmAction[] = [];
    const s = this.state;
    if (ev.type === "ManualStop") {
      if (s === "OpenSent" || s === "OpenConfirm" || s === "Established") a.push(send(notification(Err.CEASE, CEASE_ADMIN_SHUTDOWN)));
      this.connectRetryCounter = 0;
      return this.toIdle(a, s, "stopped", false);
    }
    if (ev.type === "AutomaticStop") {
      if (s === "OpenSent" || s === "OpenConfirm" || s === "Established") a.push(send(ev.error));
      this.connectRetryCounter++;
      return this.toIdle(a, s, `sent NOTIFICATION ${ev.error.code}/${ev.error.subcode}`, false);
    }
    switch (s) {
      case "Idle":
        if (ev.type === "ManualStart" || ev.type === "AutomaticStart") {
          a.push({ do: "timer", timer: "idleHold", seconds: 0 }, { do: "timer", timer: "connectRetry", seconds: this.cfg.connectRetryTime });
          if (this.cfg.passive) this.state = "Active";
          else {
            this.state = "Connect";
            a.push({ do: "connect" });
          }
        }
        // RFC 4271 §8.2.2: Idle refuses every other event.
        return a;
      case "Connect":
      case "Active":
        switch (ev.type) {
          case "ConnectRetryTimerExpires":
            a.push({ do: "drop" }, { do: "timer", timer: "connectRetry", seconds: this.cfg.connectRetryTime });
            if (this.cfg.passive) return a;
            this.state = "Connect";
            a.push({ do: "connect" });
            return a;
          case "TcpCRAcked":
          case "TcpConnectionConfirmed":
            a.push({ do: "timer", timer: "connectRetry", seconds: 0 }, send(this.cfg.open), { do: "timer", timer: "hold", seconds: LARGE_HOLD_TIME });
            this.state = "OpenSent";
            return a;
          case "TcpConnectionFails":
            if (s === "Connect") {
              a.push({ do: "timer", timer: "connectRetry", seconds: this.cfg.connectRetryTime });
              this.state = "Active";
              return a;
            }
            return this.toIdle(a, s, "connection failed", true);
          default:
            return this.toIdle(a, s, `unexpected ${ev.type}`, true);
        }
      case "OpenSent":
        switch (ev.type) {
          case "BGPOpen":
            return this.onOpen(a, ev.open);
          case "TcpConnectionFails":
            a.push({ do: "drop" }, { do: "timer", timer: "hold", seconds: 0 }, { do: "timer", timer: "connectRetry", seconds: this.cfg.connectRetryTime });
            this.state = "Active";
            return a;
          default:
            return this.common(a, s, ev);
        }
      case "OpenConfirm":
        switch (ev.type) {
          case "KeepAliveMsg":
            if (this.holdTime > 0) a.push({ do: "timer", timer: "hold", seconds: this.holdTime });
            this.state = "Established";
            this.connectRetryCounter = 0;
            a.push({ do: "established", peer: this.peerOpen!, holdTime: this.holdTime });
            return a;
          default:
            return this.common(a, s, ev);
        }
      case "Established":
        switch (ev.type) {
          case "KeepAliveMsg":
          case "UpdateMsg":
            if (this.holdTime > 0) a.push({ do: "timer", timer: "hold", seconds: this.holdTime });
            return a;
          default:
            return this.common(a, s, ev);
        }
    }
  }

  /** Events handled alike in OpenSent, OpenConfirm and Established. */
  private common(a: FsmAction[], s: State, ev: FsmEvent): FsmAction[] {
    switch (ev.type) {
      case "HoldTimerExpires":
        a.push(send(notification(Err.HOLD_TIMER, 0)));
        return this.toIdle(a, s, "hold timer expired", true);
      case "KeepaliveTimerExpires":
        if (s === "OpenSent") return a;
        a.push(send({ type: "keepalive" }), { do: "timer", timer: "keepalive", seconds: Math.floor(this.holdTime / 3) });
        return a;
      case "MsgErr":
      case "UpdateMsgErr":
        a.push(send(ev.error));
        return this.toIdle(a, s, `sent NOTIFICATION ${ev.error.code}/${ev.error.subcode}`, true);
      case "NotifMsg":
        return this.toIdle(a, s, `received NOTIFICATION ${ev.notification.code}/${ev.notification.subcode}`, true);
      case "TcpConnectionFails":
        return this.toIdle(a, s, "connection closed", true);
      case "OpenCollisionDump":
        a.push(send(notification(Err.CEASE, CEASE_COLLISION)));
        return this.toIdle(a, s, "connection collision", true);
      default:
        // RFC 4271 §8.2.2 and RFC 6608: any other event is an FSM error.
        a.push(send(notification(Err.FSM, FSM_SUB[s] ?? 0)));
        return this.toIdle(a, s, `unexpected ${ev.type} in ${s}`, true);
    }
  }

  private onOpen(a: FsmAction[], open: Open): FsmAction[] {
    const reject = (sub: number, data?: Uint8Array) => {
      a.push(send(notification(Err.OPEN, sub, data)));
      return this.toIdle(a, "OpenSent", `refused OPEN (subcode ${sub})`, true);
    };
    const as = peerAs(open);
    if (this.cfg.peerAs !== undefined && as !== this.cfg.peerAs) return reject(OpenSub.BAD_PEER_AS);
    // The same identifier on both ends of an iBGP session would make loops undetectable (RFC 6286 §2.1).
    if (open.bgpId === this.cfg.bgpId && as === this.cfg.localAs) return reject(OpenSub.BAD_BGP_ID);
    this.peerOpen = open;
    this.holdTime = Math.min(this.cfg.holdTime, open.holdTime);
    a.push({ do: "timer", timer: "connectRetry", seconds: 0 }, send({ type: "keepalive" }));
    // RFC 4271 §4.4: hold time 0 means no KEEPALIVEs and no hold timer at all.
    a.push({ do: "timer", timer: "hold", seconds: this.holdTime });
    a.push({ do: "timer", timer: "keepalive", seconds: Math.floor(this.holdTime / 3) });
    this.state = "OpenConfirm";
    return a;
  }

  private toIdle(a: FsmAction[], from: State, reason: string, automaticRestart: boolean): FsmAction[] {
    if (from !== "Idle") a.push({ do: "drop" });
    for (const timer of ["connectRetry", "hold", "keepalive", "idleHold"] as const) a.push({ do: "timer", timer, seconds: 0 });
    if (from === "Established") a.push({ do: "down", reason });
    this.state = "Idle";
    this.holdTime = 0;
    // RFC 4271 §8.1.1: a session that failed comes back on its own after the IdleHoldTimer.
    if (automaticRestart) this.connectRetryCounter++;
    if (automaticRestart) a.push({ do: "timer", timer: "idleHold", seconds: this.cfg.idleHoldTime });
    return a;
  }
}

function send(message: Message): FsmAction {
  return { do: "send", message };
}
