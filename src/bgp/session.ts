/**
 * One BGP session's I/O: owns the TCP connection(s), feeds bytes through the framer and decoder
 * into the pure FSM (fsm.ts), carries out the FSM's actions, runs its timers, and keeps the
 * Adj-RIB-Out (what the peer has from us) so that a new desired set is sent as a diff.
 *
 * Received routes are parsed, counted and discarded: vipd announces, it does not route.
 * Outgoing data is queued and drained on the socket's `drain` event, so the FSM never blocks.
 * Connection collisions (RFC 4271 §6.8) keep the second connection aside until its OPEN arrives.
 * Graceful restart (RFC 4724): the capability is advertised with the Forwarding bit; a graceful
 * close drops the TCP connection without a NOTIFICATION, so the peer keeps our routes as stale
 * until we come back and send End-of-RIB. A connection from a graceful-restart peer while
 * Established is held until its OPEN shows the peer restarted (RFC 4724 §4.2); a bare connect
 * changes nothing. ROUTE-REFRESH re-sends the one family asked for (RFC 2918 §4). RFC 7606 errors
 * that keep the session are counted by action and reason and logged at a bounded rate. Routes of
 * the other family than the session's get next hops from the session's own interface (nexthop.ts).
 */
import { networkInterfaces } from "node:os";
import type { Socket } from "bun";
import {
  type BgpDecodeError,
  type BgpMessage,
  CeaseSub,
  decodeMessage,
  ErrCode,
  encodeMessage,
  endOfRib,
  Framer,
  findCap,
  formatPrefix,
  KEEPALIVE_BYTES,
  type OpenMessage,
  UpdateSub,
  worstAction,
} from "./codec/index.ts";
import { normalizeAddress, type PeerConfig, routerIdValue } from "./config.ts";
import {
  awaitConnect,
  type Conn,
  type ConnOwner,
  flushNow,
  type SocketData,
  send,
  sendMany,
  socketFd,
} from "./conn.ts";
import {
  collisionWinner,
  type Fsm,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  initialFsm,
  nextDeadline,
  step,
} from "./fsm.ts";
import { buildOpen, sessionView } from "./negotiate.ts";
import { type IfaceTable, type OtherFamilyNextHops, otherFamilyNextHops } from "./nexthop.ts";
import { LogRateLimiter } from "./ratelimit.ts";
import { diffRib, encodeDiff, type Route, type SessionView } from "./ribout.ts";
import type { SessionDeps, SessionStatus } from "./session-types.ts";
import { closeFd, setMinTtl, setTtl, startConnect } from "./sock.ts";

export type { Log, SessionDeps, SessionStatus } from "./session-types.ts";

/** RFC 4271 §8.2.2: the large hold time while waiting for an OPEN on a held connection. */
const CANDIDATE_OPEN_WAIT_MS = 240_000;

function readInterfaces(): IfaceTable {
  return networkInterfaces() as IfaceTable;
}

const UPDATE_SUB_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(UpdateSub).map(([k, v]) => [v, k.toLowerCase().replaceAll("_", "-")]),
);

/** A bounded metric label for an UPDATE Message Error subcode (RFC 4271 §6.3 names). */
export function updateErrorReason(subcode: number): string {
  return UPDATE_SUB_NAMES[subcode] ?? "other";
}

export class Session implements ConnOwner {
  readonly cfg: PeerConfig;
  private readonly fsmCfg: FsmConfig;
  private fsm: Fsm = initialFsm();
  private conn: Conn | null = null;
  private candidate: Conn | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = 0;
  private stopPoll: (() => void) | null = null;
  private desired = new Map<string, Route>();
  private sent = new Map<string, string>();
  private received = new Set<string>();
  private flushScheduled = false;
  private establishedAt: number | null = null;
  private eorSent = false;
  private counters = { updatesSent: 0, updatesReceived: 0, notificationsSent: 0, notificationsReceived: 0 };
  private drops: Record<string, number> = {};
  /** Non-fatal UPDATE errors (RFC 7606 treat-as-withdraw, attribute-discard) by "action|reason". */
  private updateErrors: Record<string, number> = {};
  private readonly updateErrorLog = new LogRateLimiter(60_000, 32);
  /** The other family's next hops, read from the session's interface when it is established. */
  private nextHops: OtherFamilyNextHops = {};
  private candidateTimer: ReturnType<typeof setTimeout> | null = null;
  private addressCheck: ReturnType<typeof setInterval> | null = null;
  private lastError: string | undefined;
  private stopped = false;
  private readonly bgpId: number;

