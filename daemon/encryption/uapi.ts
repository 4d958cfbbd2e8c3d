import { connect } from "node:net";
import { TwillError } from "../../lib/errors.ts";
import { base64Key } from "./keys.ts";

// WireGuard's cross-platform configuration protocol (wireguard.com/xplatform):
// key=value lines over the device's unix socket, `get=1` to read and `set=1`
// to write, each answered with `errno=N` and a blank line. wireguard-go (and
// every other user-space implementation) serves it; the kernel module does
// not (it speaks generic netlink: wg-tool.ts). Keys are hex on this wire.

export interface WgPeerState {
  /** base64, as annotations and `wg` spell it. */
  publicKey: string;
  endpoint: string;
  allowedIps: string[];
  /** Seconds since the epoch of the last completed handshake (0: none yet). */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface WgDeviceState {
  /** base64; "" when the device has none yet. */
  privateKey: string;
  listenPort: number;
  peers: WgPeerState[];
}

/** One request and its whole answer (the socket is closed after each: wireguard-go serves one at a time per connection anyway). */
export function uapiRequest(socketPath: string, request: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let answer = "";
    const fail = (err: Error) => {
      sock.destroy();
      reject(new TwillError("WG_UAPI", `the WireGuard device's control socket ${socketPath} did not answer: is wireguard-go running?`, err.message));
    };
    const timer = setTimeout(() => fail(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("error", fail);
    sock.on("data", (d: string) => {
      answer += d;
      if (/(^|\n)errno=-?\d+\n\n$/.test(answer)) {
        clearTimeout(timer);
        sock.end();
        resolve(answer);
      }
    });
    sock.on("connect", () => sock.write(request));
  });
}

function errnoOf(answer: string): number {
  const m = /(?:^|\n)errno=(-?\d+)\n\n$/.exec(answer);
  return m ? Number(m[1]) : -1;
}

export function parseGet(answer: string): WgDeviceState {
  const dev: WgDeviceState = { privateKey: "", listenPort: 0, peers: [] };
  let peer: WgPeerState | undefined;
  for (const line of answer.split("\n")) {
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === "public_key") {
      peer = { publicKey: base64Key(value), endpoint: "", allowedIps: [], lastHandshake: 0, rxBytes: 0, txBytes: 0 };
      dev.peers.push(peer);
    } else if (!peer) {
      if (key === "private_key") dev.privateKey = base64Key(value);
      else if (key === "listen_port") dev.listenPort = Number(value);
    } else if (key === "endpoint") peer.endpoint = value;
    else if (key === "allowed_ip") peer.allowedIps.push(value);
    else if (key === "last_handshake_time_sec") peer.lastHandshake = Number(value);
    else if (key === "rx_bytes") peer.rxBytes = Number(value);
    else if (key === "tx_bytes") peer.txBytes = Number(value);
  }
  return dev;
}

export async function uapiGet(socketPath: string): Promise<WgDeviceState> {
  const answer = await uapiRequest(socketPath, "get=1\n\n");
  const errno = errnoOf(answer);
  if (errno !== 0) throw new TwillError("WG_UAPI", `reading the WireGuard device through ${socketPath} failed (errno ${errno})`);
  return parseGet(answer);
}

/** Applies `lines` (already in the protocol's spelling) in one transaction. */
export async function uapiSet(socketPath: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  const answer = await uapiRequest(socketPath, `set=1\n${lines.join("\n")}\n\n`);
  const errno = errnoOf(answer);
  if (errno !== 0) throw new TwillError("WG_UAPI", `configuring the WireGuard device through ${socketPath} failed (errno ${errno}); what was applied before the error stays and the next pass writes the rest`, lines.filter((l) => !l.startsWith("private_key=")).join("; "));
}
