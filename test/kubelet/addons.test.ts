import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { corefile, corednsObjects } from "../../lab/addons/coredns.ts";
import { echoObjects, echoReplicas } from "../../lab/addons/echo.ts";
import { kubeProxyConfig, programsEndpoint } from "../../lab/addons/kube-proxy.ts";
import { archiveDigest, seedKey } from "../../lab/kubelet/image-seed.ts";
import { ociArchive, tar } from "../../lab/kubelet/images.ts";
import { parseEcho, parseNslookup } from "../../lab/services.ts";

// The cluster add-ons' pure parts: what the lab writes and how it reads its
// probes' answers. No lab: these run in a plain process.

const dir = mkdtempSync(join(tmpdir(), "twill-addons-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("kube-proxy's configuration", () => {
  const cfg = parse(kubeProxyConfig({ name: "node2", ip: "172.30.0.12", dir }, "/k/kubeconfig", "nftables", "10.244.0.0/16")) as Record<string, unknown> & { conntrack: Record<string, number> };

  it("leaves the machine-wide conntrack limit alone and keeps its OOM score", () => {
    expect(cfg.conntrack).toEqual({ maxPerCore: 0, min: 0 });
    expect(cfg.oomScoreAdj).toBe(0);
  });

  it("names the node, serves health on its address and treats the cluster CIDR as local", () => {
    expect(cfg).toMatchObject({ kind: "KubeProxyConfiguration", mode: "nftables", hostnameOverride: "node2", bindAddress: "172.30.0.12", healthzBindAddress: "172.30.0.12:10256", metricsBindAddress: "127.0.0.1:10249", clusterCIDR: "10.244.0.0/16", detectLocalMode: "ClusterCIDR" });
  });

  it("finds an endpoint the way each mode's DNAT rules spell it", () => {
    expect(programsEndpoint("numgen random mod 2 vmap { 0 : 10.244.1.1 . 8080 }", "nftables", "10.244.1.1", 8080)).toBe(true);
    expect(programsEndpoint("-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.244.1.1:8080", "iptables", "10.244.1.1", 8080)).toBe(true);
    // Twill's proxy: a rule's DNAT; 10.244.1.1:80 is not 10.244.1.1:8080.
    expect(programsEndpoint("numgen random mod 2 0 meta l4proto tcp dnat ip to 10.244.1.2:8080\n", "twill", "10.244.1.2", 8080)).toBe(true);
    expect(programsEndpoint("meta l4proto tcp dnat ip to 10.244.1.1:8080\n", "twill", "10.244.1.1", 8080)).toBe(true);
    expect(programsEndpoint("meta l4proto tcp dnat ip to 10.244.1.1:8080\n", "twill", "10.244.1.1", 80)).toBe(false);
  });
});

describe("CoreDNS and the echo Services", () => {
  it("serves the cluster's zones and forwards nowhere", () => {
    const c = corefile();
    expect(c).toContain("kubernetes cluster.local in-addr.arpa ip6.arpa");
    expect(c).not.toMatch(/\bforward\b/);
  });

  it("puts kube-dns at the address kubelet gives pods, in front of the kube-dns pods", () => {
    const svc = corednsObjects().find((o) => o.kind === "Service") as unknown as { spec: { clusterIP: string; selector: Record<string, string>; ports: { port: number; protocol: string }[] } };
    expect(svc.spec.clusterIP).toBe("10.96.0.10");
    expect(svc.spec.selector).toEqual({ "k8s-app": "kube-dns" });
    expect(svc.spec.ports.map((p) => `${p.port}/${p.protocol}`)).toEqual(["53/UDP", "53/TCP", "9153/TCP"]);
  });

  it("leaves one node without an echo pod (at least one pod), and has both NodePort traffic policies", () => {
    expect([1, 2, 3, 5].map(echoReplicas)).toEqual([1, 1, 2, 4]);
    const policies = echoObjects(3)
      .filter((o) => o.kind === "Service")
      .map((o) => (o as unknown as { spec: { type: string; externalTrafficPolicy?: string } }).spec)
      .map((s) => `${s.type}${s.externalTrafficPolicy ? `/${s.externalTrafficPolicy}` : ""}`);
    expect(policies).toEqual(["ClusterIP", "NodePort/Cluster", "NodePort/Local"]);
  });
});

describe("the probes' answers", () => {
  it("reads the echo page whether httpd saw an IPv4-mapped peer or a plain one", () => {
    expect(parseEcho("echo-5c4f68f895-cl7dv [::ffff:10.244.0.2]\n")).toEqual({ server: "echo-5c4f68f895-cl7dv", client: "10.244.0.2" });
    expect(parseEcho("echo-a 172.30.0.1")).toEqual({ server: "echo-a", client: "172.30.0.1" });
    expect(parseEcho("")).toBeUndefined();
    expect(parseEcho("wget: download timed out")).toBeUndefined();
  });

  it("takes nslookup's answer for the name, not the server's own address", () => {
    const out = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\tkubernetes.default.svc.cluster.local\nAddress: 10.96.0.1\n\n";
    expect(parseNslookup(out, "kubernetes.default.svc.cluster.local")).toBe("10.96.0.1");
    expect(parseNslookup("Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n** server can't find x: NXDOMAIN\n", "x")).toBeUndefined();
  });
});

describe("the image seed's key", () => {
  const archive = (name: string, content: string) => {
    const path = join(dir, `${name.replace(/\W/g, "_")}-${content.length}.tar`);
    writeFileSync(path, ociArchive({ name }, tar([{ name: "f", type: "file", mode: 0o644, data: Buffer.from(content) }])));
    return path;
  };

  it("is the images' names and manifest digests: the same for the same images in any order, new for a changed one", () => {
    const a = archive("docker.io/x/a:1", "a");
    const b = archive("docker.io/x/b:1", "b");
    expect(archiveDigest(a)).toMatch(/^docker\.io\/x\/a:1@sha256:[0-9a-f]{64}$/);
    expect(seedKey([a, b])).toBe(seedKey([b, a]));
    const before = seedKey([a, b]);
    const b2 = archive("docker.io/x/b:1", "b changed");
    expect(seedKey([a, b2])).not.toBe(before);
  });
});
