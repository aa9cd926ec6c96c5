/**
 * Membership I/O: sends this node's authenticated heartbeat to every member over UDP, feeds
 * received heartbeats and clock ticks to the pure state machine (membership.ts), and tells its
 * owner when the set of live nodes (or this node's readiness) changes. It runs in the timing
 * worker (src/node/timing-worker.ts), where the main thread's work cannot delay a heartbeat;
 * MembershipService (service.ts) is its proxy on the main thread and mirrors snapshot().
 */

import type { udp } from "bun";
import type { ClusterMemberView, MetricFamily } from "../api/runtime.ts";
import { HANDOVER_ACK_MARGIN_MS } from "../plan/handover.ts";
import { increasingMicros } from "../util/clock.ts";
import {
  type Decline,
  decodeHeartbeat,
  encodeHeartbeat,
  type HeartbeatDrop,
  type HeartbeatSite,
  MAX_DECLINES,
} from "./heartbeat.ts";
import {
  aliveNodes,
  createMembership,
  type HeartbeatDrop as FsmDrop,
  isReady,
  type Membership,
  notReadyReason,
  onHeartbeat,
  type PeerView,
  peerDeclines,
  setMembers,
  tick,
} from "./membership.ts";

export interface MembershipOptions {
  self: string;
  members: readonly { name: string; address?: string | undefined }[];
  key: Uint8Array;
  port: number;
  intervalMs: number;
  deadAfterMs: number;
  riseMs: number;
  onChange: (why: string) => void;
  /**
   * A peer's heartbeat said something new of its site snapshot (generation, allocator, digest):
   * not a membership change (nothing replans); the worker publishes a snapshot for the site layer.
   */
  onPeerSite?: (() => void) | undefined;
  /** A clock for the engine; when given, MembershipService runs the engine on its own thread (tests). */
  now?: () => number;
  /** The wall clock (ms, as Date.now and the heartbeats' sequence numbers); tests inject it. */
  wallNow?: () => number;
}

/** What MembershipEngine.snapshot() returns (crosses from the timing worker by structured clone). */
export interface MembershipSnapshot {
  alive: string[];
  ready: boolean;
  holdReason: "start" | "pause" | "partition";
  peers: PeerView[];
  members: ClusterMemberView[];
  declines: [string, readonly Decline[]][];
  reheard: number;
  metrics: MetricFamily[];
}

export class MembershipEngine {
  private m: Membership;
  private targets: readonly { name: string; address?: string | undefined }[];
  private sock: udp.Socket<"uint8array"> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly nextSeq = increasingMicros();
  private readonly now: () => number;
  private own: readonly Decline[] = [];
  readonly drops = new Map<HeartbeatDrop | FsmDrop, number>();
  readonly socketErrors = new Map<string, number>();
  received = 0;
  sent = 0;
  /** Times a member that was unknown or dead was heard again (see reheard()). */
  private reheardCount = 0;
  /** This node's data path matches its latest plan (sent in every heartbeat, see setSettled). */
  private settled = false;
  /**
   * Peers whose settled heartbeat the daemon waits for (hand-over holds), each with the sender's
   * clock (µs) from which one counts: HANDOVER_ACK_MARGIN_MS after the daemon asked (see
   * awaitSettled).
   */
  private awaiting = new Map<string, bigint>();
  private readonly wallNow: () => number;
  /** The main thread looks hung (the worker's watchdog): no heartbeat leaves until it is back. */
  private suspended = false;
  /** This node's site snapshot as the main thread last told it (setSite); sent in version 3. */
  private site: HeartbeatSite | undefined;

  constructor(private readonly opts: MembershipOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.wallNow = opts.wallNow ?? Date.now;
    this.targets = opts.members;
    this.m = createMembership(
      {
        self: opts.self,
        members: opts.members.map((x) => x.name),
        intervalMs: opts.intervalMs,
        deadAfterMs: opts.deadAfterMs,
        riseMs: opts.riseMs,
      },
      this.now(),
    );
  }

