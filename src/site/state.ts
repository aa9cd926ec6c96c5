/**
 * The site state machine: how the appliance members of one site agree on one configuration and
 * one assignment table. Pure reducer — `step(state, event) → { state, effects }` — with time
 * passed in every event and the allocator passed in as a pure function; the driver
 * (src/site/driver.ts) carries out the effects (send, persist, apply, reply, log) in order.
 *
 * The rules (README → Site says the same for users):
 * - Who allocates: the member with the lowest name among the members that are alive on the site
 *   channel and ready (hold the site's snapshot and finished starting), this one included. Names
 *   do not change across restarts, so the choice is stable; a member that restarts becomes
 *   ready — and can allocate again — only after it holds the site's newest snapshot.
 * - Starting: a member announces nothing (`ready` false) until it has heard every other member
 *   or waited `startupMs`, and holds no older snapshot than an alive member has. It then holds
 *   the newest one it saw; if no member holds any (a new site), the lowest-named alive member
 *   makes generation 1 from its own file, and the others adopt it. Its data path is handed
 *   (`apply`) what it holds only then: a snapshot adopted while starting is persisted at once and
 *   applied when the member becomes ready.
 * - Writes: a PUT on any ready member goes to the allocator, which checks the base generation
 *   (If-Match), allocates from the table it holds (so a new allocator continues from the table it
 *   adopted and a failover re-addresses nothing), makes generation + 1, persists, applies and
 *   pushes the snapshot to every member. Two PUTs with the same base: the first wins, the other
 *   is Stale (HTTP 412).
 * - Adoption: a member adopts any snapshot newer than its own (table.ts: higher generation, then
 *   lower allocator name) — exactly, the allocator's table row for row — persists it before
 *   applying, and acknowledges it. Pulled too: a member that hears of a newer version asks for it.
 * - Quorum: a write is taken only by a member that sees a majority of the site's members alive on
 *   the site channel (floor(n/2) + 1 of the configured members, itself included), checked by the
 *   member the PUT reached and again by the allocator; otherwise it is refused (NoQuorum) and
 *   nothing changes. So of two sides of a partition at most one takes writes (none when neither
 *   holds a majority: a two-member site split in two).
 * - Partitions: each side keeps serving what it holds and elects its own allocator; only the
 *   majority side takes writes. When it heals, the newest snapshot wins on every member; a
 *   member whose snapshot was not an ancestor of the winner's (two sides that both made a
 *   snapshot: two new sites bootstrapped apart, or a write the allocator took in the moments
 *   before it noticed the split) records a heal: every Service whose addresses change is logged,
 *   counted and listed (lastHeal).
 * - Freshness: what a peer holds (generation, allocator, digest) is told by its site status and,
 *   from members that send heartbeat version 3, by its membership heartbeats; the view and the
 *   consistency check take the one the peer sent last (withHeartbeats, src/site/view.ts).
 */

import type { SiteMessage } from "./codec.ts";
import type {
  Effect,
  PeerView,
  ProposeResult,
  SiteEvent,
  SiteOptions,
  SiteState,
  Step,
} from "./state-types.ts";
import {
  addressChanges,
  descends,
  newer,
  nextSnapshot,
  type Snapshot,
  sameVersion,
  tableDigest,
  versionId,
} from "./table.ts";

export type {
  AllocateFn,
  Effect,
  HealReport,
  PeerView,
  Pending,
  ProposeResult,
  SiteEvent,
  SiteOptions,
  SiteState,
  Step,
} from "./state-types.ts";

/** A member starting, with what it persisted (if anything) and the site objects of its file. */
export function createSite(now: number, persisted: Snapshot | undefined, local: string): SiteState {
  return {
    phase: "starting",
    startedAt: now,
    now,
    snapshot: persisted,
    local,
    peers: new Map(),
    pending: new Map(),
    lastStatus: Number.NEGATIVE_INFINITY,
    counters: { adopted: 0, heals: 0, readdressed: 0, committed: 0, stale: 0, refused: 0, noQuorum: 0 },
  };
}

