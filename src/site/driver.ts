/**
 * The site driver: carries out what the site reducer (state.ts) decides. It owns the site
 * channel — TCP between members, one outgoing connection to each peer for what this member
 * sends, and a listener for what the peers send it (codec.ts frames, authenticated with the
 * cluster key) — the clock that ticks the reducer, the state file (site.json in the state dir,
 * written atomically before a snapshot is applied), and the hand-over of each snapshot to the
 * runtime (`apply`). Everything is serialised through one queue, in event order.
 *
 * Transport notes: the port is the cluster port (heartbeats use UDP on it, the site channel
 * TCP). A connection's first frame each way is a Hello carrying a fresh random nonce; every
 * message then carries the receiver's nonce and a counter that grows within the connection, so a
 * message recorded on one connection is refused on any other (StaleNonce) and on its own
 * (Replay). Messages for a peer that is not connected wait in a bounded queue (the oldest are
 * dropped: the reducer pulls what was missed). A connection that stays silent is replaced.
 */

import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import type { MetricFamily } from "../api/runtime.ts";
import { increasingMicros } from "../util/clock.ts";
import { writeAtomic } from "../util/fs.ts";
import type { Logger } from "../util/log.ts";
import {
  decodeHello,
  decodeMessage,
  encodeHello,
  encodeMessage,
  Framer,
  frame,
  NONCE_LEN,
  type SiteDrop,
  type SiteMessage,
} from "./codec.ts";
import { siteMetrics } from "./metrics.ts";
import {
  type AllocateFn,
  aliveMembers,
  createSite,
  type Effect,
  isConsistent,
  type ProposeResult,
  type Quorum,
  quorum,
  type SiteEvent,
  type SiteOptions,
  type SiteState,
  step,
} from "./state.ts";
import { parseSnapshot, type Snapshot } from "./table.ts";
import { type HeartbeatSiteInfo, type SiteView, siteView, withHeartbeats } from "./view.ts";

export const SITE_FILE = "site.json";
/** Messages kept for a peer that is not connected. */
const QUEUE_MAX = 64;

export interface SiteMember {
  name: string;
  /** Where its site channel listens (IPv4 or IPv6); none for this member. */
  address?: string | undefined;
  /** Its port when it differs from the site's (tests run several members on one host). */
  port?: number | undefined;
}

export interface SiteDriverOptions {
  self: string;
  members: readonly SiteMember[];
  key: Uint8Array;
  port: number;
  /** Listen address; default "::" (dual-stack), then "0.0.0.0". */
  listen?: string | undefined;
  stateDir?: string | undefined;
  /** The site objects of this member's own file. */
  local: string;
  allocate: AllocateFn;
  /** Hands a snapshot to the runtime (persisted first); not awaited: the runtime queues it. */
  apply: (snap: Snapshot) => Promise<void> | void;
  /** Called (synchronously) when readiness, the allocator or consistency may have changed. */
  onChange?: (() => void) | undefined;
  log: Logger;
  statusMs?: number;
  deadMs?: number;
  startupMs?: number;
  requestMs?: number;
  proposeTimeoutMs?: number;
  now?: () => number;
}

interface Outgoing {
  sock?: Socket<undefined> | undefined;
  /** The peer's nonce, once its Hello arrived. */
  nonce?: Uint8Array | undefined;
  connecting: boolean;
  queue: SiteMessage[];
  framer: Framer;
  lastAttempt: number;
  /** Bytes not yet taken by the socket (backpressure). */
  unsent: Uint8Array[];
}

interface Incoming {
  nonce: Uint8Array;
  framer: Framer;
  lastCounter: bigint;
  unsent: Uint8Array[];
}

/** Reads this member's persisted snapshot; undefined when none, or unreadable (and says why). */
export function readSiteFile(stateDir: string | undefined, log?: Logger): Snapshot | undefined {
  if (stateDir === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(join(stateDir, SITE_FILE), "utf8");
  } catch {
    return undefined;
  }
  try {
    const r = parseSnapshot(JSON.parse(text));
    if (r.ok) return r.snapshot;
    log?.warn("site state file ignored", { file: join(stateDir, SITE_FILE), error: r.message });
  } catch (e) {
    log?.warn("site state file ignored", { file: join(stateDir, SITE_FILE), error: (e as Error).message });
  }
  return undefined;
}

/** Writes the snapshot atomically (temp file, fsync, rename). */
export function writeSiteFile(stateDir: string, snap: Snapshot): void {
  mkdirSync(stateDir, { recursive: true });
  writeAtomic(join(stateDir, SITE_FILE), `${JSON.stringify(snap, null, 1)}\n`);
}