  async start(): Promise<void> {
    const open = (hostname: string) =>
      Bun.udpSocket({
        hostname,
        port: this.opts.port,
        binaryType: "uint8array",
        socket: {
          data: (_s, buf) => this.receive(buf),
          // ICMP errors (port unreachable while a member is down) arrive here; they are expected.
          error: (_s, err) => {
            const code = (err as { code?: string } | undefined)?.code ?? "error";
            this.socketErrors.set(code, (this.socketErrors.get(code) ?? 0) + 1);
          },
        },
      });
    // Dual-stack ("::"), so members may have IPv4 or IPv6 addresses (a socket bound to 0.0.0.0
    // cannot send to IPv6: EAFNOSUPPORT); IPv4 only on a host without IPv6. The source address
    // of a heartbeat does not matter: the HMAC says who sent it.
    try {
      this.sock = await open("::");
    } catch {
      this.sock = await open("0.0.0.0");
    }
    this.timer = setInterval(() => this.beat(), this.opts.intervalMs);
    this.beat();
  }

  private drop(r: HeartbeatDrop | FsmDrop): void {
    this.drops.set(r, (this.drops.get(r) ?? 0) + 1);
  }

  private receive(buf: Uint8Array): void {
    const d = decodeHeartbeat(buf, this.opts.key);
    if (!d.ok) {
      this.drop(d.reason);
      return;
    }
    // Resumed from a pause (SIGSTOP, a stalled VM): the heartbeats queued meanwhile are read
    // before the next tick. Notice the pause first, so nothing stale is planned (or announced)
    // from them.
    if (this.now() - this.m.lastTick > this.opts.deadAfterMs) this.beat();
    const r = onHeartbeat(this.m, d.hb, this.now());
    if (r.drop) {
      this.drop(r.drop);
      return;
    }
    this.received++;
    const before = this.m.peers.get(d.hb.node);
    const was = before?.state;
    this.m = r.m;
    if (d.hb.site !== undefined && !sameSite(before?.site, d.hb.site)) this.opts.onPeerSite?.();
    // A settled heartbeat the daemon waits for: whether the peer just became settled or has been
    // all along (it applied its gain before this node decided, as on a fast machine), the first
    // one sent late enough to count as the acknowledgment wakes the daemon, once.
    const from = this.awaiting.get(d.hb.node);
    if (d.hb.settled === true && from !== undefined && d.hb.seq >= from) {
      this.awaiting.delete(d.hb.node);
      if (!r.changed) this.opts.onChange(`member ${d.hb.node} is settled`);
    }
    if ((was === "Unknown" || was === "Dead") && this.m.peers.get(d.hb.node)?.state === "Rising")
      this.reheardCount++;
    if (r.changed) this.opts.onChange(`member ${d.hb.node} is ${this.m.peers.get(d.hb.node)?.state}`);
  }

  /**
   * This beat's datagrams: version 1 or 2 for every member, and version 3 (with the site fields)
   * for the members that read it; one sequence number for both.
   */
  packets(leaving: boolean): { plain: Uint8Array; withSite: Uint8Array | undefined } {
    const hb = {
      node: this.opts.self,
      seq: this.nextSeq(),
      intervalMs: this.opts.intervalMs,
      leaving,
      ready: !leaving && isReady(this.m, this.now()),
      settled: !leaving && this.settled,
      declines: this.own,
      readsSite: true,
    };
    const plain = encodeHeartbeat(hb, this.opts.key);
    const withSite =
      this.site !== undefined && [...this.m.peers.values()].some((p) => p.readsSite)
        ? encodeHeartbeat({ ...hb, site: this.site }, this.opts.key)
        : undefined;
    return { plain, withSite };
  }

