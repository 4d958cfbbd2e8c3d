import { describe, expect, it } from "vitest";
import { EventRecorder, type EventSink } from "../../daemon/cluster/events.ts";
import { createLogger } from "../../lib/log.ts";
import { until } from "../support/until.ts";

// The recorder's bookkeeping against a sink whose timing the test controls
// (test/observe runs it against the real apiserver): what must hold however
// slow the apiserver is.

const log = createLogger({ name: "obs-events", level: "silent" });
const target = { kind: "Node" as const, apiVersion: "v1", name: "n1" };

function slowSink(createMs: number) {
  const calls: string[] = [];
  const sink: EventSink = {
    create: async (_ns, e) => {
      await new Promise((r) => setTimeout(r, createMs));
      calls.push(`create ${e.reason} ${e.count}`);
      return "created";
    },
    patch: async (_ns, _name, p) => {
      calls.push(`patch ${p.count}`);
    },
  };
  return { sink, calls };
}

describe("event recorder", () => {
  it("repeats that arrive while the first create is in flight are patched once it is done", async () => {
    const { sink, calls } = slowSink(300);
    const rec = new EventRecorder({ component: "t", host: "h", sink, log, limits: { patchEveryMs: 100 } });
    for (let i = 0; i < 3; i++) rec.warn(target, "Slow", "same");
    await until("the repeats patched", async () => calls.includes("patch 3"), 5000);
    expect(calls).toEqual(["create Slow 1", "patch 3"]);
    rec.stop();
  });

  it("emitting never waits for the sink, and what waits is capped", () => {
    // A sink that takes a minute: 200 emits return at once (synchronously).
    const { sink } = slowSink(60_000);
    const rec = new EventRecorder({ component: "t", host: "h", sink, log });
    for (let i = 0; i < 200; i++) rec.warn(target, "Many", `event ${i}`);
    // One in flight, the queue capped at 100 waiting.
    expect(rec.pending()).toBe(101);
    rec.stop();
  });
});
