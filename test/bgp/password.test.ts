import { describe, expect, it } from "vitest";
import { parseBgpPeer, withPasswords, type BgpPeerSpec } from "../../daemon/backends/bgp/crd.ts";
import { passwordFor, PASSWORD_SECRET } from "../../daemon/backends/bgp/password.ts";
import { DEFAULT_PEER_MAX_PREFIXES, wantedPeers } from "../../daemon/backends/bgp/settings.ts";
import { TwillError } from "../../lib/errors.ts";

// BGPPeer spec.password → the speaker's PeerConfig.password, without an apiserver.

const b64 = (s: string) => Buffer.from(s).toString("base64");
const peerObj = (name: string, password?: unknown) => ({ metadata: { name, resourceVersion: "1" }, spec: { peerIP: "10.0.0.1", asNumber: 65001, ...(password ? { password } : {}) } });
const ref = (key: string, name = PASSWORD_SECRET) => ({ secretKeyRef: { name, key } });
const self = { asn: 64512, port: 179, routerId: "10.0.0.9", restartTime: 120 };
const local = { name: "n1", ip: "10.0.0.9", podCIDRs: ["10.244.1.0/24"], annotations: {} };

describe("BGPPeer passwords from the Secret", () => {
  it("a password names a key of twill-bgp-password; any other Secret is refused (RBAC reads only that one)", () => {
    expect(parseBgpPeer(peerObj("p", ref("tor1"))).passwordRef).toEqual({ name: PASSWORD_SECRET, key: "tor1" });
    expect(parseBgpPeer(peerObj("p")).passwordRef).toBeUndefined();
    expect(() => parseBgpPeer(peerObj("p", ref("tor1", "bgp")))).toThrow(/may read only Secret twill-system\/twill-bgp-password/);
    try {
      parseBgpPeer(peerObj("p", ref("tor1", "bgp")));
    } catch (err) {
      expect((err as TwillError).code).toBe("BGP_CRD_INVALID");
    }
  });

  it("the key's value is the password; a missing Secret or key, an empty or overlong value is an error with a code", () => {
    const r = { name: PASSWORD_SECRET, key: "tor1" };
    expect(passwordFor("p", r, { synced: true, data: { tor1: b64("s3cret") } })).toBe("s3cret");
    const code = (x: unknown) => (x as TwillError).code;
    expect(code(passwordFor("p", r, { synced: true }))).toBe("BGP_PASSWORD_MISSING");
    expect(code(passwordFor("p", r, { synced: true, data: { other: b64("x") } }))).toBe("BGP_PASSWORD_MISSING");
    expect(code(passwordFor("p", r, { synced: true, data: { tor1: "" } }))).toBe("BGP_PASSWORD_INVALID");
    expect(code(passwordFor("p", r, { synced: true, data: { tor1: b64("x".repeat(81)) } }))).toBe("BGP_PASSWORD_INVALID");
    expect(passwordFor("p", r, { synced: true, data: { tor1: b64("x".repeat(80)) } })).toBe("x".repeat(80));
  });

  it("peers without a password pass through; with one they wait for the first read, then carry it or are left out with why", () => {
    const peers: BgpPeerSpec[] = [parseBgpPeer(peerObj("plain")), parseBgpPeer(peerObj("md5", ref("tor1"))), parseBgpPeer(peerObj("nokey", ref("tor2")))];
    const before = withPasswords(peers, { synced: false });
    expect(before.peers.map((p) => p.name)).toEqual(["plain"]);
    expect(before.missing.size).toBe(0);
    const after = withPasswords(peers, { synced: true, data: { tor1: b64("s3cret") } });
    expect(after.peers.map((p) => [p.name, p.password])).toEqual([["plain", undefined], ["md5", "s3cret"]]);
    expect([...after.missing.keys()]).toEqual(["nokey"]);
    expect(after.missing.get("nokey")!.message).toMatch(/has no key "tor2"/);
    expect(after.missing.get("nokey")!.message).not.toContain("s3cret");
  });

  it("the password reaches the speaker's peer config; a new password is a different config (the peer is re-created)", () => {
    const md5 = parseBgpPeer(peerObj("md5", ref("tor1")));
    const cfg = (pw: string) => wantedPeers(self, false, 64512, [], withPasswords([md5], { synced: true, data: { tor1: b64(pw) } }).peers, local).get("10.0.0.1");
    expect(cfg("one")).toEqual({ address: "10.0.0.1", asn: 65001, port: 179, password: "one", maxPrefixes: { limit: DEFAULT_PEER_MAX_PREFIXES } });
    expect(JSON.stringify(cfg("one"))).not.toBe(JSON.stringify(cfg("two")));
  });
});
