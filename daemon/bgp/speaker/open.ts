import { myAsField } from "../codec/encode.ts";
import { BGP_VERSION, CapCode, type Capability, type Open } from "../codec/types.ts";
import { ipv4ToNumber, type SpeakerConfig } from "./config.ts";

// Our OPEN and what the two OPENs agree on (RFC 5492 capabilities).

export function ourOpen(cfg: SpeakerConfig, holdTime: number): Open {
  const families = [{ afi: 1, safi: 1 }, ...(cfg.nextHop6 ? [{ afi: 2, safi: 1 }] : [])];
  const caps: Capability[] = [
    ...families.map((f) => ({ code: CapCode.MULTIPROTOCOL, ...f }) as Capability),
    { code: CapCode.ROUTE_REFRESH },
    { code: CapCode.FOUR_OCTET_AS, asn: cfg.asn },
  ];
  if (cfg.gracefulRestart) {
    caps.push({
      code: CapCode.GRACEFUL_RESTART,
      restarting: cfg.gracefulRestart.restarting,
      restartTime: cfg.gracefulRestart.restartTime,
      // Forwarding is preserved: Twill leaves its kernel routes in place across a restart.
      families: families.map((f) => ({ ...f, forwardingPreserved: true })),
    });
  }
  return { type: "open", version: BGP_VERSION, myAs: myAsField(cfg.asn), holdTime, bgpId: ipv4ToNumber(cfg.routerId), capabilities: caps };
}

export interface Negotiated {
  fourOctetAs: boolean;
  /** "afi/safi" keys both sides announced (IPv4 unicast when the peer sent no multiprotocol capability, RFC 4760 §8). */
  families: Set<string>;
  /** The peer's graceful restart capability, if any. */
  peerRestart: { restartTime: number; forwardingPreserved: Set<string> } | undefined;
}

export function negotiate(ours: Open, theirs: Open): Negotiated {
  const has = (o: Open, code: number) => o.capabilities.some((c) => c.code === code);
  const mp = (o: Open) => {
    const list = o.capabilities.flatMap((c) => (c.code === CapCode.MULTIPROTOCOL && "afi" in c ? [`${c.afi}/${c.safi}`] : []));
    return new Set(list.length ? list : ["1/1"]);
  };
  const mine = mp(ours);
  const families = new Set([...mp(theirs)].filter((f) => mine.has(f)));
  const gr = theirs.capabilities.find((c) => c.code === CapCode.GRACEFUL_RESTART && "families" in c) as Extract<Capability, { code: 64 }> | undefined;
  return {
    fourOctetAs: has(ours, CapCode.FOUR_OCTET_AS) && has(theirs, CapCode.FOUR_OCTET_AS),
    families,
    peerRestart: gr && {
      restartTime: gr.restartTime,
      forwardingPreserved: new Set(gr.families.filter((f) => f.forwardingPreserved).map((f) => `${f.afi}/${f.safi}`)),
    },
  };
}
