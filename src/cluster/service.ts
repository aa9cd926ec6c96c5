/**
 * MembershipService: what the daemon and the Kubernetes speaker hold of live membership. The
 * heartbeat loop itself (MembershipEngine, engine.ts: UDP socket, 50 ms timer, the pure state
 * machine of membership.ts) runs in the timing worker (src/node/timing-worker.ts), so nothing the
 * main thread does — parsing, planning, API requests — can delay a heartbeat or make this node
 * look dead. This class is its proxy: calls are posted to the worker in order; queries are
 * answered from the latest snapshot the worker pushed (with every change, and every 250 ms for
 * counters), so they stay synchronous; `onChange` is called on the main thread after the
 * snapshot that reflects the change has been taken in.
 *
 * With `now` given (tests with a fake clock), the engine runs on the calling thread instead.
 */

import type { ClusterMemberView, MetricFamily } from "../api/runtime.ts";
import { openTimingChannel } from "../timing/host.ts";
import {
  callMembership,
  MembershipEngine,
  type MembershipOptions,
  type MembershipSnapshot,
} from "./engine.ts";
import { type Decline, type HeartbeatSite, MAX_DECLINES } from "./heartbeat.ts";
import type { PeerView } from "./membership.ts";

export type { MembershipOptions, MembershipSnapshot } from "./engine.ts";

/** A peer's site snapshot as its heartbeat said it, and the sender's clock of that heartbeat (µs). */
export interface HeardSite extends HeartbeatSite {
  sent: bigint;
}

/** The calls the proxy makes; the in-thread engine and the worker's channel both take them. */
interface Backend {
  call(method: string, ...args: unknown[]): Promise<unknown>;
  post(method: string, ...args: unknown[]): void;
  close(): Promise<void>;
}

export class MembershipService {
  private snap: MembershipSnapshot;
  private readonly backend: Backend;
  /** The engine, when it runs on this thread (a clock was given). */
  private readonly local: MembershipEngine | undefined;
  private stopped = false;
  private siteKey = "";

  constructor(private readonly opts: MembershipOptions) {
    const others = opts.members.filter((m) => m.name !== opts.self);
    // Before the first snapshot: nobody alive, not ready ("start").
    this.snap = {
      alive: [],
      ready: false,
      holdReason: "start",
      peers: [],
      members: [
        {
          name: opts.self,
          self: true,
          state: "Alive",
          ready: false,
          holdReason: "start",
          flaps: 0,
          declines: [],
        },
        ...others.map((m) => ({
          name: m.name,
          self: false,
          state: "Unknown" as const,
          ready: false,
          flaps: 0,
          declines: [],
        })),
      ],
      declines: [],
      reheard: 0,
      metrics: [],
    };
    const init = {
      self: opts.self,
      members: opts.members.map((m) => ({
        name: m.name,
        ...(m.address !== undefined ? { address: m.address } : {}),
      })),
      key: opts.key,
      port: opts.port,
      intervalMs: opts.intervalMs,
      deadAfterMs: opts.deadAfterMs,
      riseMs: opts.riseMs,
    };
    if (opts.now !== undefined) {
      const engine: MembershipEngine = new MembershipEngine({
        ...init,
        now: opts.now,
        ...(opts.wallNow !== undefined ? { wallNow: opts.wallNow } : {}),
        onChange: (why) => {
          this.snap = engine.snapshot();
          opts.onChange(why);
        },
      });
      this.local = engine;
      this.backend = localBackend(engine, (s) => {
        this.snap = s;
      });
    } else {
      this.local = undefined;
      this.backend = openTimingChannel("membership", init, (ev, data) => this.onEvent(ev, data));
    }
  }

  /** The latest state: the engine's own on this thread, else the worker's latest snapshot. */
  private view(): MembershipSnapshot {
    return this.local !== undefined ? this.local.snapshot() : this.snap;
  }

  private onEvent(ev: string, data: unknown): void {
    if (this.stopped) return;
    if (ev === "snapshot") this.snap = data as MembershipSnapshot;
    else if (ev === "change") {
      const d = data as { why: string; snapshot: MembershipSnapshot };
      this.snap = d.snapshot;
      this.opts.onChange(d.why);
    }
  }

  /** Opens the socket and starts the heartbeat loop (in the timing worker). */
  async start(): Promise<void> {
    await this.backend.call("start");
  }