export class SiteDriver {
  private state: SiteState;
  private readonly opts: SiteOptions;
  private readonly now: () => number;
  private readonly nextCounter = increasingMicros();
  private listener: TCPSocketListener<undefined> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly out = new Map<string, Outgoing>();
  private readonly incoming = new Map<Socket<undefined>, Incoming>();
  private readonly replies = new Map<string, (r: ProposeResult) => void>();
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private nextId = 0;
  readonly drops = new Map<SiteDrop | "BadFrame" | "QueueFull", number>();
  readonly sent = new Map<string, number>();
  readonly received = new Map<string, number>();
  persistErrors = 0;
  /** The version last handed to `apply` (and done). */
  applied: Snapshot | undefined;
  /** The peers' site snapshots as their membership heartbeats said them (setHeartbeats). */
  private heartbeats: () => ReadonlyMap<string, HeartbeatSiteInfo> = () => new Map();
  /** The members live membership hears now; undefined: no live membership (setHeard). */
  private heard: () => readonly string[] | undefined = () => undefined;

  constructor(private readonly d: SiteDriverOptions) {
    this.now = d.now ?? (() => performance.now());
    const statusMs = d.statusMs ?? 250;
    this.opts = {
      self: d.self,
      members: [...new Set([d.self, ...d.members.map((m) => m.name)])].sort(),
      statusMs,
      deadMs: d.deadMs ?? Math.max(2500, 10 * statusMs),
      startupMs: d.startupMs ?? 3000,
      requestMs: d.requestMs ?? 500,
      proposeTimeoutMs: d.proposeTimeoutMs ?? 5000,
      allocate: d.allocate,
    };
    this.state = createSite(this.now(), readSiteFile(d.stateDir, d.log), d.local);
  }

  get options(): SiteOptions {
    return this.opts;
  }

  async start(): Promise<void> {
    const handlers = {
      open: (s: Socket<undefined>) => this.accepted(s),
      data: (s: Socket<undefined>, buf: Uint8Array) => this.incomingData(s, buf),
      drain: (s: Socket<undefined>) => {
        const c = this.incoming.get(s);
        if (c) this.flush(s, c.unsent);
      },
      close: (s: Socket<undefined>) => {
        this.incoming.delete(s);
      },
      error: (s: Socket<undefined>) => {
        this.incoming.delete(s);
      },
    };
    const listen = (hostname: string) =>
      Bun.listen<undefined>({ hostname, port: this.d.port, socket: handlers });
    if (this.d.listen !== undefined) this.listener = listen(this.d.listen);
    else
      try {
        this.listener = listen("::");
      } catch {
        this.listener = listen("0.0.0.0");
      }
    this.timer = setInterval(
      () => this.enqueue({ type: "tick", now: this.now() }),
      Math.max(10, this.opts.statusMs / 5),
    );
    this.enqueue({ type: "tick", now: this.now() });
  }

  /** The port the site channel listens on (useful with port 0). */
  get port(): number {
    return this.listener?.port ?? this.d.port;
  }

  // ---- events ---------------------------------------------------------------------------------

