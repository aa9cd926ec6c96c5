/**
 * BfdEngine: the declarative owner of every BFD session of this node (RFC 5880 asynchronous
 * mode over RFC 5881 single-hop / RFC 5883 multihop UDP). It runs inside the timing worker
 * (src/node/timing-worker.ts), where the main thread's work cannot delay its timers; BfdManager
 * (manager.ts) is its proxy on the main thread.
 *
 * The caller hands over the whole desired set of sessions (`setSessions`); the engine applies the
 * diff: creates, re-parameterizes (Poll/Final) or removes sessions (announcing AdminDown). It
 * routes received packets to sessions by discriminator (or by peer address while the remote does
 * not know ours, RFC 5880 §6.8.6), runs every session's timers from ONE scheduler (a single
 * setTimeout armed for the earliest deadline of all sessions), emits "up"/"down" events, and
 * reports status with named, counted drop reasons. The protocol itself lives in fsm.ts (pure).
 */

import { canonicalIp, parseIp } from "../util/ip.ts";
import { DROP_REASONS, type DropReason, decodeControl, diagName } from "./codec.ts";
import {
  type Action,
  detectionTimeMs,
  newSession,
  nextDeadline,
  onPacket,
  onTimer,
  rxIntervalMs,
  type Session,
  type SessionParams,
  type Step,
  setAdminDown,
  setParams,
  txIntervalMs,
} from "./fsm.ts";
import { PORT_MULTIHOP, PORT_SINGLE_HOP, RxSocket, type TtlRule, TxSocket } from "./io.ts";
import { profileToParams } from "./profile.ts";
import {
  BfdConfigError,
  type BfdEvent,
  type BfdListener,
  type BfdLog,
  type BfdManagerOptions,
  type BfdStatus,
  type DesiredSession,
  type SessionStatus,
  validateSessions,
} from "./sessions.ts";

interface Entry {
  desired: DesiredSession;
  peer: string;
  family: 4 | 6;
  session: Session;
  tx: TxSocket;
  sent: number;
  received: number;
}

function paramsOf(d: DesiredSession): SessionParams {
  return d.auth ? { ...profileToParams(d.profile), auth: d.auth } : profileToParams(d.profile);
}

function sameEndpoint(a: DesiredSession, b: DesiredSession): boolean {
  return a.peer === b.peer && a.local === b.local && a.ifname === b.ifname && a.multihop === b.multihop;
}

export class BfdEngine {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: BfdLog;
  private readonly ports: { single: number; multi: number };
  private readonly entries = new Map<string, Entry>();
  private readonly byDiscr = new Map<number, Entry>();
  private readonly listeners: Record<BfdEvent, BfdListener[]> = { up: [], down: [] };
  private readonly drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  private rxSingle: RxSocket | null = null;
  private rxMulti: RxSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private armedFor: number | null = null;
  private armedDetect = false;
  private readonly lateness = new Float64Array(4096);
  private fires = 0;
  private latenessMaxEver = 0;
  private stalls = 0;
  private readonly socketErrors = new Map<string, number>();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(opts: BfdManagerOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? (() => {});
    this.ports = { single: opts.singleHopPort ?? PORT_SINGLE_HOP, multi: opts.multihopPort ?? PORT_MULTIHOP };
  }

  on(event: BfdEvent, cb: BfdListener): void {
    this.listeners[event].push(cb);
  }

  /** Whether the session `key` exists and is Up (for gating BGP on BFD). */
  isUp(key: string): boolean {
    return this.entries.get(key)?.session.state === "Up";
  }

  /**
   * Declares the whole set of sessions. Invalid input throws BfdConfigError and changes nothing.
   * Calls are serialized.
   */
  setSessions(desired: DesiredSession[]): Promise<void> {
    const problems = validateSessions(desired);
    if (problems.length > 0) return Promise.reject(new BfdConfigError(problems));
    const run = this.chain.then(() => this.apply(desired));
    this.chain = run.catch(() => {});
    return run;
  }

