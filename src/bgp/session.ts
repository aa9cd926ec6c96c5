/**
 * One BGP session's I/O: owns the TCP connection(s), feeds bytes through the framer and decoder
 * into the pure FSM (fsm.ts), carries out the FSM's actions and runs its timers. Outgoing data is
 * queued and drained on the socket's `drain` event (conn.ts), so the FSM never blocks.
 *
 * Beside it, each a concern of its own: what the peer has from us and the UPDATEs that follow
 * (adj-rib-out.ts; ROUTE-REFRESH per family, RFC 2918 §4), what it sent (adj-rib-in.ts, counted and
 * discarded: vipd announces, it does not route), the second connection of a collision or a
 * graceful-restart peer's reconnect (candidate.ts; RFC 4271 §6.8, RFC 4724 §4.2), the other
 * family's next hops (nexthop-watch.ts) and RFC 7606 errors that keep the session
 * (update-errors.ts). Graceful restart (RFC 4724): a graceful close drops the TCP connection
 * without a NOTIFICATION, so the peer keeps our routes as stale until we are back with End-of-RIB.
 */
import type { Socket } from "bun";
import { AdjRibIn } from "./adj-rib-in.ts";
import { AdjRibOut, refreshFamily } from "./adj-rib-out.ts";
import { CandidateTimer, candidateVerdict } from "./candidate.ts";
import {
  type BgpDecodeError,
  type BgpMessage,
  CeaseSub,
  decodeMessage,
  ErrCode,
  encodeMessage,
  findCap,
  KEEPALIVE_BYTES,
  type OpenMessage,
  worstAction,
} from "./codec/index.ts";
import { normalizeAddress, type PeerConfig, routerIdValue } from "./config.ts";
import {
  awaitConnect,
  type Conn,
  type ConnOwner,
  closeConn,
  dial,
  flushNow,
  gtsmOnAccepted,
  newConn,
  type SocketData,
  send,
  sendMany,
  sendNotification,
} from "./conn.ts";
import { DeadlineTimer } from "./deadline-timer.ts";
import {
  type Fsm,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  initialFsm,
  nextDeadline,
  step,
} from "./fsm.ts";
import { buildOpen, fsmConfig, sessionView } from "./negotiate.ts";
import { NextHopWatch } from "./nexthop-watch.ts";
import type { RouteTable, SessionView } from "./ribout.ts";
import { SendClock } from "./send-timing.ts";
import { type SendTiming, type SessionDeps, type SessionStatus, sessionStatus } from "./session-types.ts";
import { UpdateErrorCounter } from "./update-errors.ts";

export type { Log, SendTiming, SessionDeps, SessionStatus } from "./session-types.ts";
export { updateErrorReason } from "./update-errors.ts";

export class Session implements ConnOwner {
  readonly cfg: PeerConfig;
  private readonly fsmCfg: FsmConfig;
  private fsm: Fsm = initialFsm();
  private conn: Conn | null = null;
  private candidate: Conn | null = null;
  private readonly timer: DeadlineTimer<FsmEvent>;
  private stopPoll: (() => void) | null = null;
  /** What the peer should have and has from us. */
  private readonly ribOut = new AdjRibOut();
  private readonly received = new AdjRibIn();
  private flushScheduled = false;
  /** Timing of the last flush that moved prefixes (speaker side). */
  private readonly sendClock: SendClock;
  private establishedAt: number | null = null;
  private counters = { updatesSent: 0, updatesReceived: 0, notificationsSent: 0, notificationsReceived: 0 };
  private drops: Record<string, number> = {};
  /** Non-fatal UPDATE errors (RFC 7606 treat-as-withdraw, attribute-discard), counted and logged. */
  private readonly updateErrors: UpdateErrorCounter;
  /** The other family's next hops, read from the session's interface when it is established. */
  private readonly nextHops: NextHopWatch;
  private readonly candidateTimer = new CandidateTimer();
  private lastError: string | undefined;
  private stopped = false;
  private readonly bgpId: number;