  private send(leaving: boolean): void {
    if (!this.sock || (this.suspended && !leaving)) return;
    const { plain, withSite } = this.packets(leaving);
    for (const mem of this.targets) {
      if (mem.name === this.opts.self || mem.address === undefined) continue;
      const pkt = withSite !== undefined && this.m.peers.get(mem.name)?.readsSite ? withSite : plain;
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          if (this.sock.send(pkt, this.opts.port, mem.address)) this.sent++;
          break;
        } catch (e) {
          // Our own link is down, or the route is gone: count it and keep going.
          const code = (e as { code?: string } | undefined)?.code ?? "error";
          this.socketErrors.set(code, (this.socketErrors.get(code) ?? 0) + 1);
          // ECONNREFUSED here is the ICMP port-unreachable of an EARLIER datagram (to a member
          // whose vipd is down but whose host is up), reported by the next send on the socket,
          // which is then not sent: send this one again, or the member after a dead one would
          // go unheard (measured: every heartbeat lost until ICMP rate limiting kicks in).
          if (code !== "ECONNREFUSED") break;
        }
      }
    }
  }

  /**
   * Replaces the member list and their addresses (Kubernetes mode follows the Node list). New
   * members start Unknown and must rise; removed ones are forgotten; tells onChange when the set
   * of names changed.
   */
  setMembers(members: readonly { name: string; address?: string | undefined }[]): void {
    this.targets = [...members];
    const before = this.m;
    this.m = setMembers(
      this.m,
      members.map((x) => x.name),
      this.now(),
    );
    if (this.m !== before) this.opts.onChange("member list changed");
  }

  private beat(): void {
    const t = tick(this.m, this.now());
    this.m = t.m;
    this.send(false);
    if (t.changed) this.opts.onChange(t.paused ? "this process was paused" : "membership changed");
  }

  /**
   * Whether this node's data path matches its latest plan (every VIP it gained is programmed and
   * announced). Becoming settled is told to the members at once (not at the next beat): an old
   * owner handing a VIP over to this node waits for it (make before break).
   */
  setSettled(settled: boolean): void {
    const was = this.settled;
    this.settled = settled;
    if (settled && !was) this.send(false);
  }

  /**
   * This node's site snapshot (generation, the member that made it, table digest), told by the
   * main thread when it changes; sent at once to the members that read heartbeat version 3.
   */
  setSite(site: HeartbeatSite | undefined): void {
    if (sameSite(this.site, site)) return;
    this.site = site === undefined ? undefined : { ...site };
    this.send(false);
  }

  /**
   * The members whose settled heartbeat should be told to onChange (the daemon's hand-over
   * holds): the first one each sends at least HANDOVER_ACK_MARGIN_MS after it was first asked
   * for (the daemon asks right after deciding, so that heartbeat acknowledges the hold), then it
   * is forgotten until asked for again. A member still awaited keeps its clock.
   */
  awaitSettled(nodes: ReadonlySet<string>): void {
    const from = BigInt(Math.floor(this.wallNow()) + HANDOVER_ACK_MARGIN_MS) * 1000n;
    this.awaiting = new Map([...nodes].map((n) => [n, this.awaiting.get(n) ?? from]));
  }

  /** `node` said it is settled in a heartbeat it sent at or after `wallMs` (its wall clock, ms). */
  settledSince(node: string, wallMs: number): boolean {
    const p = this.m.peers.get(node);
    return p !== undefined && p.settledSeq >= BigInt(Math.floor(wallMs)) * 1000n;
  }

  /**
   * How many times a member that was unknown or dead became audible again. The daemon announces
   * its VIPs again when this grows: what it sent while the two could not hear each other (its
   * own link down, a partition) may not have arrived.
   */
  reheard(): number {
    return this.reheardCount;
  }

  alive(): string[] {
    return aliveNodes(this.m, this.now());
  }

  ready(): boolean {
    return isReady(this.m, this.now());
  }

  holdReason(): "start" | "pause" | "partition" {
    return notReadyReason(this.m, this.now()) ?? this.m.holdReason;
  }

  peers(): PeerView[] {
    return [...this.m.peers.values()];
  }

  /** Every member as this node sees it, this node first (for GET /api/v1/cluster/members). */
  members(): ClusterMemberView[] {
    const now = this.now();
    const reason = notReadyReason(this.m, now);
    const self: ClusterMemberView = {
      name: this.opts.self,
      self: true,
      state: "Alive",
      ready: reason === undefined,
      ...(reason !== undefined ? { holdReason: reason } : {}),
      flaps: 0,
      declines: this.own.map((d) => ({ ...d })),
    };
    return [
      self,
      ...[...this.m.peers.values()].map((p) => ({
        name: p.name,
        self: false,
        state: p.state,
        ready: p.ready,
        ...(p.lastHeard > 0 ? { lastHeardMsAgo: Math.max(0, Math.round(now - p.lastHeard)) } : {}),
        flaps: p.flaps,
        declines: p.declines.map((d) => ({ ...d })),
      })),
    ];
  }

  /** Per node, this one included, the VIPs it declines; only Alive peers' declines count. */
  declines(): Map<string, readonly Decline[]> {
    const out = peerDeclines(this.m);
    if (this.own.length > 0) out.set(this.opts.self, this.own);
    return out;
  }

  /** Replaces this node's declines and tells the members at once (not at the next beat). */
  setDeclines(declines: readonly Decline[]): void {
    if (declines.length > MAX_DECLINES) throw new RangeError(`at most ${MAX_DECLINES} declined VIPs`);
    this.own = [...declines];
    this.send(false);
  }

  metrics(): MetricFamily[] {
    const peers = [...this.m.peers.values()];
    return [
      {
        name: "vipd_cluster_heartbeats_received_total",
        help: "Authenticated, fresh heartbeats taken from members",
        type: "counter",
        samples: [{ value: this.received }],
      },
      {
        name: "vipd_cluster_heartbeats_sent_total",
        help: "Heartbeats sent to members",
        type: "counter",
        samples: [{ value: this.sent }],
      },
      {
        name: "vipd_cluster_heartbeats_dropped_total",
        help: "Heartbeats refused, by reason (BadMac: wrong key or forged; Replay: an old sequence number)",
        type: "counter",
        samples: [...this.drops].map(([reason, value]) => ({ labels: { reason }, value })),
      },
      {
        name: "vipd_cluster_member_up",
        help: "1 when the member is Alive, 0 otherwise (Unknown, Rising, Dead)",
        type: "gauge",
        samples: peers.map((p) => ({ labels: { member: p.name }, value: p.state === "Alive" ? 1 : 0 })),
      },
      {
        name: "vipd_cluster_member_flaps_total",
        help: "Times a member went from Alive to Dead",
        type: "counter",
        samples: peers.map((p) => ({ labels: { member: p.name }, value: p.flaps })),
      },
      {
        name: "vipd_cluster_ready",
        help: "1 when this node takes part in layer-2 elections (0 during the start or pause hold)",
        type: "gauge",
        samples: [{ value: this.ready() ? 1 : 0 }],
      },
    ];
  }

  /**
   * The watchdog's verdict on the main thread (src/timing/host.ts): while it looks hung no
   * heartbeat is sent, so the members take over as if this process had died. When it is back,
   * this node holds as after a pause (the others declared it dead meanwhile) and rises again.
   */
  setSuspended(suspended: boolean): void {
    if (suspended === this.suspended) return;
    this.suspended = suspended;
    if (suspended) return;
    const peers = new Map([...this.m.peers].map(([n, p]) => [n, { ...p, state: "Unknown" as const }]));
    const now = this.now();
    this.m = {
      ...this.m,
      peers,
      lastTick: now,
      readyAt: now + this.opts.riseMs + this.opts.deadAfterMs,
      holdReason: "pause",
    };
    this.opts.onChange("this process was paused");
  }

  /** Everything the main thread's proxy answers from, as plain data. */
  snapshot(): MembershipSnapshot {
    return {
      alive: this.alive(),
      ready: this.ready(),
      holdReason: this.holdReason(),
      peers: this.peers(),
      members: this.members(),
      declines: [...this.declines()],
      reheard: this.reheard(),
      metrics: this.metrics(),
    };
  }

  /** Stops; with `leaving`, tells the members first so they take over at once. */
  stop(leaving: boolean): void {
    if (this.timer) clearInterval(this.timer);
    if (leaving) this.send(true);
    this.sock?.close();
    this.sock = undefined;
  }
}

/**
 * One call of the membership channel's protocol on an engine: what MembershipService sends, run
 * by the timing worker (src/node/timing-worker.ts) or, with an injected clock, on the caller's
 * thread. `snap` publishes the engine's snapshot after a call that changes it.
 */
export function callMembership(
  engine: MembershipEngine,
  method: string,
  args: readonly unknown[],
  snap: () => void,
): unknown {
  switch (method) {
    case "start":
      return engine.start().then(snap);
    case "setMembers":
      engine.setMembers(args[0] as { name: string; address?: string }[]);
      return snap();
    case "setSettled":
      return engine.setSettled(args[0] as boolean);
    case "awaitSettled":
      return engine.awaitSettled(new Set(args[0] as string[]));
    case "setDeclines":
      engine.setDeclines(args[0] as Decline[]);
      return snap();
    case "setSite":
      return engine.setSite(args[0] as HeartbeatSite | undefined);
    case "stop":
      return engine.stop(args[0] as boolean);
  }
  throw new Error(`membership: no method ${method}`);
}

function sameSite(a: HeartbeatSite | undefined, b: HeartbeatSite | undefined): boolean {
  return a?.generation === b?.generation && a?.allocator === b?.allocator && a?.digest === b?.digest;
}
