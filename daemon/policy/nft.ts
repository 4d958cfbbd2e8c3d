import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { exec } from "../../lib/kernel/exec.ts";
import { TwillError } from "../../lib/errors.ts";
import { NftSession } from "./nft-session.ts";
import { diffTransaction, replaceDescription, type NftDescription, type NftSet } from "./compile.ts";
import { compareElements, compareListing, parseListing } from "./verify.ts";

// Applying the compiled table to the kernel, always as one transaction
// (atomic: the kernel commits all of it or none). Diffs go through a
// persistent `nft -i` session (nft-session.ts: one input line per
// transaction, 3–10 ms); whole-table replaces and very large diffs through a
// fresh `nft -f -` (no line-length question, and they are rare).

export interface ApplyResult {
  /** "replace": whole table in one transaction; "diff": only the difference; "none": nothing changed. */
  mode: "replace" | "diff" | "none";
  /** Commands in the transaction. */
  commands: number;
}

/** Runs one `nft -f -` transaction, inside network namespace `netns` when given. */
export async function runNft(text: string, netns?: string, what = "NetworkPolicy"): Promise<void> {
  const argv = netns ? ["ip", "netns", "exec", netns, "nft", "-f", "-"] : ["nft", "-f", "-"];
  const r = await exec(argv, { input: text, allowFailure: true });
  if (r.code !== 0) {
    throw new TwillError("NFT_APPLY", `nft rejected the ${what} transaction${netns ? ` in namespace ${netns}` : ""}; the previous table stays in force`, r.stderr.trim());
  }
}

/**
 * Keeps what is programmed and applies only differences. The first apply
 * after start (or after a failure, when the kernel may differ from memory)
 * replaces the whole table in one transaction, so a restarted daemon leaves
 * the old table in force until the new one takes its place atomically.
 */
/** Diffs larger than this go through a fresh `nft -f -` instead of the session. */
const SESSION_MAX_BYTES = 256 * 1024;

export class PolicyTable {
  private readonly netns: string | undefined;
  private readonly session: NftSession;
  private programmed: NftDescription | undefined;
  /** Applies started: a verify that saw this change answers nothing (its listing may show either table). */
  private applies = 0;

  /** Whose table this is, for messages ("NetworkPolicy", "service proxy"). */
  private readonly what: string;

  constructor(netns?: string, what = "NetworkPolicy") {
    this.netns = netns;
    this.what = what;
    this.session = new NftSession(netns, what);
  }

  close(): void {
    this.session.close();
  }

  /** The description last applied successfully (undefined before the first). */
  current(): NftDescription | undefined {
    return this.programmed;
  }

  async apply(next: NftDescription): Promise<ApplyResult> {
    this.applies++;
    const text = diffTransaction(this.programmed, next);
    if (text === "") return { mode: "none", commands: 0 };
    const mode = this.programmed ? "diff" : "replace";
    try {
      if (mode === "diff" && text.length <= SESSION_MAX_BYTES) await this.session.run(text);
      else await runNft(text, this.netns, this.what);
    } catch (err) {
      if (!this.programmed) throw err;
      // The kernel no longer matches memory (someone flushed or edited the
      // table): heal with a whole replace.
      this.programmed = undefined;
      await runNft(replaceDescription(next), this.netns, this.what);
      this.programmed = next;
      return { mode: "replace", commands: countCommands(replaceDescription(next)) };
    }
    this.programmed = next;
    return { mode, commands: countCommands(text) };
  }

  /** Forget what is programmed: the next apply replaces the table whole (a restart does the same). */
  forget(): void {
    this.programmed = undefined;
  }

