import { spawn } from "node:child_process";
import type { Server } from "node:net";
import { TwillError } from "../../../lib/errors.ts";

// TCP MD5 (RFC 2385) keys on the speaker's listening socket. Node has no
// setsockopt(2), so the socket is lent to `twill md5sig` (the Bun-compiled
// CNI binary, which calls libc) as its fd 3: the option lands on the shared
// open file description, and connections accepted from the peer inherit the
// key. Peers with a key are therefore passive: Node gives no socket to set
// the option on between creating and connecting one.

/** The listening socket's fd: Node's TCP handle has it on Linux (internal, so checked). */
function listenerFd(server: Server): number {
  const fd = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    throw new TwillError("BGP_MD5_UNAVAILABLE", "this Node.js does not expose the BGP listener's file descriptor, so TCP MD5 keys cannot be set; peers with a password are left out");
  }
  return fd;
}

/** Sets (or, with an empty key, removes) `peer`'s key on the listener through `helper` (the twill binary). */
export function setListenerKey(server: Server, peer: string, key: string, helper: string): Promise<void> {
  const fd = listenerFd(server);
  return new Promise((resolve, reject) => {
    const child = spawn(helper, ["md5sig", "--fd", "3", "--peer", peer], { stdio: ["pipe", "ignore", "pipe", fd] });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", (err) => reject(new TwillError("BGP_MD5_HELPER", `could not run ${helper} to set the TCP MD5 key for ${peer}: ${err.message}`)));
    child.on("exit", (code) => {
      if (code === 0) resolve();
      else reject(new TwillError("BGP_MD5_FAILED", `setting the TCP MD5 key for ${peer} failed (${helper} exited ${code})`, stderr.trim()));
    });
    // The key goes on stdin, never in argv (visible in ps).
    child.stdin!.end(key);
  });
}
