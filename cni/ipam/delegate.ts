import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { execSync as exec } from "../../lib/kernel/exec-sync.ts";
import { CniError, compareVersions, ErrorCode, parseResult, type Result } from "../spec.ts";
import type { Command } from "../env.ts";
import type { IpamContext, IpamDriver } from "./driver.ts";

// Any IPAM type other than twill-ipam is executed from CNI_PATH with the same
// environment (but its own CNI_COMMAND) and the same config on stdin, as the
// spec's "Delegated plugins" section describes.

export function findPlugin(type: string, path: string[]): string {
  if (type.includes("/")) throw new CniError(ErrorCode.InvalidConfig, `plugin type "${type}" must be a plain name`);
  for (const dir of path) {
    const candidate = join(dir, type);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new CniError(ErrorCode.InvalidConfig, `IPAM plugin "${type}" was not found in CNI_PATH (${path.join(":") || "empty"})`);
}

export class DelegatedIpam implements IpamDriver {
  private readonly ctx: IpamContext;

  constructor(ctx: IpamContext) {
    this.ctx = ctx;
  }

  private async run(command: Command): Promise<string> {
    const bin = findPlugin(this.ctx.conf.ipam.type, this.ctx.env.path);
    const r = await exec([bin], {
      input: this.ctx.stdin,
      env: { ...process.env, CNI_COMMAND: command },
      allowFailure: true,
    });
    if (r.code !== 0) {
      let inner: { code?: number; msg?: string; details?: string } = {};
      try {
        inner = JSON.parse(r.stdout);
      } catch {
        // not a spec error object: report the raw output
      }
      throw new CniError(
        typeof inner.code === "number" ? inner.code : ErrorCode.DelegateFailed,
        `IPAM plugin ${this.ctx.conf.ipam.type} failed ${command}: ${inner.msg ?? "no error object"}`,
        inner.details ?? (r.stderr.trim() || r.stdout.trim()),
      );
    }
    return r.stdout;
  }

  async add(): Promise<Result> {
    const out = await this.run("ADD");
    try {
      return parseResult(JSON.parse(out));
    } catch (err) {
      // The plugin allocated but said something we cannot read: give it back.
      await this.del().catch(() => {});
      throw err instanceof CniError ? err : new CniError(ErrorCode.DecodeFailure, `IPAM plugin ${this.ctx.conf.ipam.type} returned invalid JSON`, out);
    }
  }

  async del(): Promise<void> {
    await this.run("DEL");
  }

  async check(): Promise<void> {
    await this.run("CHECK");
  }

  async status(): Promise<void> {
    if (compareVersions(this.ctx.conf.cniVersion, "1.1.0") >= 0) await this.run("STATUS");
  }

  async gc(): Promise<void> {
    if (compareVersions(this.ctx.conf.cniVersion, "1.1.0") >= 0) await this.run("GC");
  }
}