  /**
   * Replaces the member list and their addresses (Kubernetes mode follows the Node list). New
   * members start Unknown and must rise; removed ones are forgotten; tells onChange when the set
   * of names changed.
   */
  setMembers(members: readonly { name: string; address?: string | undefined }[]): void {
    this.backend.post(
      "setMembers",
      members.map((m) => ({ name: m.name, ...(m.address !== undefined ? { address: m.address } : {}) })),
    );
  }

  /**
   * Whether this node's data path matches its latest plan (every VIP it gained is programmed and
   * announced). Becoming settled is told to the members at once (not at the next beat): an old
   * owner handing a VIP over to this node waits for it (make before break).
   */
  setSettled(settled: boolean): void {
    this.backend.post("setSettled", settled);
  }

  /**
   * This node's site snapshot (generation, the member that made it, table digest): the timing
   * worker sends it in the heartbeats of members that read version 3. Posted only when it changes
   * (a message to the worker, never waited for).
   */
  setSite(site: HeartbeatSite | undefined): void {
    const key = site === undefined ? "" : `${site.generation}@${site.allocator}#${site.digest}`;
    if (key === this.siteKey) return;
    this.siteKey = key;
    this.backend.post("setSite", site === undefined ? undefined : { ...site });
  }

  /**
   * What each peer's latest version-3 heartbeat said of its site snapshot, with the sender's
   * clock of that heartbeat (µs of its wall clock) and how long ago it was heard.
   */
  peerSites(): Map<string, HeardSite> {
    const out = new Map<string, HeardSite>();
    for (const p of this.view().peers)
      if (p.site !== undefined) out.set(p.name, { ...p.site, sent: p.siteSeq });
    return out;
  }

  /** The members whose becoming settled should be told to onChange (the daemon's hand-over holds). */
  awaitSettled(nodes: ReadonlySet<string>): void {
    this.backend.post("awaitSettled", [...nodes]);
  }

  /** `node` said it is settled in a heartbeat it sent at or after `wallMs` (its wall clock, ms). */
  settledSince(node: string, wallMs: number): boolean {
    const p = this.view().peers.find((x) => x.name === node);
    return p !== undefined && p.settledSeq >= BigInt(Math.floor(wallMs)) * 1000n;
  }

  /**
   * How many times a member that was unknown or dead became audible again. The daemon announces
   * its VIPs again when this grows: what it sent while the two could not hear each other (its
   * own link down, a partition) may not have arrived.
   */
  reheard(): number {
    return this.view().reheard;
  }

  alive(): string[] {
    return [...this.view().alive];
  }

  ready(): boolean {
    return this.view().ready;
  }

  holdReason(): "start" | "pause" | "partition" {
    return this.view().holdReason;
  }

  peers(): PeerView[] {
    return [...this.view().peers];
  }

  /** Every member as this node sees it, this node first (for GET /api/v1/cluster/members). */
  members(): ClusterMemberView[] {
    return this.view().members.map((m) => ({ ...m, declines: m.declines.map((d) => ({ ...d })) }));
  }

  /** Per node, this one included, the VIPs it declines; only Alive peers' declines count. */
  declines(): Map<string, readonly Decline[]> {
    return new Map(this.view().declines);
  }

  /** Replaces this node's declines and tells the members at once (not at the next beat). */
  setDeclines(declines: readonly Decline[]): void {
    if (declines.length > MAX_DECLINES) throw new RangeError(`at most ${MAX_DECLINES} declined VIPs`);
    // Mirrored at once, so the replan that follows sees its own declines.
    const own = declines.map((d) => ({ ...d }));
    const rest = this.snap.declines.filter(([n]) => n !== this.opts.self);
    this.snap = {
      ...this.snap,
      declines: own.length > 0 ? [...rest, [this.opts.self, own]] : rest,
      members: this.snap.members.map((m) => (m.self ? { ...m, declines: own } : m)),
    };
    this.backend.post("setDeclines", own);
  }

  metrics(): MetricFamily[] {
    return this.view().metrics;
  }

  /** Stops; with `leaving`, tells the members first so they take over at once. */
  stop(leaving: boolean): void {
    if (this.stopped) return;
    this.stopped = true;
    void this.backend
      .call("stop", leaving)
      .catch(() => {})
      .finally(() => void this.backend.close());
  }
}

/** The engine on this thread, behind the same calls as the worker's channel. */
function localBackend(engine: MembershipEngine, setSnap: (s: MembershipSnapshot) => void): Backend {
  const run = (method: string, args: unknown[]): unknown =>
    callMembership(engine, method, args, () => setSnap(engine.snapshot()));
  return {
    call: async (method, ...args) => run(method, args),
    post: (method, ...args) => void run(method, args),
    close: async () => {},
  };
}
