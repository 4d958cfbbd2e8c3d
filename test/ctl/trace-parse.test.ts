import { describe, expect, it } from "vitest";
import { parseTrace } from "../../daemon/api/trace.ts";

// `nft monitor trace` output as nft 1.0.6 prints it (captured in the lab; the
// kube-proxy lines as its nftables mode's table prints them) into steps.

const OUTPUT = `trace id 6a1c0c9f inet twill-trace pre packet: iif "tw0a1b2c" ether saddr 02:00:00:00:00:01 ip saddr 10.244.0.1 ip daddr 10.96.0.20 tcp dport 80 tcp flags == syn
trace id 6a1c0c9f inet twill-trace pre rule ip saddr 10.244.0.1 ip daddr 10.96.0.20 meta l4proto tcp th dport 80 meta nftrace set 1 (verdict continue)
trace id 6a1c0c9f inet twill-trace pre policy accept
trace id 6a1c0c9f ip kube-proxy nat-prerouting rule jump services (verdict jump services)
trace id 6a1c0c9f ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-ULMVA6XW-echo/echo/tcp/http)
trace id 6a1c0c9f ip kube-proxy endpoint-5OJB2KTY-echo/echo/tcp/http__10.244.1.3/8080 rule meta l4proto tcp dnat ip to 10.244.1.3:8080 (verdict accept)
trace id 6a1c0c9f inet twill-policy forward rule ip daddr vmap @ingress (verdict jump in-10_244_1_3)
trace id 6a1c0c9f inet twill-policy in-10_244_1_3 rule counter packets 0 bytes 0 goto drop-ingress (verdict goto drop-ingress)
trace id 6a1c0c9f inet twill-policy drop-ingress rule limit rate 50/second burst 100 packets log prefix "ingress" group 2718 (verdict continue)
trace id 6a1c0c9f inet twill-policy drop-ingress rule drop (verdict drop)
trace id 7b2d1da0 inet twill-trace pre packet: iif "tw0a1b2c" ip saddr 10.244.0.1 ip daddr 10.96.0.20 tcp dport 80 tcp flags == syn
trace id 7b2d1da0 inet twill-policy drop-ingress rule drop (verdict drop)
`;

describe("parseTrace", () => {
  it("keeps the first packet's rules in every table (kube-proxy's too), leaves out Twill's trace table, counts the packets", () => {
    const { steps, packets } = parseTrace(OUTPUT, "node1");
    expect(packets).toBe(2);
    expect(steps.map((s) => `${s.table} ${s.chain}: ${s.verdict}`)).toEqual([
      "ip kube-proxy nat-prerouting: jump services",
      "ip kube-proxy services: goto service-ULMVA6XW-echo/echo/tcp/http",
      "ip kube-proxy endpoint-5OJB2KTY-echo/echo/tcp/http__10.244.1.3/8080: accept",
      "inet twill-policy forward: jump in-10_244_1_3",
      "inet twill-policy in-10_244_1_3: goto drop-ingress",
      "inet twill-policy drop-ingress: continue",
      "inet twill-policy drop-ingress: drop",
    ]);
    expect(steps[2]).toMatchObject({ node: "node1", rule: "meta l4proto tcp dnat ip to 10.244.1.3:8080" });
  });
});
