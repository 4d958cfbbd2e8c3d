import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { createLogger } from "../../lib/log.ts";
import type { SpeakerConfig } from "./speaker/config.ts";
import { Speaker } from "./speaker/speaker.ts";

// A standalone speaker for tests, benchmarks and debugging:
//   node daemon/bgp/cli.ts CONFIG.json
// Events go to stdout as JSON lines; commands come on stdin as JSON lines:
//   {"cmd":"announce","prefix":"10.1.0.0/24"} {"cmd":"withdraw","prefix":…} {"cmd":"routes"} {"cmd":"stop"}

const path = process.argv[2];
if (!path) {
  process.stderr.write("usage: node daemon/bgp/cli.ts CONFIG.json\n");
  process.exit(2);
}
const cfg = JSON.parse(readFileSync(path, "utf8")) as SpeakerConfig & { announce?: string[]; quietBest?: boolean };
const log = createLogger({ name: "bgp", level: process.env.TWILL_LOG_LEVEL ?? "info" });
const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

const speaker = new Speaker(cfg, log, {
  onBest: (changes) => {
    if (cfg.quietBest) {
      emit({ event: "count", routes: speaker.rib.size });
      return;
    }
    for (const c of changes) emit({ event: "best", prefix: c.prefix, nextHop: c.best?.nextHop, peer: c.best?.peer, stale: c.best?.stale });
  },
  onPeerState: (peer, state, detail) => emit({ event: "peer", peer, state, detail, at: Date.now() }),
});
await speaker.start();
for (const p of cfg.announce ?? []) speaker.announce(p);
emit({ event: "ready" });

createInterface({ input: process.stdin }).on("line", (line) => {
  let cmd: { cmd: string; prefix?: string };
  try {
    cmd = JSON.parse(line) as { cmd: string; prefix?: string };
  } catch {
    emit({ event: "error", message: `not JSON: ${line}` });
    return;
  }
  if (cmd.cmd === "announce" && cmd.prefix) speaker.announce(cmd.prefix);
  else if (cmd.cmd === "withdraw" && cmd.prefix) speaker.withdraw(cmd.prefix);
  else if (cmd.cmd === "routes") emit({ event: "routes", routes: speaker.routes().map((r) => ({ prefix: r.prefix, nextHop: r.nextHop, peer: r.peer, stale: r.stale })) });
  else if (cmd.cmd === "stop") void speaker.stop().then(() => process.exit(0));
  else emit({ event: "error", message: `unknown command ${line}` });
});
process.on("SIGTERM", () => void speaker.stop().then(() => process.exit(0)));
