import { TwillError } from "../errors.ts";
import { sha256Hex } from "../hash.ts";
import {
  closeSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync,
  statSync, symlinkSync, unlinkSync, writeSync,
} from "node:fs";
import { join } from "node:path";

// One directory per network; one file per allocated address, named by the
// address and holding "containerID\nifname" (host-local's on-disk format, so
// an existing host-local directory can be adopted).
//
// Claiming needs no lock: the record is written completely to a private temp
// file and then hard-linked to the address's name. link(2) fails with EEXIST
// when another process holds the address, and a process killed at any point
// leaves either a complete record or none (plus, at worst, a temp file that
// the next allocation or GC removes). An owner symlink per attachment makes
// the lookup by container cheap; it is only an index, rebuilt from the records
// when missing.
//
// Removal is what can go wrong without a lock: a remover that decided from an
// earlier read ("this record is stale") could unlink a record another process
// put in its place since (the old one deleted, the address claimed again). So
// every path that removes records (DEL, CNI GC, the daemon's sweep, twillctl)
// holds one lock file per directory while it reads and unlinks; claims never
// take it. Under the lock only claims can change the directory, and a claim
// only creates a name that is absent, so a record read under the lock is the
// one that gets unlinked.
//
// This module is shared by the CNI plugin and the daemon (lib/ owns the format).

export interface Allocation {
  ip: string;
  containerId: string;
  ifname: string;
}

/** A record as it is on disk: inode, owner and write time tell one claim of an address from a later one. */
export interface AllocationRecord extends Allocation {
  /** When the claim was written (the file's mtime): the record's own age. */
  allocatedAtMs: number;
  ino: number;
}

const TMP_PREFIX = ".tmp.";
const OWNER_PREFIX = ".owner.";
const LAST_PREFIX = "last_reserved_ip.";
const LOCK_NAME = ".lock";
/** Removers hold the lock for microseconds; one older than this was left by a killed process. */
const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 5_000;
const pause = new Int32Array(new SharedArrayBuffer(4));

