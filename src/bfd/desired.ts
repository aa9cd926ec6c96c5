/**
 * From MetalLB intent to BFD sessions: every BGPPeer (already filtered to this node) that names a
 * `bfdProfile` gets one session keyed by the peer's name, single-hop unless `ebgpMultiHop`, from
 * `sourceAddress` when set, with the profile's timers (RFC 5880/5881/5883 via BfdManager).
 *
 * Pure. Problems (a missing profile, an interface-only peer) come back as messages and the peer is
 * left without BFD, so one bad object does not take the others down.
 */

import type { BFDProfile, BGPPeer } from "../config/schemas.ts";
import type { DesiredSession } from "./manager.ts";

export interface DesiredBfd {
  sessions: DesiredSession[];
  problems: string[];
}

export function bfdSessionsFor(peers: BGPPeer[], profiles: BFDProfile[]): DesiredBfd {
  const byName = new Map(profiles.map((p) => [p.metadata.name, p]));
  const sessions: DesiredSession[] = [];
  const problems: string[] = [];
  for (const peer of peers) {
    const name = peer.metadata.name;
    const pname = peer.spec.bfdProfile;
    if (!pname) continue;
    const profile = byName.get(pname);
    if (!profile) {
      problems.push(`BGPPeer ${name}: BFDProfile "${pname}" does not exist; BFD not started for it`);
      continue;
    }
    if (!peer.spec.peerAddress) {
      problems.push(`BGPPeer ${name}: BFD needs a peerAddress (interface peers are not supported)`);
      continue;
    }
    const s: DesiredSession = {
      key: name,
      peer: peer.spec.peerAddress,
      multihop: peer.spec.ebgpMultiHop ?? false,
      profile: profile.spec,
    };
    if (peer.spec.sourceAddress) s.local = peer.spec.sourceAddress;
    sessions.push(s);
  }
  return { sessions, problems };
}
