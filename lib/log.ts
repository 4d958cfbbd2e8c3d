import { pino, type Logger } from "pino";

export type { Logger };

export interface LogOptions {
  /** Component name, e.g. "cni" or "daemon". */
  name: string;
  level?: string;
  /** Append JSON lines to this file instead of stderr. */
  file?: string;
}

// Structured JSON logs, always to stderr or a file: a CNI plugin's stdout
// belongs to the spec, and the daemon's stdout is left to the runtime.
export function createLogger(opts: LogOptions): Logger {
  const destination = opts.file
    ? pino.destination({ dest: opts.file, append: true, mkdir: true, sync: true })
    : pino.destination({ dest: 2, sync: true });
  return pino(
    { name: opts.name, level: opts.level ?? "info", base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    destination,
  );
}
