import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { PodNotices } from "../../daemon/policy/notices.ts";
import { daemonSocketPath, parseNodeFile } from "../../lib/node-file.ts";
import { decodeNotice, decodeReply, encodeNotice, encodeReply, type AddNotice, type NoticeReply } from "../../lib/pod-notice.ts";

const add: AddNotice = { version: 1, op: "add", pod: { namespace: "x", name: "web", uid: "u-1" }, containerId: "abc123", ifname: "eth0", ips: ["10.5.0.2", "fd05::2"], waitMs: 2000 };
const line = (o: unknown) => JSON.stringify(o);

describe("pod notice codec", () => {
  it("an add and a del round-trip through one line each", () => {
    const text = encodeNotice(add);
    expect(text.endsWith("\n")).toBe(true);
    expect(text.indexOf("\n")).toBe(text.length - 1);
    expect(decodeNotice(text.trim())).toEqual(add);
    const del = { version: 1, op: "del", pod: add.pod, containerId: "abc123" } as const;
    expect(decodeNotice(encodeNotice(del).trim())).toEqual(del);
  });

  it("the plugin's timing and failures ride on the notices: elapsedMs on add and del, a DEL's error code, a failed ADD", () => {
    expect(decodeNotice(line({ ...add, elapsedMs: 12.5 }))).toEqual({ ...add, elapsedMs: 12.5 });
    const del = { version: 1, op: "del", pod: add.pod, containerId: "abc123", elapsedMs: 30, code: "KERNEL_FAILED" } as const;
    expect(decodeNotice(line(del))).toEqual(del);
    const failed = { version: 1, op: "failed", command: "ADD", pod: add.pod, containerId: "abc123", elapsedMs: 4, code: "IPAM_EXHAUSTED" } as const;
    expect(decodeNotice(encodeNotice(failed).trim())).toEqual(failed);
    expect(decodeReply(encodeReply({ ok: true, noted: true }).trim())).toEqual({ ok: true, noted: true });
    // A code is a metric label: no free text, no lower case, nothing long.
    for (const code of ["ipam exhausted", "A".repeat(49), "", 7]) expect(() => decodeNotice(line({ ...failed, code }))).toThrow(/error code/);
    expect(() => decodeNotice(line({ ...failed, code: undefined }))).toThrow(/needs the error code/);
    expect(() => decodeNotice(line({ ...failed, command: "DEL" }))).toThrow(/for command "ADD"/);
    for (const elapsedMs of [-1, "5", 3_600_001]) expect(() => decodeNotice(line({ ...add, elapsedMs }))).toThrow(/elapsedMs/);
  });

  it("addresses come out in canonical form", () => {
    expect(decodeNotice(line({ ...add, ips: ["fd05:0:0::0002"] })).op === "add" && (decodeNotice(line({ ...add, ips: ["fd05:0:0::0002"] })) as AddNotice).ips).toEqual(["fd05::2"]);
  });

  it.each([
    ["not JSON", "{"],
    ["an array", "[]"],
    ["another version", line({ ...add, version: 2 })],
    ["an unknown op", line({ ...add, op: "check" })],
    ["no pod", line({ ...add, pod: undefined })],
    ["an invalid namespace", line({ ...add, pod: { ...add.pod, namespace: "A B" } })],
    ["an invalid pod name", line({ ...add, pod: { ...add.pod, name: "../etc" } })],
    ["an invalid uid", line({ ...add, pod: { ...add.pod, uid: "u;1" } })],
    ["an invalid container id", line({ ...add, containerId: "-x" })],
    ["an invalid ifname", line({ ...add, ifname: "eth0/1" })],
    ["no addresses", line({ ...add, ips: [] })],
    ["three addresses", line({ ...add, ips: ["10.5.0.2", "10.5.0.3", "fd05::2"] })],
    ["two of one family", line({ ...add, ips: ["10.5.0.2", "10.5.0.3"] })],
    ["a legacy IPv4 spelling", line({ ...add, ips: ["10.1"] })],
    ["a CIDR", line({ ...add, ips: ["10.5.0.2/32"] })],
    ["an address that is not a string", line({ ...add, ips: [167772162] })],
    ["a bad waitMs", line({ ...add, waitMs: -5 })],
    ["a line too long", line({ ...add, pad: "x".repeat(5000) })],
  ])("a notice with %s is refused with NOTICE_INVALID and a sentence", (_, text) => {
    let err: unknown;
    try {
      decodeNotice(text);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "NOTICE_INVALID" });
    expect((err as Error).message.length).toBeGreaterThan(10);
  });

  it("replies round-trip; a reply of any other shape reads as not programmed", () => {
    const replies: NoticeReply[] = [{ ok: true, programmed: true, ms: 12.5 }, { ok: true, forgotten: true }, { ok: false, code: "UNKNOWN_POD", message: "m" }];
    for (const r of replies) expect(decodeReply(encodeReply(r).trim())).toEqual(r);
    expect(decodeReply("nope")).toMatchObject({ ok: false, code: "NOT_PROGRAMMED" });
    expect(decodeReply('{"ok":true}')).toMatchObject({ ok: false, code: "NOT_PROGRAMMED" });
  });
});

