import { appendFileSync, mkdirSync, writeSync } from "node:fs";
import { dirname } from "node:path";

// The plugin's structured logger: JSON lines to stderr or a file, written
// synchronously before the process exits. The daemon uses pino (lib/log.ts);
// here pino's load time alone (~9 ms) would be a quarter of an ADD, measured
// in the compiled binary, so the plugin writes its few lines itself.

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
type Level = keyof typeof LEVELS;

export interface CniLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

function serialise(v: unknown): unknown {
  return v instanceof Error ? { type: v.name, message: v.message } : v;
}

export function createCniLogger(name: string, level: string, file?: string): CniLogger {
  const threshold = LEVELS[level as Level] ?? LEVELS.info;
  if (file) mkdirSync(dirname(file), { recursive: true });
  const write = (lvl: Level, fields: Record<string, unknown>, msg: string) => {
    if (LEVELS[lvl] < threshold) return;
    const entry: Record<string, unknown> = { level: LEVELS[lvl], time: new Date().toISOString(), pid: process.pid, name };
    for (const [k, v] of Object.entries(fields)) entry[k] = serialise(v);
    entry.msg = msg;
    const line = JSON.stringify(entry) + "\n";
    if (file) appendFileSync(file, line);
    else writeSync(2, line);
  };
  return {
    debug: (f, m) => write("debug", f, m),
    info: (f, m) => write("info", f, m),
    warn: (f, m) => write("warn", f, m),
    error: (f, m) => write("error", f, m),
  };
}
