/**
 * Who is alive among the vipd nodes of a site: a pure state machine over heartbeats and clock
 * ticks (time is a parameter), with hysteresis so that a flapping or returning node cannot cause
 * two owners for one VIP.
 *
 * Per peer:   Unknown ──hb──▶ Rising ──(heard steadily for riseMs)──▶ Alive
 *             Alive ──(silent for deadAfterMs, or a "leaving" hb)──▶ Dead ──hb──▶ Rising …
 *             Rising ──(silent for deadAfterMs)──▶ Dead
 * Self:       not ready for `riseMs + deadAfterMs` after start, and again after this process was
 *             paused (a tick arrives later than deadAfterMs after the previous one: SIGSTOP, a
 *             stalled VM). In that time the others have either declared it dead or seen it
 *             rise; so by the time it claims anything they agree on who owns what.
 *
 * Partitions: each side sees the other Dead and elects its own owners, as every layer-2
 * protocol without a quorum must (the segment itself is split, so only one side is reachable
 * by any client on a given segment). When the partition heals, each side hears the other as
 * Rising, still owning what it took. So that the VIPs do not have two owners for riseMs, the
 * smaller side steps back at once: a node that hears more *ready* Rising peers than it counts
 * alive nodes (itself included) — or as many, when the lowest name among them sorts before the
 * lowest among its own — is not ready until they are Alive (hold reason "partition"). Then
 * every node sees the same members and the VIPs go back to their natural owners, once, after
 * riseMs. A node that (re)starts or resumes from a pause says it is not ready in its heartbeats,
 * so nobody steps back for it.
 */

import type { Decline, Heartbeat, HeartbeatSite } from "./heartbeat.ts";

export interface MembershipConfig {
  self: string;
  members: readonly string[];
  intervalMs: number;
  deadAfterMs: number;
  riseMs: number;
}

export type PeerState = "Unknown" | "Rising" | "Alive" | "Dead";

export interface PeerView {
  readonly name: string;
  readonly state: PeerState;
  readonly lastSeq: bigint;
  readonly lastHeard: number;
  readonly risingSince: number;
  readonly since: number;
  readonly flaps: number;
  /** The VIPs this peer declines (forced failover), from its latest heartbeat. */
  readonly declines: readonly Decline[];
  /** The peer said it is ready (owns VIPs) in its latest heartbeat. */
  readonly ready: boolean;
  /**
   * The sender's clock (its seq, µs of wall clock) of the latest heartbeat in which the peer said
   * it is settled (its data path matches its plan, gains announced); -1n: never.
   */
  readonly settledSeq: bigint;
  /** The peer reads heartbeat version 3 (its latest heartbeat set flag bit 3): it gets the site fields. */
  readonly readsSite: boolean;
  /** What its latest version-3 heartbeat said of its site snapshot (absent: none heard). */
  readonly site?: HeartbeatSite | undefined;
  /** The sender's clock (µs of wall clock, its seq) of that heartbeat; -1n: none. */
  readonly siteSeq: bigint;
}

export interface Membership {
  readonly cfg: MembershipConfig;
  readonly peers: ReadonlyMap<string, PeerView>;
  /** Self claims nothing before this time. */
  readonly readyAt: number;
  readonly lastTick: number;
  /** Why self is (or was last) not ready: "start" or "pause". */
  readonly holdReason: "start" | "pause";
}

export type HeartbeatDrop = "Self" | "UnknownNode" | "Replay";

/** A member not heard from yet: it must rise like any returning node. */
function unknownPeer(name: string, now: number): PeerView {
  return {
    name,
    state: "Unknown",
    lastSeq: -1n,
    lastHeard: 0,
    risingSince: 0,
    since: now,
    flaps: 0,
    declines: [],
    ready: false,
    settledSeq: -1n,
    readsSite: false,
    siteSeq: -1n,
  };
}

export function createMembership(cfg: MembershipConfig, now: number): Membership {
  const peers = new Map<string, PeerView>();
  for (const name of cfg.members) {
    if (name === cfg.self) continue;
    peers.set(name, unknownPeer(name, now));
  }
  return { cfg, peers, readyAt: now + cfg.riseMs + cfg.deadAfterMs, lastTick: now, holdReason: "start" };
}

/**
 * Replaces the member list (Kubernetes mode: Nodes come and go). Peers still listed keep their
 * state; new ones start Unknown (they must rise like any returning node); dropped ones are
 * forgotten. Self's readiness is not touched.
 */
export function setMembers(m: Membership, members: readonly string[], now: number): Membership {
  const want = new Set(members.filter((n) => n !== m.cfg.self));
  const same = want.size === m.peers.size && [...want].every((n) => m.peers.has(n));
  if (same) return m;
  const peers = new Map<string, PeerView>();
  for (const name of [...want].sort()) {
    peers.set(name, m.peers.get(name) ?? unknownPeer(name, now));
  }
  return { ...m, cfg: { ...m.cfg, members: [...members] }, peers };
}

function setPeer(m: Membership, p: PeerView): Membership {
  const peers = new Map(m.peers);
  peers.set(p.name, p);
  return { ...m, peers };
}