describe("the node file names the socket", () => {
  const base = { version: 1, nodeName: "n1", podCIDRs: ["10.5.0.0/24"], mtu: 1450, clusterCIDRs: ["10.5.0.0/16"] };
  it("relative to the node file's own directory, so both mount paths work", () => {
    const f = parseNodeFile(JSON.stringify({ ...base, daemonSocket: "daemon.sock" }), "/host/run/twill/node.json");
    expect(daemonSocketPath(f, "/host/run/twill/node.json")).toBe("/host/run/twill/daemon.sock");
    expect(daemonSocketPath(parseNodeFile(JSON.stringify(base), "p"), "/run/twill/node.json")).toBeUndefined();
    expect(() => parseNodeFile(JSON.stringify({ ...base, daemonSocket: 5 }), "p")).toThrow(/daemonSocket/);
  });
});

describe("notice-learned addresses in the daemon's pod view", () => {
  const pod = (ips: string[] = [], nodeName = "n1"): V1Pod => ({
    metadata: { name: "web", namespace: "x", uid: "u-1", labels: { app: "web" } },
    spec: { nodeName, containers: [] },
    status: ips.length ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {},
  });
  const cidrs = ["10.5.0.0/24", "fd05::/64"];

  it("stand in for a status without addresses; the reply waits for an apply holding them", async () => {
    const n = new PodNotices("n1", () => {});
    const reply = n.handle(add, 1000);
    const p = pod();
    const view = n.view([p], cidrs);
    expect(view[0]!.status).toMatchObject({ podIP: "10.5.0.2", podIPs: [{ ip: "10.5.0.2" }, { ip: "fd05::2" }] });
    expect(n.view([p], cidrs)[0]).toBe(view[0]);
    n.programmed(new Set(["10.5.0.2"]));
    expect(n.pending()).toBe(1);
    n.programmed(new Set(["10.5.0.2", "fd05::2"]));
    await expect(reply).resolves.toMatchObject({ ok: true, programmed: true });
  });

  it("the status wins once it has addresses", async () => {
    const n = new PodNotices("n1", () => {});
    void n.handle(add, 1000);
    n.view([pod()], cidrs);
    const rev = n.revision;
    const fromStatus = pod(["10.5.0.9"]);
    expect(n.view([fromStatus], cidrs)[0]).toBe(fromStatus);
    expect(n.revision).toBeGreaterThan(rev);
    expect(n.view([pod()], cidrs)[0]!.status).toEqual({});
    n.close();
  });

  it("a notice that disagrees with a status already written is refused", async () => {
    const n = new PodNotices("n1", () => {});
    const reply = n.handle(add, 1000);
    n.view([pod(["10.5.0.9"])], cidrs);
    await expect(reply).resolves.toMatchObject({ ok: false, code: "STATUS_DIFFERS" });
  });

  it("a pod on another node, or addresses outside this node's pod CIDRs, are refused", async () => {
    const n = new PodNotices("n1", () => {});
    const other = n.handle(add, 1000);
    n.view([pod([], "n2")], cidrs);
    await expect(other).resolves.toMatchObject({ ok: false, code: "POD_NOT_ON_NODE" });
    const outside = n.handle({ ...add, ips: ["10.6.0.2"] }, 1000);
    expect(n.view([pod()], cidrs)[0]!.status).toEqual({});
    await expect(outside).resolves.toMatchObject({ ok: false, code: "ADDRESS_OUTSIDE_POD_CIDR" });
  });

  it("a pod the watch has not delivered is held, then answered UNKNOWN_POD", async () => {
    const n = new PodNotices("n1", () => {});
    const reply = n.handle(add, 30);
    n.view([], cidrs);
    expect(n.pending()).toBe(1);
    await expect(reply).resolves.toMatchObject({ ok: false, code: "UNKNOWN_POD" });
  });

  it("DEL of the same sandbox, or the pod leaving the watch, forgets the addresses", () => {
    const n = new PodNotices("n1", () => {});
    void n.handle(add, 1000);
    n.view([pod()], cidrs);
    n.programmed(new Set(add.ips));
    void n.handle({ version: 1, op: "del", pod: add.pod, containerId: "other" }, 0);
    expect(n.view([pod()], cidrs)[0]!.status?.podIP).toBe("10.5.0.2");
    // A second attachment's DEL (same sandbox, another interface) leaves the pod's addresses alone.
    void n.handle({ version: 1, op: "del", pod: add.pod, containerId: add.containerId, ifname: "net1" }, 0);
    expect(n.view([pod()], cidrs)[0]!.status?.podIP).toBe("10.5.0.2");
    expect(decodeNotice(JSON.stringify({ version: 1, op: "del", pod: add.pod, containerId: add.containerId, ifname: "net1" }))).toMatchObject({ ifname: "net1" });
    expect(() => decodeNotice(JSON.stringify({ version: 1, op: "del", pod: add.pod, containerId: add.containerId, ifname: "a/b" }))).toThrow(/ifname/);
    void n.handle({ version: 1, op: "del", pod: add.pod, containerId: add.containerId }, 0);
    expect(n.view([pod()], cidrs)[0]!.status).toEqual({});
    void n.handle(add, 1000);
    n.view([pod()], cidrs);
    n.programmed(new Set(add.ips));
    n.view([], cidrs);
    expect(n.view([pod()], cidrs)[0]!.status).toEqual({});
  });
});
