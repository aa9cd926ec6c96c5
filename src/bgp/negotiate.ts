/**
 * What a session offers and what it ends up with, pure: our OPEN (capabilities from the peer
 * config: multiprotocol per family, route refresh, extended next hop on IPv6 sessions carrying
 * IPv4, graceful restart with the Forwarding bit, 4-octet AS), and the negotiated view the
 * RIB-out needs (families both sides support, AS4, extended next hop).
 *
 * RFC 5492, RFC 4760 §8 (no MP capability from the peer means IPv4 unicast only), RFC 6793,
 * RFC 4724 §3, RFC 8950, RFC 2918.
 */
import { Afi, type Capability, findCap, type OpenMessage, Safi, twoOctetAs } from "./codec/index.ts";
import type { PeerConfig } from "./config.ts";
import type { FsmConfig } from "./fsm.ts";
import type { SessionView } from "./ribout.ts";

/** The FSM's settings for one peer (RFC 4271 §8 timers and our OPEN's identity). */
export function fsmConfig(cfg: PeerConfig, bgpId: number): FsmConfig {
  return {
    passive: cfg.passive ?? false,
    connectRetrySeconds: cfg.connectTime ?? 5,
    maxBackoffSeconds: 60,
    holdTime: cfg.holdTime ?? 90,
    ...(cfg.keepaliveTime !== undefined ? { keepaliveTime: cfg.keepaliveTime } : {}),
    idleHoldSeconds: 1,
    open: {
      localAsn: cfg.myASN,
      localBgpId: bgpId,
      ...(cfg.peerASN !== undefined ? { peerAsn: cfg.peerASN } : {}),
      ...(cfg.dynamicASN !== undefined ? { dynamic: cfg.dynamicASN } : {}),
    },
  };
}

const afiOf = (f: 4 | 6) => (f === 4 ? Afi.IPV4 : Afi.IPV6);

export function buildOpen(
  cfg: PeerConfig,
  o: { bgpId: number; holdTime: number; restarting: boolean },
): OpenMessage {
  const fams = cfg.families ?? [4, 6];
  const caps: Capability[] = fams.map((f) => ({ kind: "multiprotocol", afi: afiOf(f), safi: Safi.UNICAST }));
  caps.push({ kind: "route-refresh" });
  if (fams.includes(4) && cfg.peerAddress.includes(":")) {
    caps.push({
      kind: "extended-next-hop",
      entries: [{ afi: Afi.IPV4, safi: Safi.UNICAST, nextHopAfi: Afi.IPV6 }],
    });
  }
  if (cfg.enableGracefulRestart) {
    caps.push({
      kind: "graceful-restart",
      restarting: o.restarting,
      notification: false,
      time: cfg.gracefulRestartTime ?? 120,
      // F bit: vipd's data path (the node's kernel, XDP) keeps forwarding while the speaker restarts.
      families: fams.map((f) => ({ afi: afiOf(f), safi: Safi.UNICAST, forwardingPreserved: true })),
    });
  }
  caps.push({ kind: "as4", asn: cfg.myASN });
  return {
    type: "open",
    version: 4,
    myAs: twoOctetAs(cfg.myASN),
    holdTime: o.holdTime,
    bgpId: o.bgpId,
    capabilities: caps,
  };
}

export function sessionView(
  cfg: PeerConfig,
  peer: OpenMessage,
  n: { peerAsn: number; as4: boolean; localAddress: string },
): SessionView {
  const ours = new Set<4 | 6>(cfg.families ?? [4, 6]);
  const theirs = new Set<4 | 6>();
  const mp = peer.capabilities.filter((c) => c.kind === "multiprotocol");
  if (mp.length === 0) theirs.add(4);
  for (const c of mp) {
    if (c.kind !== "multiprotocol" || c.safi !== Safi.UNICAST) continue;
    if (c.afi === Afi.IPV4) theirs.add(4);
    if (c.afi === Afi.IPV6) theirs.add(6);
  }
  const enh = findCap(peer.capabilities, "extended-next-hop");
  return {
    localAsn: cfg.myASN,
    peerAsn: n.peerAsn,
    as4: n.as4,
    families: new Set<4 | 6>([...ours].filter((f) => theirs.has(f))),
    localAddress: n.localAddress,
    extendedNextHop: enh?.entries.some((e) => e.afi === Afi.IPV4 && e.nextHopAfi === Afi.IPV6) ?? false,
  };
}