export function isAlive(p: PeerView, now: number, o: SiteOptions): boolean {
  return now - p.lastHeard <= o.deadMs;
}

export function others(o: SiteOptions): string[] {
  return o.members.filter((m) => m !== o.self);
}

/** The allocating member as this one sees it: lowest name among alive, ready members. */
export function allocatorOf(s: SiteState, o: SiteOptions): string | undefined {
  const names: string[] = s.phase === "ready" ? [o.self] : [];
  for (const p of s.peers.values()) if (p.ready && isAlive(p, s.now, o)) names.push(p.name);
  names.sort();
  return names[0];
}

/** Alive members, this one included (sorted). */
export function aliveMembers(s: SiteState, o: SiteOptions): string[] {
  return [o.self, ...[...s.peers.values()].filter((p) => isAlive(p, s.now, o)).map((p) => p.name)].sort();
}

/** Writes need this many alive members (this one included): a majority of the configured ones. */
export function quorumSize(o: SiteOptions): number {
  return Math.floor(o.members.length / 2) + 1;
}

export interface Quorum {
  ok: boolean;
  /** Alive members on the site channel, this one included. */
  alive: string[];
  needed: number;
  members: number;
}

/**
 * Whether this member sees a majority of the site's members alive (a single member always does).
 * With `heard` (the members live membership hears, which notices a silent member within
 * `cluster.deadAfterMs`, sooner than the site channel), a member counts only when both hear it.
 */
export function quorum(s: SiteState, o: SiteOptions, heard?: readonly string[]): Quorum {
  const both = heard === undefined ? undefined : new Set(heard);
  const alive = aliveMembers(s, o).filter((m) => m === o.self || both === undefined || both.has(m));
  const needed = quorumSize(o);
  return { ok: alive.length >= needed, alive, needed, members: o.members.length };
}

function noQuorumMessage(self: string, q: Quorum): string {
  return `${self} sees ${q.alive.length} of the site's ${q.members} members alive (${q.alive.join(", ")}); a write needs ${q.needed}: nothing changed`;
}

/**
 * Consistent: this member is ready and every alive member reports the same version and table
 * digest. Members that cannot be heard are not counted (they catch up when they return).
 */
export function isConsistent(s: SiteState, o: SiteOptions): boolean {
  if (s.phase !== "ready" || s.snapshot === undefined) return false;
  const digest = tableDigest(s.snapshot.table);
  for (const p of s.peers.values()) {
    if (!isAlive(p, s.now, o)) continue;
    if (!p.ready || !sameVersion(p.version, s.snapshot) || p.digest !== digest) return false;
  }
  return true;
}

class Builder {
  effects: Effect[] = [];
  constructor(
    public s: SiteState,
    readonly o: SiteOptions,
  ) {}
  set(patch: Partial<SiteState>): void {
    this.s = { ...this.s, ...patch };
  }
  peer(name: string, patch: Partial<PeerView>): void {
    const prev = this.s.peers.get(name) ?? {
      name,
      lastHeard: Number.NEGATIVE_INFINITY,
      ready: false,
      lastRequest: Number.NEGATIVE_INFINITY,
    };
    const peers = new Map(this.s.peers);
    peers.set(name, { ...prev, ...patch });
    this.set({ peers });
  }
  count(k: keyof SiteState["counters"], n = 1): void {
    this.set({ counters: { ...this.s.counters, [k]: this.s.counters[k] + n } });
  }
  send(to: string, msg: SiteMessage): void {
    this.effects.push({ type: "send", to, msg });
  }
  log(level: "info" | "warn", message: string, fields: Record<string, unknown> = {}): void {
    this.effects.push({ type: "log", level, message, fields });
  }
  status(): SiteMessage {
    const snap = this.s.snapshot;
    return {
      type: "status",
      generation: snap?.generation ?? 0,
      allocator: snap?.allocator ?? "",
      digest: snap ? tableDigest(snap.table) : "",
      ready: this.s.phase === "ready",
    };
  }
  broadcast(msg: SiteMessage): void {
    for (const m of others(this.o)) this.send(m, msg);
  }
  /**
   * Holds `snap` from now on: persisted first, then applied — at once when ready; a starting
   * member applies what it holds when it becomes ready (`ready`), not before: until then its data
   * path runs nothing of the site, and an apply would report a version it does not run.
   */
  hold(snap: Snapshot): void {
    this.set({ snapshot: snap });
    this.effects.push({ type: "persist", snapshot: snap });
    if (this.s.phase === "ready") this.effects.push({ type: "apply", snapshot: snap });
  }
  /** Ends the start: the data path gets the snapshot this member holds (persisted already). */
  ready(snap: Snapshot): void {
    this.set({ phase: "ready" });
    this.effects.push({ type: "apply", snapshot: snap });
  }
  reply(id: string, replyTo: string | undefined, result: ProposeResult): void {
    if (replyTo === undefined) this.effects.push({ type: "reply", id, result });
    else this.send(replyTo, { type: "result", id, ...result });
  }
}

