import type { FsmAction, TimerName } from "./fsm.ts";

// Real or fake time for the FSM's timers: the speaker passes the system
// clock, unit tests a clock they advance by hand.

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  private t = 0;
  private seq = 0;
  private pending = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}

const EXPIRY = {
  connectRetry: "ConnectRetryTimerExpires",
  hold: "HoldTimerExpires",
  keepalive: "KeepaliveTimerExpires",
  idleHold: "AutomaticStart",
} as const satisfies Record<TimerName, string>;

/** Runs the FSM's timer actions on a clock; an expiry becomes the matching FSM event. */
export class FsmTimers {
  private handles = new Map<TimerName, unknown>();
  private readonly clock: Clock;
  private readonly fire: (event: (typeof EXPIRY)[TimerName]) => void;

  constructor(clock: Clock, fire: (event: (typeof EXPIRY)[TimerName]) => void) {
    this.clock = clock;
    this.fire = fire;
  }

  apply(action: Extract<FsmAction, { do: "timer" }>): void {
    const old = this.handles.get(action.timer);
    if (old !== undefined) this.clock.clearTimeout(old);
    this.handles.delete(action.timer);
    if (action.seconds > 0) {
      const name = action.timer;
      this.handles.set(name, this.clock.setTimeout(() => {
        this.handles.delete(name);
        this.fire(EXPIRY[name]);
      }, action.seconds * 1000));
    }
  }

  stopAll(): void {
    for (const h of this.handles.values()) this.clock.clearTimeout(h);
    this.handles.clear();
  }
}