  /**
   * Opens every socket the new set needs first; only when all opened does it touch a session, so a
   * failure (address not configured, port taken by another BFD daemon) changes nothing.
   */
  private async apply(desired: DesiredSession[]): Promise<void> {
    if (this.closed) throw new Error("BfdManager is closed");
    const want = new Map(desired.map((d) => [d.key, d]));
    const removals = [...this.entries.values()].filter((e) => {
      const d = want.get(e.desired.key);
      return !d || !sameEndpoint(d, e.desired);
    });
    const removedKeys = new Set(removals.map((e) => e.desired.key));
    const adds = desired.filter((d) => !this.entries.has(d.key) || removedKeys.has(d.key));
    const opened: TxSocket[] = [];
    const single = desired.some((d) => !d.multihop);
    const rules = desired
      .filter((d) => d.multihop)
      .map((d) => ({ peer: canonicalIp(d.peer)!, minTtl: d.profile.minimumTtl }));
    let newSingle: RxSocket | null = null;
    let newMulti: RxSocket | null = null;
    const txFor = new Map<string, TxSocket>();
    try {
      for (const d of adds) {
        const tx = await TxSocket.open(parseIp(d.peer)!.family, d.local, d.ifname, (err) =>
          this.socketError(d.key, err),
        );
        opened.push(tx);
        txFor.set(d.key, tx);
      }
      if (single && !this.rxSingle) {
        newSingle = await this.openRx(this.ports.single, null, false);
      }
      if (rules.length > 0 && !this.rxMulti) newMulti = await this.openRx(this.ports.multi, rules, true);
    } catch (e) {
      for (const tx of opened) tx.close();
      newSingle?.close();
      newMulti?.close();
      throw e;
    }
    for (const e of removals) this.remove(e);
    for (const d of desired) {
      const tx = txFor.get(d.key);
      if (tx) {
        this.add(d, tx);
        continue;
      }
      const e = this.entries.get(d.key)!;
      if (JSON.stringify(e.desired) !== JSON.stringify(d)) {
        e.desired = d;
        this.apply1(e, setParams(e.session, paramsOf(d), this.now(), this.random()));
      }
    }
    if (newSingle) this.rxSingle = newSingle;
    if (newMulti) this.rxMulti = newMulti;
    else if (rules.length > 0) this.rxMulti?.setRules(rules);
    if (!single && this.rxSingle) {
      this.rxSingle.close();
      this.rxSingle = null;
    }
    if (rules.length === 0 && this.rxMulti) {
      this.rxMulti.close();
      this.rxMulti = null;
    }
    this.reschedule();
  }

  private async openRx(port: number, rules: TtlRule[] | null, multihop: boolean): Promise<RxSocket> {
    try {
      return await RxSocket.open(
        port,
        rules,
        (b, from) => this.receive(b, from, multihop),
        (err) => this.socketError("rx", err),
      );
    } catch (e) {
      throw new Error(
        `cannot receive BFD on UDP port ${port} (is another BFD daemon, e.g. FRR bfdd, running?): ${String(e)}`,
      );
    }
  }

  private add(d: DesiredSession, tx: TxSocket): void {
    const ip = parseIp(d.peer)!;
    let discr = 0;
    while (discr === 0 || this.byDiscr.has(discr)) discr = Math.floor(this.random() * 0xffffffff) >>> 0;
    const e: Entry = {
      desired: d,
      peer: canonicalIp(d.peer)!,
      family: ip.family,
      session: newSession(paramsOf(d), discr, this.now()),
      tx,
      sent: 0,
      received: 0,
    };
    this.entries.set(d.key, e);
    this.byDiscr.set(discr, e);
    this.log("bfd session added", { key: d.key, peer: d.peer, multihop: d.multihop, srcPort: tx.srcPort });
  }

  /** Announces AdminDown to the peer once, then forgets the session. */
  private remove(e: Entry): void {
    this.apply1(e, setAdminDown(e.session, true, this.now(), this.random()));
    e.tx.close();
    this.entries.delete(e.desired.key);
    this.byDiscr.delete(e.session.localDiscr);
    this.log("bfd session removed", { key: e.desired.key });
  }

