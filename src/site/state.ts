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
 *   makes generation 1 from its own file, and the others adopt it.
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
 *   consistency check take the one the peer sent last (withHeartbeats).
 */

import type { ProposeError, SiteMessage } from "./codec.ts";
import {
  type AddressChange,
  addressChanges,
  configDigest,
  descends,
  newer,
  nextSnapshot,
  type SiteAssignment,
  type Snapshot,
  sameVersion,
  tableDigest,
  type Version,
  versionId,
} from "./table.ts";

export type AllocateFn = (
  config: string,
  prev: readonly SiteAssignment[] | undefined,
) => { ok: true; table: SiteAssignment[] } | { ok: false; message: string };

export interface SiteOptions {
  self: string;
  /** Every configured member, this one included. */
  members: readonly string[];
  /** How often this member sends its status to every other member. */
  statusMs: number;
  /** A member not heard for this long is not alive on the site channel. */
  deadMs: number;
  /** The longest a starting member waits to hear the others before it goes on without them. */
  startupMs: number;
  /** Least time between two snapshot requests to one member. */
  requestMs: number;
  /** A forwarded PUT not answered in this time fails (NotReady). */
  proposeTimeoutMs: number;
  /** Pure and deterministic: the table for `config`, continuing from `prev`. */
  allocate: AllocateFn;
}

export interface PeerView {
  readonly name: string;
  /** When a message from it was last taken; -Infinity when never. */
  readonly lastHeard: number;
  readonly version?: Version | undefined;
  readonly digest?: string | undefined;
  readonly ready: boolean;
  /** The last version it acknowledged as persisted and applied. */
  readonly acked?: Version | undefined;
  /** The sender's clock (µs of wall clock) of the message that told `version`; -1n: unknown. */
  readonly versionSent?: bigint | undefined;
  /** Which report told `version` last: a site message, or a membership heartbeat. */
  readonly versionVia?: "site" | "heartbeat" | undefined;
  readonly lastRequest: number;
}

export interface HealReport {
  readonly at: number;
  readonly from: string;
  readonly to: string;
  readonly changes: readonly AddressChange[];
}

export interface Pending {
  /** Where the answer goes: the local API ("local") or the member that forwarded it. */
  readonly at: number;
}

export interface SiteState {
  readonly phase: "starting" | "ready";
  readonly startedAt: number;
  readonly now: number;
  readonly snapshot?: Snapshot | undefined;
  /** The site configuration in this member's own file (bootstrap, and the hand-edit report). */
  readonly local: string;
  readonly peers: ReadonlyMap<string, PeerView>;
  readonly pending: ReadonlyMap<string, Pending>;
  readonly lastStatus: number;
  /** The allocator last logged (to log a change once). */
  readonly allocatorSeen?: string | undefined;
  readonly lastHeal?: HealReport | undefined;
  readonly counters: Readonly<{
    adopted: number;
    heals: number;
    readdressed: number;
    committed: number;
    stale: number;
    refused: number;
    noQuorum: number;
  }>;
}

export interface ProposeResult {
  ok: boolean;
  generation: number;
  allocator: string;
  error?: ProposeError | undefined;
  message?: string | undefined;
}

export type Effect =
  | { type: "send"; to: string; msg: SiteMessage }
  | { type: "persist"; snapshot: Snapshot }
  | { type: "apply"; snapshot: Snapshot }
  | { type: "reply"; id: string; result: ProposeResult }
  | { type: "log"; level: "info" | "warn"; message: string; fields: Record<string, unknown> };

export type SiteEvent =
  | { type: "tick"; now: number }
  /** `sent`: the sender's clock (µs of wall clock) when it sent the message (its counter). */
  | {
      type: "message";
      now: number;
      from: string;
      msg: SiteMessage;
      sent?: bigint | undefined;
      /** As for "propose": what live membership hears, for a forwarded write's quorum check. */
      heard?: readonly string[] | undefined;
    }
  /**
   * A PUT on this member (the API validated `config`); `base` 0 means unconditional. `heard`: the
   * members live membership hears now (its heartbeats), when it runs: a write counts only members
   * alive on both (quorum).
   */
  | {
      type: "propose";
      now: number;
      id: string;
      base: number;
      config: string;
      heard?: readonly string[] | undefined;
    }
  /** This member's own file changed (what it would bootstrap a new site from). */
  | { type: "local"; now: number; config: string };

export interface Step {
  state: SiteState;
  effects: Effect[];
}

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

