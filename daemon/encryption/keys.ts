import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { TwillError } from "../../lib/errors.ts";

// The node's WireGuard key pair. The private key lives only in one file on
// the node (mode 0600, written atomically) and in the device; it is never
// logged and never leaves the node. Keys are Curve25519, written the way `wg`
// writes them: base64 of 32 bytes.

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/** What loading the key file found: the pair, and why a new one was made (undefined: the file's own). */
export interface LoadedKey extends KeyPair {
  made?: "missing" | "invalid" | "rotation";
  /** The file was readable by others and has been made 0600. */
  tightened?: boolean;
}

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** True for the base64 of exactly 32 bytes (a WireGuard key's only valid spelling). */
export function isWireguardKey(text: string): boolean {
  return KEY.test(text);
}

// PKCS#8 wrapping of a raw X25519 private key (RFC 8410): node:crypto imports keys only in a container format.
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");

export function publicKeyOf(privateKey: string): string {
  const der = Buffer.concat([PKCS8_X25519, Buffer.from(privateKey, "base64")]);
  const jwk = createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" })).export({ format: "jwk" });
  return Buffer.from(jwk.x!, "base64url").toString("base64");
}

export function generateKeyPair(): KeyPair {
  const raw = Buffer.from(generateKeyPairSync("x25519").privateKey.export({ format: "jwk" }).d!, "base64url");
  // Clamped as `wg genkey` does (RFC 7748 §5), so the file reads the same in every tool.
  raw[0]! &= 248;
  raw[31]! = (raw[31]! & 127) | 64;
  const privateKey = raw.toString("base64");
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

function writeKeyFile(path: string, privateKey: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, `${privateKey}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * The key pair from `path`, made (and written) when the file is missing or
 * does not hold a key. With `rotate` a new pair replaces the file's.
 */
export function loadOrCreateKey(path: string, rotate = false): LoadedKey {
  let made: LoadedKey["made"] = rotate ? "rotation" : undefined;
  let tightened = false;
  if (!rotate) {
    if (!existsSync(path)) made = "missing";
    else {
      let text: string;
      try {
        text = readFileSync(path, "utf8").trim();
      } catch (err) {
        throw new TwillError("WG_KEY_FILE", `cannot read the WireGuard key file ${path}: check its permissions (the daemon runs as root)`, String(err));
      }
      if (!isWireguardKey(text)) made = "invalid";
      else {
        if (statSync(path).mode & 0o077) {
          chmodSync(path, 0o600);
          tightened = true;
        }
        return { privateKey: text, publicKey: publicKeyOf(text), tightened };
      }
    }
  }
  const pair = generateKeyPair();
  try {
    writeKeyFile(path, pair.privateKey);
  } catch (err) {
    throw new TwillError("WG_KEY_FILE", `cannot write the WireGuard key file ${path}: the directory must be writable by the daemon (a hostPath in the DaemonSet, so the key survives restarts)`, String(err));
  }
  return { ...pair, made };
}

/** Removes the key file (a rotation's first step when asked for by annotation). */
export function removeKeyFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

export const hexKey = (b64: string) => Buffer.from(b64, "base64").toString("hex");
export const base64Key = (hex: string) => Buffer.from(hex, "hex").toString("base64");