  /** ICMP errors (port unreachable while the peer is not listening) are counted, not fatal. */
  private socketError(key: string, err: Error): void {
    const code = (err as { code?: string }).code ?? err.name;
    this.socketErrors.set(code, (this.socketErrors.get(code) ?? 0) + 1);
    this.log("bfd socket error", { key, code });
  }

  private drop(reason: DropReason, from: string): void {
    this.drops[reason]++;
    this.log("bfd packet dropped", { reason, from });
  }

  /** RFC 5880 §6.8.6 reception: packet checks, session selection, then the FSM. */
  private receive(payload: Uint8Array, from: string, multihop: boolean): void {
    if (this.closed) return;
    const d = decodeControl(payload);
    if (!d.ok) {
      this.drop(d.reason, from);
      return;
    }
    const p = d.packet;
    let e: Entry | undefined;
    if (p.yourDiscr !== 0) {
      e = this.byDiscr.get(p.yourDiscr);
      if (!e || e.desired.multihop !== multihop) {
        this.drop("UnknownYourDiscriminator", from);
        return;
      }
      // RFC 5881 §3 / RFC 5883 §3: a session belongs to one address pair; a known discriminator
      // from another source is someone else's (or a forgery).
      if (canonicalIp(from) !== e.peer) {
        this.drop("SourceAddressMismatch", from);
        return;
      }
    } else {
      if (p.state !== "Down" && p.state !== "AdminDown") {
        this.drop("ZeroYourDiscriminatorNotDown", from);
        return;
      }
      const peer = canonicalIp(from);
      for (const c of this.entries.values()) {
        if (c.peer === peer && c.desired.multihop === multihop) e = c;
      }
      if (!e) {
        this.drop("NoSessionForAddress", from);
        return;
      }
    }
    e.received++;
    const step = onPacket(e.session, payload, p, this.now(), this.random());
    if (step.drop) this.drop(step.drop, from);
    this.apply1(e, step);
    this.reschedule();
  }

  /** Stores the new session value and performs its actions. */
  private apply1(e: Entry, step: Step): void {
    e.session = step.session;
    for (const a of step.actions) this.act(e, a);
  }

  private act(e: Entry, a: Action): void {
    if (a.kind === "send") {
      e.sent++;
      try {
        // false: the kernel did not take the datagram (socket buffer full); counted, not retried —
        // a BFD packet late is worth no more than a packet lost.
        if (!e.tx.send(a.bytes, e.desired.multihop ? this.ports.multi : this.ports.single, e.peer)) {
          this.socketError(
            e.desired.key,
            Object.assign(new Error("send not accepted"), { code: "SendNotAccepted" }),
          );
        }
      } catch (err) {
        // No route or interface down: the peer will time us out; keep running.
        this.socketError(e.desired.key, err instanceof Error ? err : new Error(String(err)));
      }
      return;
    }
    const key = e.desired.key;
    const diag = diagName(a.diag);
    this.log("bfd session state", { key, from: a.from, to: a.to, diag });
    const cbs = a.to === "Up" ? this.listeners.up : a.from === "Up" ? this.listeners.down : [];
    for (const cb of cbs) {
      try {
        cb(key, diag);
      } catch (err) {
        // A listener's bug must not stop the protocol.
        this.log("bfd listener failed", { key, error: String(err) });
      }
    }
  }

  /** Arms the one timer for the earliest deadline of all sessions. */
  private reschedule(): void {
    if (this.closed) return;
    let next = Number.POSITIVE_INFINITY;
    let detect = false;
    for (const e of this.entries.values()) {
      const { nextTxAt, detectAt } = e.session;
      if (nextTxAt !== null && nextTxAt < next) {
        next = nextTxAt;
        detect = false;
      }
      if (detectAt !== null && detectAt < next) {
        next = detectAt;
        detect = true;
      }
    }
    if (next === this.armedFor) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = null;
    if (next === Number.POSITIVE_INFINITY) return;
    this.armedFor = next;
    this.armedDetect = detect;
    // setTimeout has 1 ms granularity. Transmission may be up to ~1 ms late (ceil); a detection
    // deadline is armed early (floor) and met exactly in fire(), so failures are not reported late.
    const delay = next - this.now();
    this.timer = setTimeout(() => this.fire(), Math.max(0, detect ? Math.floor(delay) : Math.ceil(delay)));
  }

