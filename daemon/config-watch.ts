import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Logger } from "../lib/log.ts";
import type { DaemonEvents } from "./cluster/events.ts";
import { parseConfig, type DaemonConfig } from "./config.ts";

// The config file at run time. The DaemonSet mounts the twill-config
// ConfigMap as a directory, which the kubelet updates in place (an atomic
// symlink swap) about a minute after `kubectl apply`; so the daemon reads the
// file again every few seconds. A change that does not parse, or parses to an
// invalid configuration, changes nothing: the daemon keeps running on the
// configuration it started with, touches nothing, and says so (log line with
// its code, twill_config_valid 0, a Warning Event on the node). A valid change
// is reported as waiting for a restart: backends, CIDRs and tables are set up
// at start, and a restart never disturbs the dataplane (docs/daemon.md).

export type ConfigState = "running" | "invalid" | "restart-needed";

export interface ConfigWatchOptions {
  path: string;
  running: DaemonConfig;
  pollSeconds: number;
  log: Logger;
  registry: Registry;
  events: Pick<DaemonEvents, "record">;
  /** Checks beyond parsing that start-up also makes (a known backend name). */
  validate?: (cfg: DaemonConfig) => void;
}

export class ConfigWatch {
  private readonly o: ConfigWatchOptions;
  private lastText: string | undefined;
  private state: ConfigState = "running";
  private timer: NodeJS.Timeout | undefined;
  private readonly valid: Gauge;
  private readonly restartNeeded: Gauge;
  private readonly rejected: Counter;

  constructor(o: ConfigWatchOptions) {
    this.o = o;
    this.valid = new Gauge({ name: "twill_config_valid", help: "1 when the config file on disk is valid; 0 while it is invalid and the daemon runs on its last good configuration", registers: [o.registry] });
    this.restartNeeded = new Gauge({ name: "twill_config_restart_needed", help: "1 when the config file holds a valid configuration that differs from the running one (applied at the next daemon restart)", registers: [o.registry] });
    this.rejected = new Counter({ name: "twill_config_rejected_total", help: "Changes of the config file rejected as invalid (the last good configuration kept)", registers: [o.registry] });
    this.valid.set(1);
    this.restartNeeded.set(0);
  }

  start(): void {
    try {
      this.lastText = readFileSync(this.o.path, "utf8");
    } catch {
      this.lastText = undefined;
    }
    this.timer = setInterval(() => this.check(), this.o.pollSeconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Reads the file once; acts only when its text changed since the last read. */
  check(): ConfigState {
    let text: string;
    try {
      text = readFileSync(this.o.path, "utf8");
    } catch (err) {
      text = `\0unreadable: ${String(err)}`;
    }
    if (text === this.lastText) return this.state;
    this.lastText = text;
    const { log, events, path } = this.o;
    let next: DaemonConfig;
    try {
      if (text.startsWith("\0")) throw Object.assign(new Error(`cannot read ${path}`), { code: "CONFIG_INVALID", details: text.slice(1) });
      next = parseConfig(text, path);
      this.o.validate?.(next);
    } catch (err) {
      const e = err as { code?: string; message: string; details?: string };
      const code = e.code ?? "CONFIG_INVALID";
      this.state = "invalid";
      this.valid.set(0);
      this.rejected.inc();
      log.error({ code, details: e.details, path }, `${e.message}; the change was rejected and the daemon keeps running on its last good configuration (nothing on the node changed): fix the twill-config ConfigMap`);
      events.record("Warning", "TwillConfigInvalid", `${code}: ${e.message}; keeping the last good configuration`);
      return this.state;
    }
    const wasInvalid = this.state === "invalid";
    this.valid.set(1);
    if (isDeepStrictEqual(next, this.o.running)) {
      this.state = "running";
      this.restartNeeded.set(0);
      if (wasInvalid) log.info({ path }, "the config file is valid again and matches the running configuration");
    } else {
      this.state = "restart-needed";
      this.restartNeeded.set(1);
      log.warn({ code: "CONFIG_RESTART_NEEDED", path }, "the config file holds a new valid configuration; it applies when the daemon restarts (kubectl -n twill-system rollout restart daemonset/twill), which leaves the dataplane in place");
      events.record("Normal", "TwillConfigChanged", "a new valid configuration waits for a daemon restart");
    }
    return this.state;
  }
}
