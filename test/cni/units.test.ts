import { describe, expect, it } from "vitest";
import { cidrContains, formatCidr, formatIp, parseCidr, parseIp } from "../../lib/net/cidr.ts";
import { attachmentAlias, hostVethName, parseAttachmentAlias, vethMacs } from "../../cni/attach/names.ts";
import { parseNetConf } from "../../cni/config.ts";
import { podIdentity, readEnv } from "../../cni/env.ts";
import { candidates, parseRange, rangeSetSize } from "../../cni/ipam/ranges.ts";
import { CniError, formatResult, parseResult, type Result } from "../../cni/spec.ts";

const result: Result = {
  interfaces: [{ name: "twl0" }, { name: "eth0", mac: "0a:00:00:00:00:01", mtu: 1450, sandbox: "/var/run/netns/p" }],
  ips: [
    { address: "10.0.0.2/32", gateway: "169.254.1.1", interface: 1 },
    { address: "fd00::2/128", gateway: "fe80::1", interface: 1 },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "169.254.1.1", mtu: 1400 }],
  dns: {},
};

describe("result formats", () => {
  it("0.3.x and 0.4.0 results carry the address family of each IP", () => {
    for (const v of ["0.3.0", "0.3.1", "0.4.0"]) {
      const out = formatResult(result, v) as { ips: { version: string }[] };
      expect(out.ips.map((i) => i.version)).toEqual(["4", "6"]);
    }
  });
  it("1.0.0 drops the family; only 1.1.0 shows interface mtu and route extras", () => {
    const v10 = formatResult(result, "1.0.0") as any;
    expect(v10.ips[0].version).toBeUndefined();
    expect(v10.interfaces[1].mtu).toBeUndefined();
    expect(v10.routes[0]).toEqual({ dst: "0.0.0.0/0", gw: "169.254.1.1" });
    const v11 = formatResult(result, "1.1.0") as any;
    expect(v11.interfaces[1].mtu).toBe(1450);
    expect(v11.routes[0].mtu).toBe(1400);
  });
  it("a result of any version reads back into the same internal form", () => {
    for (const v of ["0.3.1", "1.0.0", "1.1.0"]) {
      const back = parseResult(formatResult(result, v));
      expect(back.ips.map((i) => i.address)).toEqual(["10.0.0.2/32", "fd00::2/128"]);
    }
    expect(() => parseResult({ ips: [{ gateway: "1.1.1.1" }] })).toThrow(CniError);
  });
});

describe("environment", () => {
  it("accepts a runtime's environment and rejects names the spec forbids", () => {
    const env = readEnv({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "abc_1.2-3", CNI_NETNS: "/proc/1/ns/net", CNI_IFNAME: "eth0", CNI_PATH: "/a:/b" });
    expect(env.path).toEqual(["/a", "/b"]);
    for (const bad of [{ CNI_IFNAME: "a/b" }, { CNI_IFNAME: ".." }, { CNI_CONTAINERID: "-x" }, { CNI_NETNS: "" }]) {
      expect(() => readEnv({ CNI_COMMAND: "ADD", CNI_CONTAINERID: "c", CNI_NETNS: "/n", CNI_IFNAME: "eth0", ...bad })).toThrow(/CNI_/);
    }
    // DEL needs no netns: the runtime may have destroyed it already.
    expect(readEnv({ CNI_COMMAND: "DEL", CNI_CONTAINERID: "c", CNI_IFNAME: "eth0" }).netns).toBe("");
  });
});

describe("network config", () => {
  it("rejects an MTU outside the kernel's range and a config without IPAM", () => {
    const base = { cniVersion: "1.1.0", name: "n", type: "twill", ipam: { type: "twill-ipam" } };
    expect(parseNetConf(base).mtu).toBeUndefined();
    expect(() => parseNetConf({ ...base, mtu: 100 })).toThrow(/mtu/);
    expect(() => parseNetConf({ ...base, ipam: {} })).toThrow(/ipam/);
    expect(() => parseNetConf({ ...base, name: "a b" })).toThrow(/name/);
  });
});