function others(o: SiteOptions): string[] {
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
  /** Holds `snap` from now on: persisted first, then applied. */
  hold(snap: Snapshot): void {
    this.set({ snapshot: snap });
    this.effects.push({ type: "persist", snapshot: snap });
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
        b.set({ phase: "ready" });
        b.log("info", "site: ready", { generation: b.s.snapshot.generation, alone: alive.length === 0 });
      } else if (!alive.some((p) => p.ready) && [o.self, ...alive.map((p) => p.name)].sort()[0] === o.self) {
        // A new site: nobody holds anything, and this is the lowest-named alive member.
        const r = o.allocate(b.s.local, undefined);
        if (r.ok) {
          const first = nextSnapshot(undefined, o.self, b.s.local, r.table);
          b.hold(first);
          b.set({ phase: "ready" });
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

/** A peer's site snapshot as its membership heartbeat said it (heartbeat version 3). */
export interface HeartbeatSiteInfo {
  generation: number;
  allocator: string;
  digest: string;
  /** The sender's clock (µs of wall clock) of that heartbeat. */
  sent: bigint;
}

/**
 * The state with each peer's version and digest taken from the fresher of its two reports: the
 * last site message that told them, or its last version-3 heartbeat (`beats`), whichever the
 * peer sent later (both are stamped with its wall clock). Liveness and readiness stay the site
 * channel's. Pure: for the view, the consistency check and the metrics.
 */
export function withHeartbeats(s: SiteState, beats: ReadonlyMap<string, HeartbeatSiteInfo>): SiteState {
  if (beats.size === 0) return s;
  let peers: Map<string, PeerView> | undefined;
  for (const [name, hb] of beats) {
    const p = s.peers.get(name);
    if (p === undefined || hb.sent <= (p.versionSent ?? -1n)) continue;
    peers ??= new Map(s.peers);
    peers.set(name, {
      ...p,
      version: hb.generation > 0 ? { generation: hb.generation, allocator: hb.allocator } : undefined,
      digest: hb.digest,
      versionSent: hb.sent,
      versionVia: "heartbeat",
    });
  }
  return peers === undefined ? s : { ...s, peers };
}

export interface SiteMemberView {
  name: string;
  self: boolean;
  alive: boolean;
  ready: boolean;
  generation: number;
  allocator: string;
  digest: string;
  /** Where this member's generation and digest come from: its site status or its heartbeat (null: self, or never told). */
  via: "site" | "heartbeat" | null;
}

export interface SiteView {
  self: string;
  phase: "starting" | "ready";
  allocator: string | null;
  generation: number;
  /** The generation this node's data path runs (handed to the Daemon and applied); 0: none yet. */
  applied: number;
  /** The member that made the snapshot this member holds. */
  madeBy: string | null;
  digest: string;
  configDigest: string;
  consistent: boolean;
  /** This member's own file holds other site objects than the site (the site's win). */
  localConfigDiffers: boolean;
  members: SiteMemberView[];
  lastHeal: (Omit<HealReport, "at"> & { msAgo: number }) | null;
  counters: SiteState["counters"];
}

/** What GET /api/v1/site shows; `applied`: the version this node's data path runs. */
export function siteView(s: SiteState, o: SiteOptions, applied?: Version): SiteView {
  const snap = s.snapshot;
  const digest = snap ? tableDigest(snap.table) : "";
  const members: SiteMemberView[] = [
    {
      name: o.self,
      self: true,
      alive: true,
      ready: s.phase === "ready",
      generation: snap?.generation ?? 0,
      allocator: snap?.allocator ?? "",
      digest,
      via: null,
    },
    ...others(o).map((name) => {
      const p = s.peers.get(name);
      return {
        name,
        self: false,
        alive: p !== undefined && isAlive(p, s.now, o),
        ready: p?.ready ?? false,
        generation: p?.version?.generation ?? 0,
        allocator: p?.version?.allocator ?? "",
        digest: p?.digest ?? "",
        via: p?.versionVia ?? null,
      };
    }),
  ];
  return {
    self: o.self,
    phase: s.phase,
    allocator: allocatorOf(s, o) ?? null,
    generation: snap?.generation ?? 0,
    applied: applied?.generation ?? 0,
    madeBy: snap?.allocator ?? null,
    digest,
    configDigest: snap ? configDigest(snap.config) : "",
    consistent: isConsistent(s, o),
    localConfigDiffers: snap !== undefined && s.local !== snap.config,
    members,
    lastHeal: s.lastHeal
      ? {
          from: s.lastHeal.from,
          to: s.lastHeal.to,
          changes: s.lastHeal.changes,
          msAgo: s.now - s.lastHeal.at,
        }
      : null,
    counters: s.counters,
  };
}
