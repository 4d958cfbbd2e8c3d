// Runs inside a pod's network namespace: opens a new TCP connection to
// host:port every `everyMs` and prints one line per attempt,
// "<start epoch ms> <1|0>" (connected within `timeoutMs` or not). The
// benchmark reads the stream to find when a policy change flipped the
// verdict. New connections only: established ones pass by conntrack.
//   node flip-probe.ts HOST PORT [everyMs] [timeoutMs]
import { connect } from "node:net";

const [host = "", portText = "", everyText = "2", timeoutText = "200"] = process.argv.slice(2);
const port = Number(portText);
const everyMs = Number(everyText);
const timeoutMs = Number(timeoutText);
const now = () => performance.timeOrigin + performance.now();

function attempt(): void {
  const start = now();
  let done = false;
  const finish = (ok: boolean) => {
    if (done) return;
    done = true;
    sock.destroy();
    process.stdout.write(`${start.toFixed(2)} ${ok ? 1 : 0}\n`);
  };
  const sock = connect({ host, port });
  sock.once("connect", () => finish(true));
  sock.once("error", () => finish(false));
  sock.setTimeout(timeoutMs, () => finish(false));
}

setInterval(attempt, everyMs);
process.stdin.on("end", () => process.exit(0)).resume();