  constructor(
    cfg: PeerConfig,
    private readonly deps: SessionDeps,
  ) {
    this.cfg = cfg;
    this.bgpId = routerIdValue(cfg.routerID ?? deps.routerId);
    this.updateErrors = new UpdateErrorCounter(cfg.name, deps.log);
    this.nextHops = new NextHopWatch(cfg.name, deps);
    this.sendClock = new SendClock(cfg.name);
    this.timer = new DeadlineTimer(
      () => nextDeadline(this.fsm),
      deps.now,
      (e) => this.dispatch(e),
    );
    this.fsmCfg = fsmConfig(cfg, this.bgpId);
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
  setRoutes(routes: RouteTable): void {
    this.ribOut.setDesired(routes);
    this.scheduleFlush();
  }

  status(): SessionStatus {
    return sessionStatus({
      name: this.cfg.name,
      address: this.address,
      fsm: this.fsm,
      now: this.deps.now(),
      establishedAt: this.establishedAt,
      prefixesSent: this.ribOut.size,
      prefixesReceived: this.received.size,
      counters: this.counters,
      drops: this.drops,
      updateErrors: this.updateErrors.counts,
      lastError: this.lastError,
    });
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
    this.timer.arm(!this.stopped);
  }

  private clearTimers(): void {
    this.timer.clear();
    this.candidateTimer.clear();
    this.nextHops.stop();
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
          sendNotification(this.conn, a.code, a.subcode, a.data);
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
        this.startAddressCheck();
        this.readNextHops();
        this.establishedAt = this.deps.now();
        this.lastError = undefined;
        this.ribOut.established();
        this.deps.log("info", "bgp session established", { peer: this.cfg.name, address: this.address });
        this.flush();
        break;
      case "down":
        this.nextHops.stop();
        this.lastError = a.reason;
        this.establishedAt = null;
        this.ribOut.down();
        this.received.clear();
        this.deps.log("warn", "bgp session down", { peer: this.cfg.name, reason: a.reason });
        break;
    }
  }

  private bump(reason: string): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  // ---------------------------------------------------------------- connections