  constructor(
    cfg: PeerConfig,
    private readonly deps: SessionDeps,
  ) {
    this.cfg = cfg;
    this.bgpId = routerIdValue(cfg.routerID ?? deps.routerId);
    this.fsmCfg = {
      passive: cfg.passive ?? false,
      connectRetrySeconds: cfg.connectTime ?? 5,
      maxBackoffSeconds: 60,
      holdTime: cfg.holdTime ?? 90,
      ...(cfg.keepaliveTime !== undefined ? { keepaliveTime: cfg.keepaliveTime } : {}),
      idleHoldSeconds: 1,
      open: {
        localAsn: cfg.myASN,
        localBgpId: this.bgpId,
        ...(cfg.peerASN !== undefined ? { peerAsn: cfg.peerASN } : {}),
        ...(cfg.dynamicASN !== undefined ? { dynamic: cfg.dynamicASN } : {}),
      },
    };
  }

  get state(): FsmState {
    return this.fsm.state;
  }

  get address(): string {
    return normalizeAddress(this.cfg.peerAddress);
  }

  start(): void {
    this.stopped = false;
    this.dispatch({ type: "ManualStart" });
  }

  stop(): void {
    this.dispatch({ type: "ManualStop" });
  }

  /** Stops for good. graceful: drop TCP without a NOTIFICATION so the peer keeps routes (RFC 4724). */
  close(graceful: boolean): void {
    this.stopped = true;
    if (graceful && this.conn && this.fsm.state === "Established" && this.gracefulNegotiated()) {
      const c = this.conn;
      flushNow(c);
      this.teardown(c);
      this.conn = null;
      this.fsm = { ...initialFsm() };
    } else {
      this.dispatch({ type: "ManualStop" });
    }
    if (this.candidate) this.teardown(this.candidate);
    this.candidate = null;
    this.clearTimers();
  }

  /** Replaces the desired routes; the difference goes out on the next tick. */
  setRoutes(routes: Map<string, Route>): void {
    this.desired = routes;
    this.scheduleFlush();
  }

  status(): SessionStatus {
    const open = this.fsm.peerOpen;
    return {
      name: this.cfg.name,
      address: this.address,
      state: this.fsm.state,
      ...(this.establishedAt !== null && this.fsm.state === "Established"
        ? { uptimeSeconds: Math.floor((this.deps.now() - this.establishedAt) / 1000) }
        : {}),
      prefixesSent: this.fsm.state === "Established" ? this.sent.size : 0,
      prefixesReceived: this.received.size,
      ...this.counters,
      drops: { ...this.drops },
      updateErrors: { ...this.updateErrors },
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(open
        ? {
            peerRouterId: [24, 16, 8, 0].map((s) => (open.bgpId >>> s) & 255).join("."),
            negotiatedHoldTime: this.fsm.holdTime,
          }
        : {}),
      enabled: this.fsm.enabled,
    };
  }

  // ---------------------------------------------------------------- FSM plumbing

  private dispatch(ev: FsmEvent): void {
    const before = this.fsm.state;
    const { fsm, actions } = step(this.fsm, ev, this.fsmCfg, {
      now: this.deps.now(),
      random: this.deps.random,
    });
    this.fsm = fsm;
    if (before !== fsm.state) {
      this.deps.log("debug", "bgp fsm", { peer: this.cfg.name, from: before, to: fsm.state, event: ev.type });
    }
    for (const a of actions) this.act(a);
    if (before !== fsm.state) this.deps.onStateChange?.(this.cfg.name, fsm.state);
    this.armTimer();
  }

