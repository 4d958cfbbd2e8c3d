import { CniError, compareVersions, ErrorCode } from "../spec.ts";

export function requireVersion(have: string, need: string, verb: string): void {
  if (compareVersions(have, need) < 0) {
    throw new CniError(ErrorCode.IncompatibleVersion, `${verb} needs cniVersion ${need} or later (config has ${have})`);
  }
}
