import { chmodSync, mkdirSync, unlinkSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { TwillError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { decodeNotice, encodeReply, NOTICE_MAX_BYTES, type Notice, type NoticeReply } from "../../lib/pod-notice.ts";

// The unix socket the CNI plugin's pod notices arrive on (lib/pod-notice.ts):
// one request line, one reply line, then the daemon closes. The socket is
// root's alone (0600, created under umask 0177 so it is never briefly open to
// others); anyone who could write to it could only delay their own ADD or
// make fail-closed admit an address of this node's pod CIDR that a pod of
// theirs already holds (both need root here anyway). Input is untrusted:
// a malformed line gets a NOTICE_INVALID reply and changes nothing.

/** A connection that sends nothing useful for this long is closed (a plugin waits at most 60 s). */
const IDLE_MS = 65_000;

export interface NoticeServer {
  close(): void;
}

export function startNoticeServer(path: string, handle: (n: Notice) => Promise<NoticeReply>, log: Logger): Promise<NoticeServer> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  try {
    unlinkSync(path);
  } catch {
    // none left by a previous run
  }
  const server: Server = createServer((conn) => serve(conn, handle, log));
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new TwillError("NOTICE_SOCKET", `cannot listen on ${path} for the CNI plugin's pod notices; check that its directory is writable by root`, String(err))));
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => {
        chmodSync(path, 0o600);
        server.removeAllListeners("error");
        server.on("error", (err) => log.error({ code: "NOTICE_SOCKET", details: String(err) }, "the pod notice socket failed"));
        log.info({ path }, "listening for the CNI plugin's pod notices");
        resolve({ close: () => server.close() });
      });
    } finally {
      process.umask(umask);
    }
  });
}

function serve(conn: Socket, handle: (n: Notice) => Promise<NoticeReply>, log: Logger): void {
  let buf = "";
  let answered = false;
  conn.setEncoding("utf8");
  conn.setTimeout(IDLE_MS, () => conn.destroy());
  conn.on("error", () => {
    // The plugin went away (timed out, killed): nothing to answer.
  });
  const reply = (r: NoticeReply) => {
    if (!conn.destroyed) conn.end(encodeReply(r));
  };
  conn.on("data", (chunk: string) => {
    if (answered) return;
    buf += chunk;
    const nl = buf.indexOf("\n");
    if (nl < 0 && buf.length <= NOTICE_MAX_BYTES) return;
    answered = true;
    let notice: Notice;
    try {
      notice = decodeNotice(nl < 0 ? buf : buf.slice(0, nl));
    } catch (err) {
      const message = err instanceof TwillError ? err.message : "notice could not be read";
      log.warn({ code: "NOTICE_INVALID", reason: message }, "refused a malformed pod notice");
      reply({ ok: false, code: "NOTICE_INVALID", message });
      return;
    }
    handle(notice)
      .then(reply)
      .catch((err: unknown) => {
        log.error({ code: "NOTICE_FAILED", details: String(err) }, "handling a pod notice failed");
        reply({ ok: false, code: "NOT_PROGRAMMED", message: "the daemon failed handling the notice; see its log" });
      });
  });
}