function adopt(b: Builder, snap: Snapshot, from: string, sent: bigint): void {
  const ours = b.s.snapshot;
  const changes = ours ? addressChanges(ours.table, snap.table) : [];
  const heal = ours !== undefined && !descends(snap, ours);
  b.hold(snap);
  b.count("adopted");
  b.log("info", "site snapshot adopted", {
    from,
    generation: snap.generation,
    allocator: snap.allocator,
    was: ours ? versionId(ours) : null,
    digest: tableDigest(snap.table),
  });
  if (heal && ours !== undefined) {
    b.count("heals");
    b.count("readdressed", changes.length);
    b.set({ lastHeal: { at: b.s.now, from: versionId(ours), to: versionId(snap), changes } });
    b.log("warn", "partition healed: this member's snapshot lost to a newer one", {
      lost: versionId(ours),
      won: versionId(snap),
      readdressed: changes.length,
    });
  }
  for (const c of changes)
    b.log(
      heal ? "warn" : "info",
      heal ? "Service re-addressed by the partition heal" : "Service re-addressed",
      {
        service: c.service,
        from: c.from,
        to: c.to,
      },
    );
  b.send(from, {
    type: "ack",
    generation: snap.generation,
    allocator: snap.allocator,
    digest: tableDigest(snap.table),
  });
  b.peer(from, {
    version: { generation: snap.generation, allocator: snap.allocator },
    digest: tableDigest(snap.table),
    versionSent: sent,
    versionVia: "site",
  });
}

/** The allocator takes a write: checks the base, allocates from its table, pushes generation + 1. */
function commit(
  b: Builder,
  id: string,
  base: number,
  config: string,
  replyTo: string | undefined,
  heard: readonly string[] | undefined,
): void {
  const self = b.o.self;
  const snap = b.s.snapshot;
  const gen = snap?.generation ?? 0;
  if (b.s.phase !== "ready" || snap === undefined || allocatorOf(b.s, b.o) !== self) {
    b.count("refused");
    b.reply(id, replyTo, {
      ok: false,
      generation: gen,
      allocator: snap?.allocator ?? "",
      error: "NotReady",
      message: `${self} does not allocate for the site now; try again`,
    });
    return;
  }
  const q = quorum(b.s, b.o, heard);
  if (!q.ok) {
    b.count("noQuorum");
    b.reply(id, replyTo, {
      ok: false,
      generation: gen,
      allocator: snap.allocator,
      error: "NoQuorum",
      message: noQuorumMessage(self, q),
    });
    return;
  }
  if (base !== 0 && base !== gen) {
    b.count("stale");
    b.reply(id, replyTo, {
      ok: false,
      generation: gen,
      allocator: snap.allocator,
      error: "Stale",
      message: `the site configuration is at generation ${gen}, not ${base}`,
    });
    return;
  }
  const r = b.o.allocate(config, snap.table);
  if (!r.ok) {
    b.count("refused");
    b.reply(id, replyTo, {
      ok: false,
      generation: gen,
      allocator: snap.allocator,
      error: "Refused",
      message: r.message,
    });
    return;
  }
  const next = nextSnapshot(snap, self, config, r.table);
  b.hold(next);
  b.count("committed");
  b.log("info", "site configuration committed", {
    generation: next.generation,
    digest: tableDigest(next.table),
    via: replyTo ?? self,
  });
  for (const c of addressChanges(snap.table, next.table))
    b.log("info", "Service re-addressed", { service: c.service, from: c.from, to: c.to });
  b.broadcast({ type: "snapshot", snapshot: next });
  b.reply(id, replyTo, { ok: true, generation: next.generation, allocator: self });
}