  private enqueue(ev: SiteEvent): Promise<void> {
    const run = async () => {
      if (this.stopped) return;
      const r = step(this.state, ev, this.opts);
      const before = this.state;
      this.state = r.state;
      await this.perform(r.effects);
      if (
        before.phase !== this.state.phase ||
        before.allocatorSeen !== this.state.allocatorSeen ||
        before.snapshot !== this.state.snapshot
      )
        this.d.onChange?.();
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch((e) => this.d.log.error("site event failed", { error: (e as Error).message }));
    return next;
  }

  private async perform(effects: Effect[]): Promise<void> {
    for (const e of effects) {
      switch (e.type) {
        case "send":
          this.send(e.to, e.msg);
          break;
        case "persist":
          if (this.d.stateDir !== undefined)
            try {
              writeSiteFile(this.d.stateDir, e.snapshot);
            } catch (err) {
              // Applied anyway (serving beats stopping); counted and said loudly.
              this.persistErrors++;
              this.d.log.error("cannot persist the site snapshot", { error: (err as Error).message });
            }
          break;
        case "apply": {
          // Handed over, not awaited: the runtime applies in its own queue, and the site channel
          // (ticks, statuses, other members' requests) never waits for the data path.
          const snap = e.snapshot;
          Promise.resolve()
            .then(() => this.d.apply(snap))
            .then(() => {
              this.applied = snap;
            })
            .catch((err) =>
              this.d.log.error("applying the site snapshot failed", {
                generation: snap.generation,
                error: (err as Error).message,
              }),
            );
          break;
        }
        case "reply": {
          const r = this.replies.get(e.id);
          this.replies.delete(e.id);
          r?.(e.result);
          break;
        }
        case "log":
          this.d.log[e.level](e.message, e.fields);
          break;
      }
    }
  }

  // ---- the API side ---------------------------------------------------------------------------

  /**
   * A PUT on this member: goes to the allocator (this one or another), which checks `base`
   * against the site generation (0: unconditional). Resolves once this member has applied the
   * new generation (a forwarded one arrives before its result, on the same connection).
   */
  propose(base: number, config: string): Promise<ProposeResult> {
    const id = `${this.d.self}-${process.pid}-${++this.nextId}`;
    return new Promise((resolve) => {
      this.replies.set(id, resolve);
      void this.enqueue({ type: "propose", now: this.now(), id, base, config, heard: this.heard() });
    });
  }

  /** This member's own file changed (its site objects). */
  setLocal(config: string): void {
    void this.enqueue({ type: "local", now: this.now(), config });
  }

  /** Holds the site's snapshot (or knows it is alone) and may announce. */
  ready(): boolean {
    return this.state.phase === "ready" && this.state.snapshot !== undefined;
  }

  snapshot(): Snapshot | undefined {
    return this.state.snapshot;
  }

  /**
   * Where the peers' heartbeats (version 3) say what they hold: the view and the consistency
   * check take, per peer, the fresher of that and its last site message.
   */
  setHeartbeats(source: () => ReadonlyMap<string, HeartbeatSiteInfo>): void {
    this.heartbeats = source;
  }

  /**
   * The members live membership hears (Rising or Alive): a write's quorum counts only members
   * both it and the site channel hear, so a split is noticed within cluster.deadAfterMs.
   */
  setHeard(source: () => readonly string[] | undefined): void {
    this.heard = source;
  }

  /** The state now, each peer's version and digest from its fresher report. */
  private current(): SiteState {
    return withHeartbeats({ ...this.state, now: this.now() }, this.heartbeats());
  }

  consistent(): boolean {
    return isConsistent(this.current(), this.opts);
  }

  view(): SiteView {
    return siteView(this.current(), this.opts, this.applied);
  }

  /** Alive members on the site channel, this one included. */
  alive(): string[] {
    return aliveMembers({ ...this.state, now: this.now() }, this.opts);
  }

  /** Whether this member sees a majority of the site alive (writes need it). */
  quorum(): Quorum {
    return quorum({ ...this.state, now: this.now() }, this.opts, this.heard());
  }

  /** Why this member does not announce yet, or undefined when it may. */
  waitReason(): string | undefined {
    if (this.ready()) return undefined;
    return this.state.snapshot === undefined
      ? "waiting for the site's configuration and assignment table"
      : `waiting to hear the other site members (holds generation ${this.state.snapshot.generation})`;
  }

  metrics(): MetricFamily[] {
    return siteMetrics({
      view: this.view(),
      counters: this.state.counters,
      self: this.d.self,
      ready: this.ready(),
      received: this.received,
      sent: this.sent,
      drops: this.drops,
      persistErrors: this.persistErrors,
    });
  }

  // ---- transport ------------------------------------------------------------------------------

  private drop(reason: SiteDrop | "BadFrame" | "QueueFull"): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  private flush(s: Socket<undefined>, unsent: Uint8Array[]): void {
    while (unsent.length > 0) {
      const b = unsent[0] as Uint8Array;
      const n = s.write(b);
      if (n >= b.length) unsent.shift();
      else {
        if (n > 0) unsent[0] = b.subarray(n);
        return;
      }
    }
  }

  private write(s: Socket<undefined>, unsent: Uint8Array[], bytes: Uint8Array): void {
    unsent.push(bytes);
    this.flush(s, unsent);
  }

  private accepted(s: Socket<undefined>): void {
    const c: Incoming = {
      nonce: new Uint8Array(randomBytes(NONCE_LEN)),
      framer: new Framer(),
      lastCounter: 0n,
      unsent: [],
    };
    this.incoming.set(s, c);
    this.write(s, c.unsent, frame(encodeHello(c.nonce)));
  }

  private incomingData(s: Socket<undefined>, buf: Uint8Array): void {
    const c = this.incoming.get(s);
    if (!c) return;
    const r = c.framer.push(buf);
    for (const f of r.frames) {
      const d = decodeMessage(f, this.d.key, {
        self: this.d.self,
        members: new Set(this.opts.members),
        nonce: c.nonce,
        lastCounter: () => c.lastCounter,
      });
      if (!d.ok) {
        this.drop(d.reason);
        if (d.reason === "BadMac" || d.reason === "StaleNonce" || d.reason === "Replay")
          this.d.log.warn("site message refused", {
            reason: d.reason,
            from: d.from ?? null,
            peer: s.remoteAddress,
          });
        continue;
      }
      c.lastCounter = d.env.counter;
      this.received.set(d.env.msg.type, (this.received.get(d.env.msg.type) ?? 0) + 1);
      void this.enqueue({
        type: "message",
        now: this.now(),
        from: d.env.from,
        msg: d.env.msg,
        sent: d.env.counter,
        ...(d.env.msg.type === "propose" ? { heard: this.heard() } : {}),
      });
    }
    if (r.error) {
      this.drop(r.error);
      s.end();
      this.incoming.delete(s);
    }
  }

  private peerOf(name: string): SiteMember | undefined {
    return this.d.members.find((m) => m.name === name);
  }

  private send(to: string, msg: SiteMessage): void {
    let o = this.out.get(to);
    if (o === undefined) {
      o = {
        connecting: false,
        queue: [],
        framer: new Framer(),
        lastAttempt: Number.NEGATIVE_INFINITY,
        unsent: [],
      };
      this.out.set(to, o);
    }
    // A status says only "now": a newer one replaces any queued.
    if (msg.type === "status") o.queue = o.queue.filter((m) => m.type !== "status");
    o.queue.push(msg);
    if (o.queue.length > QUEUE_MAX) {
      o.queue.shift();
      this.drop("QueueFull");
    }
    // Silent for long: the connection may be dead without a reset (a partition); replace it.
    const p = this.state.peers.get(to);
    if (
      o.sock &&
      o.nonce &&
      p !== undefined &&
      this.now() - p.lastHeard > 2 * this.opts.deadMs &&
      this.now() - o.lastAttempt > this.opts.deadMs
    ) {
      o.sock.terminate();
      this.resetOut(o);
    }
    this.pump(to, o);
  }

  private resetOut(o: Outgoing): void {
    o.sock = undefined;
    o.nonce = undefined;
    o.connecting = false;
    o.framer = new Framer();
    o.unsent = [];
  }

  private pump(to: string, o: Outgoing): void {
    if (this.stopped) return;
    if (o.sock && o.nonce) {
      const nonce = o.nonce;
      for (const msg of o.queue.splice(0)) {
        const bytes = encodeMessage(
          { from: this.d.self, to, counter: this.nextCounter(), nonce, msg },
          this.d.key,
        );
        this.write(o.sock, o.unsent, frame(bytes));
        this.sent.set(msg.type, (this.sent.get(msg.type) ?? 0) + 1);
      }
      return;
    }
    if (o.connecting || o.sock) return;
    const peer = this.peerOf(to);
    if (peer?.address === undefined) return;
    const now = this.now();
    if (now - o.lastAttempt < Math.min(this.opts.requestMs, 500)) return;
    o.lastAttempt = now;
    o.connecting = true;
    const timeout = setTimeout(() => {
      if (o.connecting || (o.sock && !o.nonce)) {
        o.sock?.terminate();
        this.resetOut(o);
      }
    }, 1000);
    Bun.connect<undefined>({
      hostname: peer.address,
      port: peer.port ?? this.d.port,
      socket: {
        open: (s) => {
          o.sock = s;
          o.connecting = false;
        },
        data: (s, buf) => {
          const r = o.framer.push(buf);
          for (const f of r.frames) {
            const n = o.nonce === undefined ? decodeHello(f) : null;
            if (n !== null) {
              o.nonce = n;
              clearTimeout(timeout);
              this.pump(to, o);
            } else {
              // Only a Hello travels this way.
              this.drop("BadFrame");
              s.terminate();
              return;
            }
          }
          if (r.error) {
            this.drop(r.error);
            s.terminate();
          }
        },
        drain: (s) => this.flush(s, o.unsent),
        close: (s) => {
          if (o.sock === s) this.resetOut(o);
        },
        error: (s) => {
          if (o.sock === s) this.resetOut(o);
        },
        connectError: () => {
          clearTimeout(timeout);
          this.resetOut(o);
        },
      },
    }).catch(() => {
      clearTimeout(timeout);
      this.resetOut(o);
    });
  }

  /** Waits until every queued event has been handled (tests, shutdown). */
  async settle(): Promise<void> {
    await this.queue;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.queue.catch(() => {});
    for (const o of this.out.values()) {
      o.sock?.terminate();
      this.resetOut(o);
    }
    for (const s of this.incoming.keys()) s.terminate();
    this.incoming.clear();
    this.listener?.stop(true);
    for (const r of this.replies.values())
      r({
        ok: false,
        generation: this.state.snapshot?.generation ?? 0,
        allocator: "",
        error: "NotReady",
        message: "stopping",
      });
    this.replies.clear();
  }
}
