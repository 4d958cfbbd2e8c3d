import { describe, expect, it } from "vitest";
import { vethMacs } from "../../cni/attach/names.ts";
import { planAttachment, type PodState } from "../../cni/attach/plan.ts";

// What a new attachment may add, decided from the pod's namespace before anything is created.

const empty: PodState = { links: [{ index: 1, name: "lo", mac: "00:00:00:00:00:00" }], routes: [] };
/** The pod after Twill's eth0 attachment of container c1: its link, gateway route and default route. */
const withEth0: PodState = {
  links: [...empty.links, { index: 2, name: "eth0", mac: vethMacs("c1", "eth0").pod }],
  routes: [
    { dst: "169.254.1.1/32", oif: 2 },
    { dst: "0.0.0.0/0", oif: 2 },
  ],
};
const req = (ifname: string, o: Partial<Parameters<typeof planAttachment>[1]> = {}) => ({ containerId: "c1", ifname, ips: ["10.0.0.5"], routes: [], defaultRoute: "auto" as const, ...o });

describe("planAttachment", () => {
  it("the first attachment takes the default route and speaks for the pod", () => {
    expect(planAttachment(empty, req("eth0"))).toEqual({ retry: false, primary: true, sharedGateway: false, routes: [{ dst: "0.0.0.0/0" }] });
  });

  it("a second one gets no default route, a gateway route of its own, and is not primary", () => {
    expect(planAttachment(withEth0, req("net1"))).toEqual({ retry: false, primary: false, sharedGateway: true, routes: [] });
  });

  it("a retried ADD of the same attachment replaces its own routes instead of colliding with them", () => {
    expect(planAttachment(withEth0, req("eth0"))).toEqual({ retry: true, primary: true, sharedGateway: false, routes: [{ dst: "0.0.0.0/0" }] });
  });

  it("defaultRoute true where another attachment holds it, or a route another holds, is refused naming the device", () => {
    expect(() => planAttachment(withEth0, req("net1", { defaultRoute: true }))).toThrow(/IPv4 default route already goes via eth0/);
    expect(() => planAttachment(withEth0, req("net1", { routes: [{ dst: "0.0.0.0/0" }] }))).toThrow(/route 0.0.0.0\/0 is already in the pod via eth0/);
  });

  it("defaultRoute false adds none; a dual-stack attachment after an IPv4-only one takes only IPv6's", () => {
    expect(planAttachment(empty, req("eth0", { defaultRoute: false })).routes).toEqual([]);
    expect(planAttachment(withEth0, req("net1", { ips: ["10.0.0.5", "fd00::5"] })).routes).toEqual([{ dst: "::/0" }]);
  });

  it("an interface of that name that is not this container's Twill attachment is refused", () => {
    const foreign: PodState = { ...empty, links: [...empty.links, { index: 3, name: "net1", mac: "02:00:00:00:00:01" }] };
    expect(() => planAttachment(foreign, req("net1"))).toThrow(/interface net1 already exists/);
  });
});