/** Asks `peer` for its snapshot if it holds a newer one and was not asked recently. */
function maybeRequest(b: Builder, peer: string): void {
  const p = b.s.peers.get(peer);
  if (p === undefined || !newer(p.version, b.s.snapshot)) return;
  if (b.s.now - p.lastRequest < b.o.requestMs) return;
  b.peer(peer, { lastRequest: b.s.now });
  b.send(peer, { type: "request" });
}

function onTick(b: Builder): void {
  const o = b.o;
  const now = b.s.now;
  // Leave the start once every other member was heard or the wait is over, unless an alive
  // member holds something newer (asked for below; adopted when it arrives).
  if (b.s.phase === "starting") {
    const heardAll = others(o).every((m) => (b.s.peers.get(m)?.lastHeard ?? -1) >= b.s.startedAt);
    const waited = now - b.s.startedAt >= o.startupMs;
    const alive = [...b.s.peers.values()].filter((p) => isAlive(p, now, o));
    const behind = alive.some((p) => newer(p.version, b.s.snapshot));
    if ((heardAll || waited) && !behind) {
      if (b.s.snapshot !== undefined) {
        b.ready(b.s.snapshot);
        b.log("info", "site: ready", { generation: b.s.snapshot.generation, alone: alive.length === 0 });
      } else if (!alive.some((p) => p.ready) && [o.self, ...alive.map((p) => p.name)].sort()[0] === o.self) {
        // A new site: nobody holds anything, and this is the lowest-named alive member.
        const r = o.allocate(b.s.local, undefined);
        if (r.ok) {
          const first = nextSnapshot(undefined, o.self, b.s.local, r.table);
          b.hold(first);
          b.ready(first);
          b.log("info", "site: new site, generation 1 made from this member's file", {
            members: aliveMembers(b.s, o),
          });
          b.broadcast({ type: "snapshot", snapshot: first });
        } else {
          b.log("warn", "site: cannot allocate from this member's file", { error: r.message });
        }
      }
    }
  }
  for (const p of b.s.peers.values()) if (isAlive(p, now, o)) maybeRequest(b, p.name);
  if (now - b.s.lastStatus >= o.statusMs) {
    b.set({ lastStatus: now });
    b.broadcast(b.status());
  }
  for (const [id, p] of b.s.pending)
    if (now - p.at >= o.proposeTimeoutMs) {
      const pending = new Map(b.s.pending);
      pending.delete(id);
      b.set({ pending });
      b.effects.push({
        type: "reply",
        id,
        result: {
          ok: false,
          generation: b.s.snapshot?.generation ?? 0,
          allocator: b.s.snapshot?.allocator ?? "",
          error: "NotReady",
          message: "the allocating member did not answer",
        },
      });
    }
  const alloc = allocatorOf(b.s, o);
  if (alloc !== b.s.allocatorSeen) {
    b.log("info", "site: allocating member", { allocator: alloc ?? null, was: b.s.allocatorSeen ?? null });
    b.set({ allocatorSeen: alloc });
  }
}

