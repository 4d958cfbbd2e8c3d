import { exec } from "../../lib/kernel/exec.ts";
import { TwillError } from "../../lib/errors.ts";
import { NftSession } from "./nft-session.ts";
import { diffTransaction, replaceDescription, type NftDescription } from "./compile.ts";

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
export async function runNft(text: string, netns?: string): Promise<void> {
  const argv = netns ? ["ip", "netns", "exec", netns, "nft", "-f", "-"] : ["nft", "-f", "-"];
  const r = await exec(argv, { input: text, allowFailure: true });
  if (r.code !== 0) {
    throw new TwillError("NFT_APPLY", `nft rejected the NetworkPolicy transaction${netns ? ` in namespace ${netns}` : ""}; the previous table stays in force`, r.stderr.trim());
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

  constructor(netns?: string) {
    this.netns = netns;
    this.session = new NftSession(netns);
  }

  close(): void {
    this.session.close();
  }

  /** The description last applied successfully (undefined before the first). */
  current(): NftDescription | undefined {
    return this.programmed;
  }

  async apply(next: NftDescription): Promise<ApplyResult> {
    const text = diffTransaction(this.programmed, next);
    if (text === "") return { mode: "none", commands: 0 };
    const mode = this.programmed ? "diff" : "replace";
    try {
      if (mode === "diff" && text.length <= SESSION_MAX_BYTES) await this.session.run(text);
      else await runNft(text, this.netns);
    } catch (err) {
      if (!this.programmed) throw err;
      // The kernel no longer matches memory (someone flushed or edited the
      // table): heal with a whole replace.
      this.programmed = undefined;
      await runNft(replaceDescription(next), this.netns);
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
}

function countCommands(text: string): number {
  return text.split("\n").filter((l) => l.trim() !== "").length;
}