describe("address math", () => {
  it("parses and formats IPv4 and IPv6", () => {
    expect(formatCidr(parseCidr("10.1.2.77/24"))).toBe("10.1.2.0/24");
    expect(formatCidr(parseCidr("fd00:1::5/64"))).toBe("fd00:1::/64");
    const c = parseCidr("10.1.2.0/24");
    expect(cidrContains(c, 4, parseIp("10.1.2.255").value)).toBe(true);
    expect(cidrContains(c, 4, parseIp("10.1.3.0").value)).toBe(false);
    expect(formatIp(6, parseIp("fd00::1").value + 1n)).toBe("fd00::2");
    expect(() => parseCidr("10.0.0.0")).toThrow(/CIDR/);
  });
});

describe("ranges", () => {
  it("skip the network and broadcast addresses and the gateway", () => {
    const r = parseRange({ subnet: "10.0.0.0/29", gateway: "10.0.0.1" });
    const all = [...candidates([r], undefined)].map((v) => formatIp(4, v));
    expect(all).toEqual(["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
    expect(rangeSetSize([r])).toBe(5n);
  });
  it("start after the last address handed out and wrap around, each address once", () => {
    const set = [parseRange({ subnet: "10.0.0.0/29" }), parseRange({ subnet: "10.0.1.0/30" })];
    const order = [...candidates(set, parseIp("10.0.0.5").value)].map((v) => formatIp(4, v));
    expect(order).toEqual(["10.0.0.6", "10.0.1.1", "10.0.1.2", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]);
  });
  it("honour rangeStart and rangeEnd and reject bounds outside the subnet", () => {
    const r = parseRange({ subnet: "10.0.0.0/24", rangeStart: "10.0.0.100", rangeEnd: "10.0.0.102" });
    expect([...candidates([r], undefined)].map((v) => formatIp(4, v))).toEqual(["10.0.0.100", "10.0.0.101", "10.0.0.102"]);
    expect(() => parseRange({ subnet: "10.0.0.0/24", rangeEnd: "10.0.1.1" })).toThrow(/outside/);
  });
});

describe("host-side names", () => {
  it("are deterministic, kernel-sized, and the alias round-trips", () => {
    expect(hostVethName("abc", "eth0")).toBe(hostVethName("abc", "eth0"));
    expect(hostVethName("abc", "eth0")).not.toBe(hostVethName("abc", "eth1"));
    expect(hostVethName("abc", "eth0").length).toBeLessThanOrEqual(15);
    const macs = vethMacs("abc", "eth0");
    // Locally administered, unicast.
    for (const m of [macs.host, macs.pod]) expect(parseInt(m.slice(0, 2), 16) & 0b11).toBe(0b10);
    const a = { network: "twill", containerId: "c-1.x", ifname: "eth0" };
    expect(parseAttachmentAlias(attachmentAlias(a))).toEqual(a);
    expect(parseAttachmentAlias("something else")).toBeUndefined();
  });
});

describe("CNI_ARGS", () => {
  it("names the pod from containerd's K8S_POD_* keys and ignores every other key", () => {
    const args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=0123abc;K8S_POD_UID=5f0c7c4e-1b2a-4c1e-9d7e-0a1b2c3d4e5f;Extra=x=y";
    expect(podIdentity(args)).toEqual({ namespace: "team-a", name: "web-0", uid: "5f0c7c4e-1b2a-4c1e-9d7e-0a1b2c3d4e5f" });
  });

  it("is undefined when a runtime names no pod, or only part of one", () => {
    expect(podIdentity("")).toBeUndefined();
    expect(podIdentity("IgnoreUnknown=1")).toBeUndefined();
    expect(podIdentity("K8S_POD_NAMESPACE=a;K8S_POD_NAME=b")).toBeUndefined();
    expect(podIdentity("K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_UID=")).toBeUndefined();
    expect(podIdentity(";;=x;K8S_POD_UID")).toBeUndefined();
  });

  it("daemonTimeoutMs defaults to 2 s and rejects what is not a millisecond count", () => {
    const base = { cniVersion: "1.0.0", name: "twill", type: "twill", ipam: { type: "twill-ipam" } };
    expect(parseNetConf(base).daemonTimeoutMs).toBe(2000);
    expect(parseNetConf({ ...base, daemonTimeoutMs: 0 }).daemonTimeoutMs).toBe(0);
    for (const bad of [-1, 1.5, "2000", 120_000]) expect(() => parseNetConf({ ...base, daemonTimeoutMs: bad })).toThrow(/daemonTimeoutMs/);
  });
});