function onMessage(
  b: Builder,
  from: string,
  msg: SiteMessage,
  sent: bigint,
  heard: readonly string[] | undefined,
): void {
  b.peer(from, { lastHeard: b.s.now });
  switch (msg.type) {
    case "status": {
      const version =
        msg.generation > 0 ? { generation: msg.generation, allocator: msg.allocator } : undefined;
      b.peer(from, { version, digest: msg.digest, ready: msg.ready, versionSent: sent, versionVia: "site" });
      maybeRequest(b, from);
      return;
    }
    case "request":
      if (b.s.snapshot !== undefined) b.send(from, { type: "snapshot", snapshot: b.s.snapshot });
      return;
    case "snapshot": {
      const ours = b.s.snapshot;
      if (newer(msg.snapshot, ours)) adopt(b, msg.snapshot, from, sent);
      else if (sameVersion(msg.snapshot, ours))
        b.send(from, {
          type: "ack",
          generation: msg.snapshot.generation,
          allocator: msg.snapshot.allocator,
          digest: tableDigest(msg.snapshot.table),
        });
      // An older one: the sender is behind; ours helps it catch up (a heal converges at once).
      else if (ours !== undefined) b.send(from, { type: "snapshot", snapshot: ours });
      return;
    }
    case "ack":
      b.peer(from, {
        acked: { generation: msg.generation, allocator: msg.allocator },
        version: { generation: msg.generation, allocator: msg.allocator },
        digest: msg.digest,
        versionSent: sent,
        versionVia: "site",
      });
      return;
    case "propose":
      commit(b, msg.id, msg.base, msg.config, from, heard);
      return;
    case "result": {
      if (!b.s.pending.has(msg.id)) return;
      const pending = new Map(b.s.pending);
      pending.delete(msg.id);
      b.set({ pending });
      const { type: _t, id, ...result } = msg;
      b.effects.push({ type: "reply", id, result });
      return;
    }
  }
}

function onPropose(
  b: Builder,
  id: string,
  base: number,
  config: string,
  heard: readonly string[] | undefined,
): void {
  const alloc = allocatorOf(b.s, b.o);
  if (b.s.phase !== "ready" || alloc === undefined) {
    b.count("refused");
    b.effects.push({
      type: "reply",
      id,
      result: {
        ok: false,
        generation: b.s.snapshot?.generation ?? 0,
        allocator: b.s.snapshot?.allocator ?? "",
        error: "NotReady",
        message: "this member is waiting for the site",
      },
    });
    return;
  }
  const q = quorum(b.s, b.o, heard);
  if (!q.ok) {
    b.count("noQuorum");
    b.effects.push({
      type: "reply",
      id,
      result: {
        ok: false,
        generation: b.s.snapshot?.generation ?? 0,
        allocator: b.s.snapshot?.allocator ?? "",
        error: "NoQuorum",
        message: noQuorumMessage(b.o.self, q),
      },
    });
    return;
  }
  if (alloc === b.o.self) {
    commit(b, id, base, config, undefined, heard);
    return;
  }
  const pending = new Map(b.s.pending);
  pending.set(id, { at: b.s.now });
  b.set({ pending });
  b.send(alloc, { type: "propose", id, base, config });
}

/** The reducer. Every event carries the time; nothing else is read. */
export function step(s: SiteState, ev: SiteEvent, o: SiteOptions): Step {
  const b = new Builder({ ...s, now: Math.max(s.now, ev.now) }, o);
  switch (ev.type) {
    case "tick":
      onTick(b);
      break;
    case "message":
      if (ev.from !== o.self && o.members.includes(ev.from)) {
        onMessage(b, ev.from, ev.msg, ev.sent ?? -1n, ev.heard);
        // A status or snapshot may end the start at once.
        onTick(b);
      }
      break;
    case "propose":
      onPropose(b, ev.id, ev.base, ev.config, ev.heard);
      break;
    case "local":
      b.set({ local: ev.config });
      break;
  }
  return { state: b.s, effects: b.effects };
}