  /**
   * Reads the kernel and returns how its table differs from what was last
   * programmed (empty: it matches, or nothing is programmed yet; undefined:
   * an apply started meanwhile, so the listings may show either table).
   * Never on an event's path: applies trust memory, the controller's resync
   * verifies, beside applies rather than before them (a full check can take
   * seconds, and a policy change should not wait for it).
   *
   * `full` false (every resync): the table, its chains with their hooks, its
   * sets' declarations, and the elements of every set without intervals: the
   * dispatch maps, `ready` and the IPv6 closed sets, one element per local
   * pod. These are the cheap listings (nft 1.0.6 fetches only what they
   * print).
   * `full` true: also every chain's rules and every set's elements. Listing
   * any rule makes nft 1.0.6 fetch every element of the table.
   * Measured at bench:policy's scale (10,000 pods/1,000 policies: 110 sets,
   * 121 chains, 233 rules, 182,000 elements; nft 1.0.6, 2 shared cores under
   * load 4–20): `list chains`, `list sets -t`, one `list set`: 5–30 ms and
   * 4–6 MB each; `list table -t` (rules, no elements): 0.6–1.2 s, 0.7 s CPU,
   * 190 MB of nft RSS; all 108 interval sets through one `nft -j -i`: 2.5 s
   * CPU, 15 MB; `list table -j` 3.4–4 s, 3 s CPU, 330 MB of nft RSS and 9.4
   * MB of JSON; `list table` as text 15–21 s (nft's interval printing). So
   * elements are read set by set in one `nft -j -i`, streamed (the daemon's
   * heap never holds the whole listing), rules with `list table -t`, and the
   * controller runs the full check only as often as its cost allows.
   */
  async verify(full: boolean): Promise<string[] | undefined> {
    const want = this.programmed;
    const applies = this.applies;
    if (!want) return [];
    const t = `inet ${want.table}`;
    const listing = full
      ? await this.nft(["-t", "list", "table", "inet", want.table], undefined, true)
      : await this.nft(["-t", "-i"], "list chains inet\nlist sets inet\nlist maps inet\n");
    const have = parseListing(listing, want.table);
    const drift = compareListing(want, have, full);
    if (!have.present) return applies === this.applies ? drift : undefined;
    // Sets whose declaration differs were reported above; their elements say nothing more.
    const sets = want.sets.filter((s) => !s.dynamic && (full || !s.flags?.includes("interval")) && have.sets.get(s.name)?.kind === s.kind && !drift.some((d) => d.startsWith(`${s.kind} ${s.name} `)));
    const byName = new Map<string, NftSet>(sets.map((s) => [s.name, s]));
    const seen = new Set<string>();
    await this.streamLines(["-j", "-i"], sets.map((s) => `list ${s.kind} ${t} ${s.name}\n`).join(""), (line) => {
      if (!line.startsWith("{")) return;
      const doc = JSON.parse(line) as { nftables?: Record<string, { name?: string; table?: string; elem?: unknown[] }>[] };
      for (const o of doc.nftables ?? []) {
        const body = o.set ?? o.map;
        const s = body?.table === want.table ? byName.get(body.name ?? "") : undefined;
        if (!s || seen.has(s.name)) continue;
        seen.add(s.name);
        drift.push(...compareElements(s, body!.elem ?? []));
      }
    });
    // A set that vanished between the two listings.
    for (const s of sets) if (!seen.has(s.name)) drift.push(`${s.kind} ${s.name} is missing`);
    return applies === this.applies ? drift : undefined;
  }

  /**
   * verify, and on any difference the table is replaced whole in one
   * transaction (for callers that do not apply meanwhile; the controller
   * forgets and lets its next apply replace).
   */
  async heal(full: boolean): Promise<{ drift: string[]; result?: ApplyResult }> {
    const want = this.programmed;
    const drift = (await this.verify(full)) ?? [];
    if (!want || drift.length === 0) return { drift };
    this.forget();
    return { drift, result: await this.apply(want) };
  }

  private argv(args: string[]): string[] {
    return this.netns ? ["ip", "netns", "exec", this.netns, "nft", ...args] : ["nft", ...args];
  }

  /** stdout of one nft run; `missingOk`: a missing table lists as nothing. */
  private async nft(args: string[], input?: string, missingOk = false): Promise<string> {
    const r = await exec(this.argv(args), { ...(input === undefined ? {} : { input }), allowFailure: true });
    if (r.code === 0 || (missingOk && /No such file or directory/.test(r.stderr))) return r.stdout;
    throw new TwillError("NFT_LIST", `listing the ${this.what} table failed`, r.stderr.trim().slice(0, 2000));
  }

  /** Runs nft with `input` on stdin and hands each line of its stdout to onLine (a listing of sets can be megabytes). */
  private streamLines(args: string[], input: string, onLine: (line: string) => void): Promise<void> {
    const argv = this.argv(args);
    return new Promise((resolve, reject) => {
      const p = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "ignore"] });
      let failed: Error | undefined;
      createInterface({ input: p.stdout }).on("line", (line) => {
        if (failed) return;
        try {
          onLine(line);
        } catch (err) {
          failed = new TwillError("NFT_LIST", "nft printed a listing Twill cannot read", String(err));
        }
      });
      p.stdin.on("error", () => {});
      p.on("error", (err) => reject(new TwillError("NFT_LIST", `nft could not run: ${err.message}`)));
      p.on("close", () => (failed ? reject(failed) : resolve()));
      p.stdin.end(input);
    });
  }
}

function countCommands(text: string): number {
  return text.split("\n").filter((l) => l.trim() !== "").length;
}