/** Takes one authenticated heartbeat. Replays (seq not above the last one taken) are dropped. */
export function onHeartbeat(
  m: Membership,
  hb: Heartbeat,
  now: number,
): { m: Membership; changed: boolean; drop?: HeartbeatDrop } {
  if (hb.node === m.cfg.self) return { m, changed: false, drop: "Self" };
  const p = m.peers.get(hb.node);
  if (p === undefined) return { m, changed: false, drop: "UnknownNode" };
  if (hb.seq <= p.lastSeq) return { m, changed: false, drop: "Replay" };
  if (hb.leaving) {
    const changed = p.state !== "Dead";
    return {
      m: setPeer(m, {
        ...p,
        lastSeq: hb.seq,
        state: "Dead",
        since: changed ? now : p.since,
        flaps: p.flaps + (p.state === "Alive" ? 1 : 0),
      }),
      changed,
    };
  }
  const declines = hb.declines ?? [];
  const declinesChanged = !sameDeclines(p.declines, declines);
  const ready = hb.ready === true;
  // Not a change by itself (every node replans on changes, and replanning flips its own flag):
  // the service tells the daemon only when it waits for this peer (MembershipService.awaitSettled).
  const settledSeq = hb.settled === true ? hb.seq : p.settledSeq;
  // The site fields are not a membership change either: the site layer reads them (src/site).
  const site = hb.site !== undefined ? { site: hb.site, siteSeq: hb.seq } : {};
  let next: PeerView = {
    ...p,
    lastSeq: hb.seq,
    lastHeard: now,
    declines,
    ready,
    settledSeq,
    readsSite: hb.readsSite === true,
    ...site,
  };
  if (p.state === "Unknown" || p.state === "Dead")
    next = { ...next, state: "Rising", risingSince: now, since: now };
  else if (p.state === "Rising" && now - p.risingSince >= m.cfg.riseMs)
    next = { ...next, state: "Alive", since: now };
  return {
    m: setPeer(m, next),
    changed:
      next.state !== p.state ||
      (declinesChanged && next.state === "Alive") ||
      (ready !== p.ready && (next.state === "Rising" || next.state === "Alive")),
  };
}

function sameDeclines(a: readonly Decline[], b: readonly Decline[]): boolean {
  return a.length === b.length && a.every((d, i) => d.ip === b[i]?.ip && d.to === b[i]?.to);
}

/** The declines of every Alive peer (a dead or rising peer owns nothing, so its declines do not matter). */
export function peerDeclines(m: Membership): Map<string, readonly Decline[]> {
  const out = new Map<string, readonly Decline[]>();
  for (const p of m.peers.values())
    if (p.state === "Alive" && p.declines.length > 0) out.set(p.name, p.declines);
  return out;
}

/** Advances the clock: silent peers die, steady risers become alive, a pause is detected. */
export function tick(m: Membership, now: number): { m: Membership; changed: boolean; paused: boolean } {
  const gap = now - m.lastTick;
  if (gap > m.cfg.deadAfterMs) {
    // We were not running for a while: what we knew is stale, and the others may have moved on.
    const peers = new Map<string, PeerView>();
    for (const [n, p] of m.peers) peers.set(n, { ...p, state: "Unknown", since: now });
    return {
      m: { ...m, peers, lastTick: now, readyAt: now + m.cfg.riseMs + m.cfg.deadAfterMs, holdReason: "pause" },
      changed: true,
      paused: true,
    };
  }
  let changed = false;
  const peers = new Map(m.peers);
  for (const [n, p] of m.peers) {
    if ((p.state === "Alive" || p.state === "Rising") && now - p.lastHeard > m.cfg.deadAfterMs) {
      peers.set(n, { ...p, state: "Dead", since: now, flaps: p.flaps + (p.state === "Alive" ? 1 : 0) });
      changed = true;
    } else if (p.state === "Rising" && now - p.risingSince >= m.cfg.riseMs) {
      peers.set(n, { ...p, state: "Alive", since: now });
      changed = true;
    }
  }
  const becameReady = m.lastTick < m.readyAt && now >= m.readyAt;
  return { m: { ...m, peers, lastTick: now }, changed: changed || becameReady, paused: false };
}

/**
 * True when a partition is healing and this node is on the smaller side: it hears more ready
 * Rising peers than it has alive nodes (itself included), or as many and the lowest name among
 * them sorts first. It then owns nothing until those peers are Alive.
 */
export function yieldsToPartition(m: Membership): boolean {
  const rising = [...m.peers.values()].filter((p) => p.state === "Rising" && p.ready).map((p) => p.name);
  if (rising.length === 0) return false;
  const alive = [m.cfg.self, ...[...m.peers.values()].filter((p) => p.state === "Alive").map((p) => p.name)];
  if (rising.length !== alive.length) return rising.length > alive.length;
  const min = (xs: string[]) => [...xs].sort()[0] as string;
  return min(rising) < min(alive);
}

export function isReady(m: Membership, now: number): boolean {
  return now >= m.readyAt && !yieldsToPartition(m);
}

/** Why this node is not ready now (undefined when it is). */
export function notReadyReason(m: Membership, now: number): "start" | "pause" | "partition" | undefined {
  if (now < m.readyAt) return m.holdReason;
  return yieldsToPartition(m) ? "partition" : undefined;
}

/**
 * Nodes that count for the election: self (when ready) and every Alive peer that says it is
 * ready. A peer still holding back (start, pause, partition) is not a candidate yet, so the node
 * covering for it hands its VIPs back exactly when it starts answering, not riseMs earlier.
 */
export function aliveNodes(m: Membership, now: number): string[] {
  const out = [...m.peers.values()].filter((p) => p.state === "Alive" && p.ready).map((p) => p.name);
  if (isReady(m, now)) out.push(m.cfg.self);
  return out.sort();
}