  private fire(): void {
    this.timer = null;
    const armed = this.armedFor;
    this.armedFor = null;
    let now = this.now();
    // A detection deadline less than 1.5 ms away: wait it out here (this only happens when a peer
    // has really gone silent, never in steady state, because every packet pushes the deadline).
    if (armed !== null && this.armedDetect && now < armed && armed - now < 1.5) {
      while (now < armed) now = this.now();
    }
    if (armed !== null && now >= armed) {
      const late = now - armed;
      this.lateness[this.fires % this.lateness.length] = late;
      this.fires++;
      if (late > this.latenessMaxEver) this.latenessMaxEver = late;
      if (late > 50) this.stalls++;
    }
    this.runDue(false);
  }

  /**
   * Steps every session whose deadline has passed. Before declaring any session down, it lets the
   * event loop read the sockets once: after the process was descheduled, Bun runs due timers
   * before pending I/O, and a packet that reached the kernel in time must not be ignored. Measured:
   * `timer → setImmediate → I/O → setImmediate`, hence two hops.
   */
  private runDue(ioFlushed: boolean): void {
    if (this.closed) return;
    const now = this.now();
    if (!ioFlushed) {
      for (const e of this.entries.values()) {
        const d = e.session.detectAt;
        if (d !== null && d <= now) {
          setImmediate(() => setImmediate(() => this.runDue(true)));
          return;
        }
      }
    }
    for (const e of [...this.entries.values()]) {
      const d = nextDeadline(e.session);
      if (d !== null && d <= now) this.apply1(e, onTimer(e.session, now, this.random()));
    }
    this.reschedule();
  }

  status(): BfdStatus {
    const wallOffset = Date.now() - this.now();
    const sessions = [...this.entries.values()].map((e): SessionStatus => {
      const s = e.session;
      const st: SessionStatus = {
        key: e.desired.key,
        peer: e.peer,
        local: e.desired.local ?? null,
        multihop: e.desired.multihop,
        state: s.state,
        remoteState: s.remoteState,
        localDiscr: s.localDiscr,
        remoteDiscr: s.remoteDiscr,
        txIntervalMs: txIntervalMs(s),
        rxIntervalMs: rxIntervalMs(s),
        detectionTimeMs: detectionTimeMs(s),
        detectMult: s.params.detectMult,
        remoteDetectMult: s.remoteDetectMult,
        lastDiag: diagName(s.lastDiag),
        flaps: s.flaps,
        pollActive: s.pollActive,
        srcPort: e.tx.srcPort,
        packetsSent: e.sent,
        packetsReceived: e.received,
      };
      if (s.upSince !== null) st.upSince = new Date(wallOffset + s.upSince).toISOString();
      return st;
    });
    const n = Math.min(this.fires, this.lateness.length);
    const sorted = Array.from(this.lateness.subarray(0, n)).sort((a, b) => a - b);
    const q = (f: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(f * n))]!);
    return {
      sessions,
      drops: { ...this.drops },
      socketErrors: Object.fromEntries(this.socketErrors),
      timer: {
        fires: this.fires,
        latenessP50Ms: q(0.5),
        latenessP99Ms: q(0.99),
        latenessMaxMs: n ? sorted[n - 1]! : 0,
        latenessMaxEverMs: this.latenessMaxEver,
        stalls: this.stalls,
      },
    };
  }

  /** Announces AdminDown on every session, closes every socket. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.chain;
    for (const e of [...this.entries.values()]) this.remove(e);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.rxSingle?.close();
    this.rxMulti?.close();
    this.rxSingle = null;
    this.rxMulti = null;
  }
}
