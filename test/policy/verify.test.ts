import { describe, expect, it } from "vitest";
import type { NftDescription, NftSet } from "../../daemon/policy/compile.ts";
import { compareElements, compareListing, elementValue, kernelElementValue, parseListing } from "../../daemon/policy/verify.ts";

// The comparison a verify makes, without a kernel: nft's listings (as nft
// 1.0.6 prints them) against a description.

const peers: NftSet = { kind: "set", name: "in-10_1_0_2", type: "ipv4_addr . inet_proto . inet_service", flags: "interval", elements: ["10.0.0.0-10.243.255.255 . 6 . 443", "0.0.0.0-255.255.255.255 . 17 . 53", "10.1.0.3 . 6 . 9000-9100", "10.1.0.4 . 0-255 . 0-65535"] };
const ingress: NftSet = { kind: "map", name: "ingress", type: "ipv4_addr : verdict", elements: ["10.1.0.2 : jump in-10_1_0_2"] };
const ready6: NftSet = { kind: "set", name: "ready6", type: "ipv6_addr", elements: ["fd00:0:0:0::2"] };
const desc: NftDescription = {
  table: "twill-policy",
  sets: [ingress, peers],
  chains: [
    { name: "in-10_1_0_2", rules: ["ip saddr . meta l4proto . th dport @in-10_1_0_2 counter accept", "counter goto drop-ingress"] },
    { name: "forward", hook: "type filter hook forward priority filter; policy accept;", rules: ["ip daddr vmap @ingress"] },
  ],
};

const terse = `table inet other {
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t}
}
table inet twill-policy {
\tmap ingress {
\t\ttype ipv4_addr : verdict
\t}

\tset in-10_1_0_2 {
\t\ttype ipv4_addr . inet_proto . inet_service
\t\tflags interval
\t}

\tchain in-10_1_0_2 {
\t\tip saddr . meta l4proto . th dport @in-10_1_0_2 counter packets 12 bytes 1008 accept
\t\tcounter packets 3 bytes 180 goto drop-ingress
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tip daddr vmap @ingress
\t}
}
`;

describe("comparing nft's listing with the description", () => {
  it("a listing of exactly the described table shows no difference, whatever other tables it holds", () => {
    expect(compareListing(desc, parseListing(terse, "twill-policy"), true)).toEqual([]);
  });

  it("names a missing table, a flushed chain, a foreign rule, chain and block, and a changed hook", () => {
    expect(compareListing(desc, parseListing("", "twill-policy"), true)).toEqual(["table inet twill-policy is missing"]);
    const flushed = terse.replace("\t\tip daddr vmap @ingress\n", "");
    expect(compareListing(desc, parseListing(flushed, "twill-policy"), true)).toEqual(["chain forward holds 0 rules, want 1; rule 1 is missing"]);
    // A chain's rules are not in `list chains`: without rules only names and hooks count.
    expect(compareListing(desc, parseListing(flushed, "twill-policy"), false)).toEqual([]);
    const edited = terse
      .replace("\t\tcounter packets 3 bytes 180 goto drop-ingress\n", "\t\taccept\n\t\tcounter packets 3 bytes 180 goto drop-ingress\n")
      .replace("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;", "\tchain extra {\n\t}\n\tflowtable ft {\n\t\thook ingress priority filter\n\t}\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;");
    expect(compareListing(desc, parseListing(edited, "twill-policy"), true)).toEqual([
      'chain in-10_1_0_2 holds 3 rules, want 2; rule 2 is "accept"',
      'chain forward has hook "type filter hook forward priority filter; policy drop;"',
      "foreign chain extra",
      "foreign flowtable ft",
    ]);
  });

  it("compares elements as values: prefixes, ranges and protocol names as nft -j lists them", () => {
    const listed = [
      { concat: [{ range: ["10.0.0.0", "10.243.255.255"] }, "tcp", 443] },
      { concat: [{ prefix: { addr: "0.0.0.0", len: 0 } }, "udp", 53] },
      { concat: ["10.1.0.3", "tcp", { range: [9000, 9100] }] },
      { concat: ["10.1.0.4", { range: [0, 255] }, { range: [0, 65535] }] },
    ];
    expect(compareElements(peers, listed)).toEqual([]);
    expect(compareElements(ingress, [["10.1.0.2", { jump: { target: "in-10_1_0_2" } }]])).toEqual([]);
    expect(compareElements(ready6, ["fd00::2"])).toEqual([]);
    expect(kernelElementValue("set", { elem: { val: "10.1.0.9", counter: { packets: 0, bytes: 0 } } })).toBe(elementValue({ ...ready6, type: "ipv4_addr" }, "10.1.0.9"));
  });

  it("names missing and foreign elements, and a verdict that changed", () => {
    expect(compareElements(ingress, [])).toEqual(["map ingress lacks 1 of its 1 elements (10.1.0.2 : jump in-10_1_0_2)"]);
    expect(compareElements(ingress, [["10.1.0.2", "accept"]])).toEqual([
      "map ingress lacks 1 of its 1 elements (10.1.0.2 : jump in-10_1_0_2)",
      'map ingress holds 1 foreign elements (["10.1.0.2","accept"])',
    ]);
    expect(compareElements(peers, [{ concat: ["10.1.0.3", "tcp", 9000] }])).toEqual([
      "set in-10_1_0_2 lacks 4 of its 4 elements (10.0.0.0-10.243.255.255 . 6 . 443, 0.0.0.0-255.255.255.255 . 17 . 53, 10.1.0.3 . 6 . 9000-9100, …)",
      'set in-10_1_0_2 holds 1 foreign elements ({"concat":["10.1.0.3","tcp",9000]})',
    ]);
  });
});