export class IpamStore {
  readonly dir: string;
  private lockDepth = 0;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  }

  /** Claims `ip` for the attachment; false when someone else holds it. */
  claim(ip: string, containerId: string, ifname: string): boolean {
    // The owner index first: then every record has its index entry, even if
    // this process is killed right after the link, and DEL needs no scan. An
    // entry whose address turns out to be someone else's is ignored (owned()
    // checks the record) and overwritten by the next claim.
    this.writeOwner(containerId, ifname, ip);
    const tmp = join(this.dir, `${TMP_PREFIX}${process.pid}.${Math.random().toString(36).slice(2)}`);
    const fd = openSync(tmp, "wx", 0o644);
    try {
      // No fsync: a process killed after write(2) leaves the data in the page
      // cache. After a power loss every pod is gone anyway and the runtime's
      // GC frees records, even empty ones.
      writeSync(fd, `${containerId}\n${ifname}`);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, join(this.dir, ip));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    } finally {
      unlinkSync(tmp);
    }
    return true;
  }

  /** Every name in the directory (records, index entries, hints, temp files): one readdir. */
  names(): string[] {
    return readdirSync(this.dir);
  }

  /**
   * The addresses held by an attachment, from the owner index (written
   * before each record, see claim): what ADD needs. "thorough" also scans
   * every record (CHECK); "fallback" scans only when the index has no entry
   * at all (DEL: a directory adopted from host-local, or records from before
   * the index came first).
   */
  findByOwner(containerId: string, ifname: string, scan: "never" | "fallback" | "thorough" = "never"): string[] {
    const owned = (ip: string) => {
      const owner = this.ownerOf(ip);
      return owner?.containerId === containerId && owner.ifname === ifname;
    };
    const indexed = this.readOwner(containerId, ifname);
    const found = new Set(indexed.filter(owned));
    if (scan === "thorough" || (scan === "fallback" && indexed.length === 0)) {
      for (const a of this.list()) if (a.containerId === containerId && a.ifname === ifname) found.add(a.ip);
    }
    return [...found];
  }

  /** Frees every address of the attachment; returns what was freed. Idempotent. */
  release(containerId: string, ifname: string): string[] {
    return this.withRemovalLock(() => {
      const ips = this.findByOwner(containerId, ifname, "fallback");
      for (const ip of ips) this.remove(ip);
      this.removeOwner(containerId, ifname);
      return ips;
    });
  }

  /**
   * Removes the record of `ip` only if it is still the claim `expected`
   * describes: a record claimed again since the caller looked is left alone.
   * Inode, owner and write time together tell claims apart (a freed inode is
   * reused by the very next file). Returns whether it removed it.
   */
  removeIf(ip: string, expected: Pick<AllocationRecord, "ino" | "containerId" | "ifname" | "allocatedAtMs">): boolean {
    return this.withRemovalLock(() => {
      let st;
      try {
        st = statSync(join(this.dir, ip));
      } catch {
        return false;
      }
      const owner = this.ownerOf(ip);
      if (st.ino !== expected.ino || st.mtimeMs !== expected.allocatedAtMs || owner?.containerId !== expected.containerId || owner.ifname !== expected.ifname) return false;
      this.unlinkRecord(ip);
      return true;
    });
  }

  /**
   * Runs `fn` holding the directory's removal lock (re-entrant within this
   * store object). Waits up to 5 s for another remover; a lock file older than
   * 10 s belongs to a killed process and is broken.
   */
  withRemovalLock<T>(fn: () => T): T {
    if (this.lockDepth > 0) return fn();
    const path = join(this.dir, LOCK_NAME);
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = openSync(path, "wx", 0o644);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        if (ageMs(path, Date.now()) > LOCK_STALE_MS) {
          tryUnlink(path);
          continue;
        }
        if (Date.now() > deadline) {
          throw new TwillError("IPAM_LOCK_TIMEOUT", `another process has held ${path} for over ${LOCK_WAIT_MS / 1000} s; retry, or remove the file if no Twill process is running`);
        }
        Atomics.wait(pause, 0, 0, 1);
      }
    }
    this.lockDepth++;
    try {
      return fn();
    } finally {
      this.lockDepth--;
      tryUnlink(path);
    }
  }

  ownerOf(ip: string): { containerId: string; ifname: string } | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.dir, ip), "utf8");
    } catch {
      return undefined;
    }
    const [containerId = "", ifname = ""] = text.split(/\r?\n/);
    return { containerId: containerId.trim(), ifname: ifname.trim() };
  }

  list(): Allocation[] {
    const out: Allocation[] = [];
    for (const name of this.recordNames()) {
      const owner = this.ownerOf(name);
      if (owner) out.push({ ip: name, ...owner });
    }
    return out;
  }

  /** Every record with its age and inode (what a sweep decides from). */
  records(): AllocationRecord[] {
    const out: AllocationRecord[] = [];
    for (const name of this.recordNames()) {
      let st;
      try {
        st = statSync(join(this.dir, name));
      } catch {
        continue; // released meanwhile
      }
      const owner = this.ownerOf(name);
      if (owner) out.push({ ip: name, ...owner, allocatedAtMs: st.mtimeMs, ino: st.ino });
    }
    return out;
  }

  remove(ip: string): void {
    this.withRemovalLock(() => this.unlinkRecord(ip));
  }

  private recordNames(): string[] {
    return readdirSync(this.dir).filter((name) => !name.startsWith(".") && !name.startsWith(LAST_PREFIX));
  }

  private unlinkRecord(ip: string): void {
    try {
      unlinkSync(join(this.dir, ip));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }

  lastReserved(setIndex: number): string | undefined {
    try {
      return readFileSync(join(this.dir, `${LAST_PREFIX}${setIndex}`), "utf8").trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** A hint only: concurrent writers may overwrite each other harmlessly. */
  setLastReserved(setIndex: number, ip: string): void {
    const path = join(this.dir, `${LAST_PREFIX}${setIndex}`);
    const tmp = `${path}${TMP_PREFIX}${process.pid}`;
    try {
      const fd = openSync(tmp, "w", 0o644);
      writeSync(fd, ip);
      closeSync(fd);
      renameSync(tmp, path);
    } catch {
      // losing the hint only changes where the next search starts
    }
  }

  /** Whether `names` (from names()) hold temp files of processes that are gone. */
  static hasLeftovers(names: string[]): boolean {
    return names.some((n) => n.includes(TMP_PREFIX) && !pidAlive(tempPid(n)));
  }

  /**
   * Removes temp files left by killed processes and, unless `tempOnly`,
   * stale index entries: with `valid` (GC's "containerId/ifname" list) every
   * entry of an attachment not in it, else entries whose address is free or
   * someone else's once they are a minute old (the entry of a claim in flight
   * is written just before its record). Returns how many.
   */
  sweep(opts: { tempOnly?: boolean; valid?: Set<string> } = {}): number {
    let removed = 0;
    const now = Date.now();
    const validNames = opts.valid && new Set([...opts.valid].map((k) => this.ownerName(k.slice(0, k.lastIndexOf("/")), k.slice(k.lastIndexOf("/") + 1))));
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (name.includes(TMP_PREFIX)) {
        const pid = tempPid(name);
        if (pidAlive(pid) && pid !== process.pid) continue;
        removed += tryUnlink(path);
      } else if (!opts.tempOnly && name.startsWith(OWNER_PREFIX)) {
        const base = name.slice(0, name.lastIndexOf("."));
        if (validNames && !validNames.has(base)) {
          removed += tryUnlink(path);
          continue;
        }
        if (linkAgeMs(path, now) < OWNER_GRACE_MS) continue;
        let target: string;
        try {
          target = readlinkSync(path);
        } catch {
          continue;
        }
        // Stale: the address is free, or held by another attachment (a claim that lost the race, or was killed).
        const owner = this.ownerOf(target);
        if (!owner || base !== this.ownerName(owner.containerId, owner.ifname)) removed += tryUnlink(path);
      }
    }
    return removed;
  }

  private ownerName(containerId: string, ifname: string): string {
    return `${OWNER_PREFIX}${sha256Hex(`${containerId}/${ifname}`).slice(0, 32)}`;
  }

  private ownerPath(containerId: string, ifname: string): string {
    return join(this.dir, this.ownerName(containerId, ifname));
  }

  private writeOwner(containerId: string, ifname: string, ip: string): void {
    // One link per address family: suffix with the family so dual-stack pods keep both.
    const path = `${this.ownerPath(containerId, ifname)}.${ip.includes(":") ? 6 : 4}`;
    try {
      symlinkSync(ip, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      // Replaced atomically: a parallel sweep may remove the old entry at any moment.
      const tmp = `${path}${TMP_PREFIX}${process.pid}`;
      tryUnlink(tmp);
      symlinkSync(ip, tmp);
      renameSync(tmp, path);
    }
  }

  private readOwner(containerId: string, ifname: string): string[] {
    const base = this.ownerPath(containerId, ifname);
    const out: string[] = [];
    for (const fam of [4, 6]) {
      try {
        out.push(readlinkSync(`${base}.${fam}`));
      } catch {
        // no index entry for this family
      }
    }
    return out;
  }

  private removeOwner(containerId: string, ifname: string): void {
    const base = this.ownerPath(containerId, ifname);
    tryUnlink(`${base}.4`);
    tryUnlink(`${base}.6`);
  }
}

function tryUnlink(path: string): number {
  try {
    unlinkSync(path);
    return 1;
  } catch {
    return 0;
  }
}

const OWNER_GRACE_MS = 60_000;

function tempPid(name: string): number {
  return Number(name.slice(name.indexOf(TMP_PREFIX) + TMP_PREFIX.length).split(".")[0]);
}

function linkAgeMs(path: string, now: number): number {
  try {
    return now - lstatSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function ageMs(path: string, now: number): number {
  try {
    return now - statSync(path).mtimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