  private connect(): void {
    this.stopPoll?.();
    let conn: Conn;
    try {
      conn = dial(this, this.cfg);
    } catch (e) {
      this.lastError = e instanceof Error ? e.message : String(e);
      queueMicrotask(() => this.dispatch({ type: "TcpConnectionFails" }));
      return;
    }
    this.conn = conn;
    this.stopPoll = awaitConnect(conn.fd!, conn, {
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
    const conn = newConn(this, "in", socket, null);
    socket.data = { conn };
    socket.setNoDelay(true);
    if (this.cfg.gtsm) {
      try {
        gtsmOnAccepted(socket);
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

  /** A held connection that sends no OPEN is dropped after the large hold time (candidate.ts). */
  private armCandidateTimer(c: Conn): void {
    this.candidateTimer.arm(() => {
      if (this.candidate !== c) return;
      this.bump("incoming-no-open");
      this.teardown(c);
      this.candidate = null;
    });
  }

  private teardown(c: Conn): void {
    closeConn(c);
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
    this.noteWritten(c);
  }

  /** The timing of the last flush that moved prefixes (speaker side), if any. */
  sendTiming(): SendTiming | null {
    return this.sendClock.get();
  }

  private noteWritten(c: Conn): void {
    if (c === this.conn && c.queue.length === 0) this.sendClock.written();
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
        const fam = refreshFamily(m);
        if (fam === null || !this.view()?.families.has(fam)) {
          this.bump("route-refresh-ignored");
          break;
        }
        this.ribOut.forgetFamily(fam);
        this.scheduleFlush();
        break;
      }
      case "update": {
        this.counters.updatesReceived++;
        const worst = m.errors ? worstAction(m.errors) : null;
        if (worst !== null) this.bump(`update-${worst}`);
        if (worst !== null && worst !== "session-reset")
          this.updateErrors.note(
            m.errors!,
            m.nlri.length + (m.attributes.mpReach?.nlri.length ?? 0),
            this.deps.now(),
          );
        if (worst === "session-reset") {
          const e = m.errors!.find((x) => x.action === "session-reset")!;
          this.dispatch({ type: "DecodeError", error: e });
          return;
        }
        this.received.apply(m, worst === "treat-as-withdraw");
        this.dispatch({ type: "UpdateMsg" });
        break;
      }
    }
  }

  /** §6.8 and RFC 4724 §4.2: the second connection's OPEN decides which connection survives. */
  private onCandidateMessage(c: Conn, m: BgpMessage): void {
    const open = m.type === "open" ? m : null;
    const verdict = candidateVerdict({
      isOpen: open !== null,
      state: this.fsm.state,
      hasConn: this.conn !== null,
      connDir: this.conn?.dir ?? null,
      enabled: this.fsm.enabled,
      graceful: this.gracefulNegotiated(),
      openHasGracefulRestart: open !== null && findCap(open.capabilities, "graceful-restart") !== undefined,
      localBgpId: this.bgpId,
      peerBgpId: open?.bgpId ?? 0,
    });
    if (verdict === "drop" || open === null) {
      this.teardown(c);
      this.candidate = null;
      return;
    }
    switch (verdict) {
      case "adopt":
        if (this.fsm.state === "Idle") this.fsm = { ...this.fsm, state: "Active", timers: {} };
        this.dispatch({ type: "TcpConnectionIncoming" });
        if (this.conn === c) this.dispatch({ type: "BGPOpen", open });
        return;
      case "peer-restarted":
        // The old connection is dead: drop it (no NOTIFICATION) and run the new one at once (no
        // idle hold), instead of refusing the peer until our hold timer runs out.
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
        if (this.conn === c) this.dispatch({ type: "BGPOpen", open });
        return;
      case "keep-existing":
        this.bump("collision");
        sendNotification(c, ErrCode.CEASE, CeaseSub.CONNECTION_COLLISION);
        this.teardown(c);
        this.candidate = null;
        return;
      case "replace-existing":
        // Dump the old connection (Cease/7), then run the new one from Active.
        this.bump("collision");
        this.dispatch({ type: "OpenCollisionDump" });
        this.candidate = c;
        this.fsm = { ...this.fsm, state: "Active", timers: {} };
        this.dispatch({ type: "TcpConnectionIncoming" });
        this.dispatch({ type: "BGPOpen", open });
        return;
    }
  }

  // ---------------------------------------------------------------- output

  private buildOpen(): OpenMessage {
    return buildOpen(this.cfg, {
      bgpId: this.bgpId,
      holdTime: this.fsmCfg.holdTime,
      restarting: this.deps.restarted && !this.ribOut.endOfRibSent,
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
      otherFamilyNextHops: this.nextHops.hops,
    };
  }

  /** Reads the other family's next hops (nexthop-watch.ts); returns whether they changed. */
  private readNextHops(): boolean {
    const sock = this.conn?.socket;
    if (!sock) return false;
    return this.nextHops.read(normalizeAddress(sock.localAddress), this.address);
  }

  /** While Established: re-read the next hops; on a change, re-send (or withdraw) the other family. */
  private startAddressCheck(): void {
    this.nextHops.start(() => {
      if (this.fsm.state !== "Established" || !this.readNextHops()) return;
      const sessionV6 = this.view()?.localAddress.includes(":") ?? false;
      // A sent route of the other family gets a stale attribute key: the next flush re-sends it with
      // the new next hop, or withdraws it when there is none (encodeDiff's skipped path).
      this.ribOut.markStale(sessionV6 ? 4 : 6);
      this.scheduleFlush();
    });
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
    const t0 = performance.now();
    const f = this.ribOut.flush(v);
    if (f === null) return;
    for (const s of f.skipped) {
      this.bump("route-not-sendable");
      this.deps.log("debug", "bgp route not sent", { peer: this.cfg.name, prefix: s.key, reason: s.reason });
    }
    const out = f.messages;
    this.counters.updatesSent += out.length;
    this.sendClock.sent(t0, f.announced + f.withdrawn, out.length, f.endOfRib);
    sendMany(this.conn, out);
    this.noteWritten(this.conn);
  }
}