  private armTimer(): void {
    const d = nextDeadline(this.fsm);
    if (d === null || this.stopped) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      return;
    }
    if (this.timer && this.timerAt === d.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = d.at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        const cur = nextDeadline(this.fsm);
        if (cur === null) return;
        if (cur.at > this.deps.now()) {
          this.armTimer();
          return;
        }
        this.dispatch(cur.event);
      },
      Math.max(0, d.at - this.deps.now()),
    );
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.candidateTimer) clearTimeout(this.candidateTimer);
    this.candidateTimer = null;
    this.stopAddressCheck();
    this.stopPoll?.();
    this.stopPoll = null;
  }

  private act(a: FsmAction): void {
    switch (a.type) {
      case "connect":
        this.connect();
        break;
      case "disconnect":
        if (this.conn) this.teardown(this.conn);
        this.conn = null;
        break;
      case "sendOpen":
        if (this.conn) send(this.conn, encodeMessage(this.buildOpen()));
        break;
      case "sendKeepalive":
        if (this.conn) send(this.conn, KEEPALIVE_BYTES);
        break;
      case "sendNotification":
        if (this.conn) {
          this.counters.notificationsSent++;
          this.lastError = `sent NOTIFICATION ${a.code}/${a.subcode}`;
          send(
            this.conn,
            encodeMessage({
              type: "notification",
              code: a.code,
              subcode: a.subcode,
              data: a.data ?? new Uint8Array(0),
            }),
          );
        }
        break;
      case "acceptIncoming":
        // The incoming connection was put in `candidate` by incoming(); promote it.
        if (this.candidate) {
          this.conn = this.candidate;
          this.candidate = null;
        }
        break;
      case "rejectIncoming":
        if (this.candidate) {
          this.bump("incoming-rejected");
          this.teardown(this.candidate);
          this.candidate = null;
        }
        break;
      case "holdIncoming":
        break;
      case "established":
        this.nextHops = {};
        this.readNextHops();
        this.startAddressCheck();
        this.establishedAt = this.deps.now();
        this.lastError = undefined;
        this.sent.clear();
        this.eorSent = false;
        this.deps.log("info", "bgp session established", { peer: this.cfg.name, address: this.address });
        this.flush();
        break;
      case "down":
        this.stopAddressCheck();
        this.lastError = a.reason;
        this.establishedAt = null;
        this.sent.clear();
        this.received.clear();
        this.deps.log("warn", "bgp session down", { peer: this.cfg.name, reason: a.reason });
        break;
    }
  }

  private bump(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  // ---------------------------------------------------------------- connections

  private ttl(): { ttl?: number; minTtl?: number } {
    if (this.cfg.gtsm) return { ttl: 255, minTtl: 254 };
    const ebgp =
      this.cfg.peerASN !== undefined
        ? this.cfg.peerASN !== this.cfg.myASN
        : this.cfg.dynamicASN === "external";
    if (ebgp && !this.cfg.ebgpMultiHop) return { ttl: 1 };
    return { ttl: 255 };
  }

  private connect(): void {
    this.stopPoll?.();
    let fd: number;
    try {
      fd = startConnect({
        peer: this.cfg.peerAddress,
        port: this.cfg.peerPort ?? 179,
        ...(this.cfg.sourceAddress ? { sourceAddress: this.cfg.sourceAddress } : {}),
        ...(this.cfg.password ? { md5Key: this.cfg.password } : {}),
        ...this.ttl(),
      });
    } catch (e) {
      this.lastError = e instanceof Error ? e.message : String(e);
      queueMicrotask(() => this.dispatch({ type: "TcpConnectionFails" }));
      return;
    }
    const conn: Conn = {
      owner: this,
      dir: "out",
      socket: null,
      fd,
      framer: new Framer(),
      queue: [],
      closed: false,
    };
    this.conn = conn;
    this.stopPoll = awaitConnect(fd, conn, {
      current: () => this.conn === conn,
      confirmed: () => this.dispatch({ type: "TcpConnectionConfirmed" }),
      failed: (error) => {
        this.lastError = error;
        if (this.conn === conn) this.conn = null;
        this.dispatch({ type: "TcpConnectionFails" });
      },
    });
  }

  /** The speaker's listener accepted a connection from this peer's address. */
  incoming(socket: Socket<SocketData>): void {
    const conn: Conn = {
      owner: this,
      dir: "in",
      socket,
      fd: null,
      framer: new Framer(),
      queue: [],
      closed: false,
    };
    socket.data = { conn };
    socket.setNoDelay(true);
    if (this.cfg.gtsm) {
      try {
        const v6 = socket.localAddress.includes(":") && !socket.localAddress.startsWith("::ffff:");
        setTtl(socketFd(socket), 255, v6);
        setMinTtl(socketFd(socket), 254, v6);
      } catch (e) {
        this.deps.log("warn", "bgp gtsm on accepted socket failed", {
          peer: this.cfg.name,
          error: String(e),
        });
      }
    }
    if (this.candidate) this.teardown(this.candidate);
    this.candidate = conn;
    this.armCandidateTimer(conn);
    if (this.fsm.state === "Established" && this.gracefulNegotiated()) {
      // A peer that negotiated graceful restart may have restarted without us noticing (RFC 4724
      // §4.2) — but a bare TCP connect from its address proves nothing. Keep the session and hold
      // the new connection until its OPEN arrives; onCandidateMessage decides then.
      return;
    }
    this.dispatch({ type: "TcpConnectionIncoming" });
  }

  /**
   * A held connection that sends no OPEN is dropped after the RFC 4271 §8.2.2 large hold time
   * (4 minutes), so a silent connect cannot pin a socket for ever.
   */
  private armCandidateTimer(c: Conn): void {
    if (this.candidateTimer) clearTimeout(this.candidateTimer);
    this.candidateTimer = setTimeout(() => {
      this.candidateTimer = null;
      if (this.candidate !== c) return;
      this.bump("incoming-no-open");
      this.teardown(c);
      this.candidate = null;
    }, CANDIDATE_OPEN_WAIT_MS);
    (this.candidateTimer as { unref?: () => void }).unref?.();
  }

  private teardown(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    if (c.fd !== null) {
      closeFd(c.fd);
      c.fd = null;
    }
    if (c.socket) {
      flushNow(c);
      c.socket.end();
    }
  }

  /** Socket callbacks, routed here through socket.data.conn. */
  onData(c: Conn, chunk: Uint8Array): void {
    if (c.closed) return;
    const { messages, error } = c.framer.push(chunk);
    for (const m of messages) {
      if (c.closed) return;
      this.onMessage(c, m);
    }
    if (error && !c.closed) this.onDecodeError(c, error);
  }

  onClose(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    if (c === this.candidate) {
      this.candidate = null;
      return;
    }
    if (c === this.conn) {
      this.conn = null;
      this.dispatch({ type: "TcpConnectionFails" });
    }
  }

  onDrain(c: Conn): void {
    flushNow(c);
  }

  private onDecodeError(c: Conn, e: BgpDecodeError): void {
    this.bump(`decode-${e.action}`);
    this.deps.log("warn", "bgp decode error", {
      peer: this.cfg.name,
      error: e.message,
      code: e.code,
      subcode: e.subcode,
    });
    if (c === this.candidate) {
      this.teardown(c);
      this.candidate = null;
      return;
    }
    this.dispatch({ type: "DecodeError", error: e });
  }

  private onMessage(c: Conn, bytes: Uint8Array): void {
    const r = decodeMessage(bytes, { as4: this.fsm.as4 ?? true, ebgp: this.fsm.peerAsn !== this.cfg.myASN });
    if (!r.ok) {
      this.onDecodeError(c, r.error);
      return;
    }
    const m = r.msg;
    if (c === this.candidate) {
      this.onCandidateMessage(c, m);
      return;
    }
    if (c !== this.conn) return;
    switch (m.type) {
      case "open":
        this.dispatch({ type: "BGPOpen", open: m });
        break;
      case "keepalive":
        this.dispatch({ type: "KeepAliveMsg" });
        break;
      case "notification":
        this.counters.notificationsReceived++;
        this.lastError = `NOTIFICATION ${m.code}/${m.subcode} from peer`;
        this.dispatch({ type: "NotifMsg", code: m.code, subcode: m.subcode });
        break;
      case "route-refresh": {
        this.dispatch({ type: "RouteRefreshMsg" });
        if (this.fsm.state !== "Established") break;
        // RFC 2918 §4: re-advertise the Adj-RIB-Out of the <AFI, SAFI> asked for, and only that
        // one; a family not negotiated on this session is ignored. RFC 7313 §4: BoRR/EoRR
        // markers (subtypes 1, 2) are the peer's own demarcation, nothing to answer.
        const fam = m.safi === 1 && m.subtype === 0 ? (m.afi === 1 ? 4 : m.afi === 2 ? 6 : null) : null;
        if (fam === null || !this.view()?.families.has(fam)) {
          this.bump("route-refresh-ignored");
          break;
        }
        for (const k of [...this.sent.keys()]) if (k.includes(":") === (fam === 6)) this.sent.delete(k);
        this.scheduleFlush();
        break;
      }
      case "update": {
        this.counters.updatesReceived++;
        const worst = m.errors ? worstAction(m.errors) : null;
        if (worst !== null) this.bump(`update-${worst}`);
        if (worst !== null && worst !== "session-reset") this.noteUpdateErrors(m.errors!, m);
        if (worst === "session-reset") {
          const e = m.errors!.find((x) => x.action === "session-reset")!;
          this.dispatch({ type: "DecodeError", error: e });
          return;
        }
        for (const p of m.withdrawn) this.received.delete(formatPrefix(p));
        for (const p of m.attributes.mpUnreach?.withdrawn ?? []) this.received.delete(formatPrefix(p));
        const reach = [...m.nlri, ...(m.attributes.mpReach?.nlri ?? [])];
        for (const p of reach) {
          if (worst === "treat-as-withdraw") this.received.delete(formatPrefix(p));
          else this.received.add(formatPrefix(p));
        }
        this.dispatch({ type: "UpdateMsg" });
        break;
      }
    }
  }

  /**
   * RFC 7606 errors that keep the session (treat-as-withdraw, attribute-discard): counted per
   * action and reason, and logged at most once a minute per reason with the count held back.
   */
  private noteUpdateErrors(
    errors: readonly BgpDecodeError[],
    m: { nlri: unknown[]; attributes: { mpReach?: { nlri: unknown[] } } },
  ): void {
    for (const e of errors) {
      if (e.action === "session-reset") continue;
      const key = `${e.action}|${updateErrorReason(e.subcode)}`;
      this.updateErrors[key] = (this.updateErrors[key] ?? 0) + 1;
      const d = this.updateErrorLog.check(key, this.deps.now());
      if (d.log)
        this.deps.log("warn", `bgp UPDATE error handled as ${e.action} (RFC 7606)`, {
          peer: this.cfg.name,
          error: e.message,
          reason: updateErrorReason(e.subcode),
          prefixes: m.nlri.length + (m.attributes.mpReach?.nlri.length ?? 0),
          ...(d.suppressed > 0 ? { suppressed: d.suppressed } : {}),
        });
    }
  }

  /** §6.8: the second connection's OPEN decides which connection survives. */
  private onCandidateMessage(c: Conn, m: BgpMessage): void {
    if (m.type !== "open") {
      this.teardown(c);
      this.candidate = null;
      return;
    }
    const st = this.fsm.state;
    if (this.conn === null || st === "Connect" || st === "Active") {
      // The old connection is gone meanwhile: the candidate is simply the session's connection.
      if (!this.fsm.enabled) {
        this.teardown(c);
        this.candidate = null;
        return;
      }
      if (st === "Idle") this.fsm = { ...this.fsm, state: "Active", timers: {} };
      this.dispatch({ type: "TcpConnectionIncoming" });
      if (this.conn === c) this.dispatch({ type: "BGPOpen", open: m });
      return;
    }
    if (st === "Established" && this.gracefulNegotiated() && findCap(m.capabilities, "graceful-restart")) {
      // RFC 4724 §4.2: an OPEN with the graceful-restart capability from a peer we are Established
      // with means the peer restarted. The old connection is dead: drop it (no NOTIFICATION) and
      // run the new one at once (no idle hold), instead of refusing the peer until our hold timer
      // runs out.
      this.bump("peer-restarted");
      this.candidate = null;
      this.dispatch({ type: "TcpConnectionFails" });
      this.candidate = c;
      if (!this.fsm.enabled) {
        this.teardown(c);
        this.candidate = null;
        return;
      }
      this.fsm = { ...this.fsm, state: "Active", timers: {} };
      this.dispatch({ type: "TcpConnectionIncoming" });
      if (this.conn === c) this.dispatch({ type: "BGPOpen", open: m });
      return;
    }
    const winner = collisionWinner(this.bgpId, m.bgpId);
    const keepExisting = st === "Established" || (winner === "local-initiated") === (this.conn.dir === "out");
    this.bump("collision");
    if (keepExisting) {
      send(
        c,
        encodeMessage({
          type: "notification",
          code: ErrCode.CEASE,
          subcode: CeaseSub.CONNECTION_COLLISION,
          data: new Uint8Array(0),
        }),
      );
      this.teardown(c);
      this.candidate = null;
      return;
    }
    // The new connection wins: dump the old one (Cease/7), then run the new one from Active.
    this.dispatch({ type: "OpenCollisionDump" });
    this.candidate = c;
    this.fsm = { ...this.fsm, state: "Active", timers: {} };
    this.dispatch({ type: "TcpConnectionIncoming" });
    this.dispatch({ type: "BGPOpen", open: m });
  }

  // ---------------------------------------------------------------- output

  private buildOpen(): OpenMessage {
    return buildOpen(this.cfg, {
      bgpId: this.bgpId,
      holdTime: this.fsmCfg.holdTime,
      restarting: this.deps.restarted && !this.eorSent,
    });
  }

  private gracefulNegotiated(): boolean {
    const peer = this.fsm.peerOpen;
    return (
      !!this.cfg.enableGracefulRestart &&
      peer !== undefined &&
      findCap(peer.capabilities, "graceful-restart") !== undefined
    );
  }

  private view(): SessionView | null {
    const peer = this.fsm.peerOpen;
    const sock = this.conn?.socket;
    if (!peer || !sock || this.fsm.peerAsn === undefined) return null;
    return {
      ...sessionView(this.cfg, peer, {
        peerAsn: this.fsm.peerAsn,
        as4: this.fsm.as4 ?? false,
        localAddress: normalizeAddress(sock.localAddress),
      }),
      otherFamilyNextHops: this.nextHops,
    };
  }

  /**
   * The other family's next hops, from the interface that holds this session's local address
   * (nexthop.ts): read when the session is established, and again every `addressCheckMs` while it
   * is (an IPv6 address that finishes DAD after the session came up, a renumbered interface).
   * Returns whether they changed.
   */
  private readNextHops(): boolean {
    const sock = this.conn?.socket;
    if (!sock) return false;
    const local = normalizeAddress(sock.localAddress);
    let next: OtherFamilyNextHops;
    try {
      next = otherFamilyNextHops(this.deps.interfaces?.() ?? readInterfaces(), local, this.address);
    } catch (e) {
      next = {};
      this.deps.log("warn", "bgp cannot read the interface addresses", {
        peer: this.cfg.name,
        error: String(e),
      });
    }
    if (JSON.stringify(next) === JSON.stringify(this.nextHops)) return false;
    this.nextHops = next;
    this.deps.log("info", "bgp next hops for the other family", { peer: this.cfg.name, local, ...next });
    return true;
  }

  /** While Established: re-read the next hops; on a change, re-send (or withdraw) the other family. */
  private startAddressCheck(): void {
    this.stopAddressCheck();
    this.addressCheck = setInterval(() => {
      if (this.fsm.state !== "Established" || !this.readNextHops()) return;
      const sessionV6 = this.view()?.localAddress.includes(":") ?? false;
      // A sent route of the other family gets a stale attribute key: the next flush re-sends it with
      // the new next hop, or withdraws it when there is none (encodeDiff's skipped path).
      for (const k of this.sent.keys()) if (k.includes(":") !== sessionV6) this.sent.set(k, "");
      this.scheduleFlush();
    }, this.deps.addressCheckMs ?? 30_000);
    (this.addressCheck as { unref?: () => void }).unref?.();
  }

  private stopAddressCheck(): void {
    if (this.addressCheck) clearInterval(this.addressCheck);
    this.addressCheck = null;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setTimeout(() => {
      this.flushScheduled = false;
      this.flush();
    }, 0);
  }

  /** Sends the difference between desired and sent, if Established. */
  private flush(): void {
    if (this.fsm.state !== "Established" || !this.conn) return;
    const v = this.view();
    if (!v) return;
    const diff = diffRib(this.sent, this.desired);
    if (diff.announce.length === 0 && diff.withdraw.length === 0 && this.eorSent) return;
    const enc = encodeDiff(diff, v, this.sent);
    for (const k of enc.withdrawn) this.sent.delete(k);
    for (const [k, a] of enc.announced) this.sent.set(k, a);
    for (const s of enc.skipped) {
      this.bump("route-not-sendable");
      this.deps.log("debug", "bgp route not sent", { peer: this.cfg.name, prefix: s.key, reason: s.reason });
    }
    const out = enc.messages;
    if (!this.eorSent) {
      // RFC 4724 §2: End-of-RIB after the initial table, per family.
      for (const f of v.families) out.push(endOfRib(f));
      this.eorSent = true;
    }
    this.counters.updatesSent += out.length;
    sendMany(this.conn, out);
  }
}
