/**
 * One BFD session in asynchronous mode (RFC 5880 §6.2, §6.5, §6.8): the state machine
 * Down/Init/Up/AdminDown, discriminators, Poll/Final sequences for timer changes, slow transmission
 * (≥ 1 s) until Up, jittered periodic transmission (§6.8.7), the detection timer (§6.8.4), passive
 * role (§6.1), diagnostics and authentication state.
 *
 * Pure: every entry point takes the session value, the current time in milliseconds and a random
 * number in [0, 1) for jitter, and returns the new session value plus actions (packets to send,
 * state changes). The caller owns clocks and sockets; `nextDeadline` says when to call `onTimer`.
 *
 * Not implemented: Demand mode (we never set D and keep transmitting if the peer does), the Echo
 * function (rejected at profile validation, see profile.ts).
 */

import { AUTH_RX_INITIAL, type AuthConfig, type AuthRxState, encodeSigned, verifyAuth } from "./auth.ts";
import {
  BFD_VERSION,
  type BfdState,
  type ControlPacket,
  DIAG,
  type DropReason,
  encodeControl,
} from "./codec.ts";

/** RFC 5880 §6.8.3: while not Up, bfd.DesiredMinTxInterval is at least one second. */
export const SLOW_TX_US = 1_000_000;

export interface SessionParams {
  /** Desired Min TX Interval once Up, microseconds. */
  desiredMinTxUs: number;
  /** Required Min RX Interval, microseconds. */
  requiredMinRxUs: number;
  detectMult: number;
  passive: boolean;
  auth?: AuthConfig;
}

export interface Session {
  readonly params: SessionParams;
  readonly state: BfdState;
  readonly remoteState: BfdState;
  readonly localDiscr: number;
  readonly remoteDiscr: number;
  /** bfd.LocalDiag: sent in every packet. */
  readonly diag: number;
  /** The diagnostic of the last transition out of Up (for status), or of the last local down. */
  readonly lastDiag: number;
  /** Advertised bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval (µs). */
  readonly desiredMinTx: number;
  readonly requiredMinRx: number;
  /** Values in force for the transmit interval and detection time while a Poll is pending (§6.8.3). */
  readonly txBase: number;
  readonly rxBase: number;
  readonly remoteMinRx: number;
  readonly remoteDesiredMinTx: number;
  readonly remoteDetectMult: number;
  readonly pollActive: boolean;
  readonly pollQueued: boolean;
  readonly nextTxAt: number | null;
  readonly detectAt: number | null;
  readonly authRx: AuthRxState;
  readonly authTxSeq: number;
  readonly flaps: number;
  readonly upSince: number | null;
  readonly lastRxAt: number | null;
}

export type Action =
  | { kind: "send"; packet: ControlPacket; bytes: Uint8Array }
  | { kind: "state"; from: BfdState; to: BfdState; diag: number };

export interface Step {
  session: Session;
  actions: Action[];
  /** Set when a received packet was discarded. */
  drop?: DropReason;
}

/** Creates a session in Down. A non-passive session sends its first packet at once. */
export function newSession(params: SessionParams, localDiscr: number, now: number): Session {
  if (localDiscr === 0) throw new RangeError("local discriminator must be nonzero");
  const tx = Math.max(params.desiredMinTxUs, SLOW_TX_US);
  return {
    params,
    state: "Down",
    remoteState: "Down",
    localDiscr,
    remoteDiscr: 0,
    diag: DIAG.None,
    lastDiag: DIAG.None,
    desiredMinTx: tx,
    requiredMinRx: params.requiredMinRxUs,
    txBase: tx,
    rxBase: params.requiredMinRxUs,
    remoteMinRx: 1,
    remoteDesiredMinTx: 0,
    remoteDetectMult: 0,
    pollActive: false,
    pollQueued: false,
    nextTxAt: params.passive ? null : now,
    detectAt: null,
    authRx: AUTH_RX_INITIAL,
    authTxSeq: 0,
    flaps: 0,
    upSince: null,
    lastRxAt: null,
  };
}

/** The earliest time `onTimer` must run, or null when nothing is scheduled. */
export function nextDeadline(s: Session): number | null {
  if (s.nextTxAt === null) return s.detectAt;
  if (s.detectAt === null) return s.nextTxAt;
  return Math.min(s.nextTxAt, s.detectAt);
}

/** The transmit interval before jitter, ms (§6.8.7). */
export function txIntervalMs(s: Session): number {
  return Math.max(s.txBase, s.remoteMinRx) / 1000;
}

/** The interval at which we expect the remote's packets, ms. */
export function rxIntervalMs(s: Session): number {
  return Math.max(s.rxBase, s.remoteDesiredMinTx) / 1000;
}

/** Detection time in asynchronous mode (§6.8.4), ms; 0 until the remote's multiplier is known. */
export function detectionTimeMs(s: Session): number {
  return s.remoteDetectMult * rxIntervalMs(s);
}

/** §6.8.7: 75–100% of the interval, 75–90% when bfd.DetectMult is 1. */
export function jittered(intervalMs: number, detectMult: number, rand: number): number {
  const span = detectMult === 1 ? 0.15 : 0.25;
  return intervalMs * (0.75 + span * rand);
}

/** Whether periodic transmission is allowed at all (§6.8.7). */
function mayTransmit(s: Session): boolean {
  if (s.remoteMinRx === 0) return false;
  if (s.params.passive && s.remoteDiscr === 0) return false;
  return true;
}

function scheduleTx(s: Session, now: number, rand: number): Session {
  if (!mayTransmit(s)) return { ...s, nextTxAt: null };
  return { ...s, nextTxAt: now + jittered(txIntervalMs(s), s.params.detectMult, rand) };
}

function buildPacket(s: Session, final: boolean): ControlPacket {
  return {
    version: BFD_VERSION,
    diag: s.diag,
    state: s.state,
    poll: s.pollActive && !final,
    final,
    cpi: false,
    demand: false,
    multipoint: false,
    detectMult: s.params.detectMult,
    myDiscr: s.localDiscr,
    yourDiscr: s.remoteDiscr,
    desiredMinTx: s.desiredMinTx,
    requiredMinRx: s.requiredMinRx,
    requiredMinEchoRx: 0,
  };
}

/** Builds a packet (signing it when auth is configured) and advances the auth sequence. */
function send(s: Session, final: boolean, actions: Action[]): Session {
  const packet = buildPacket(s, final);
  const auth = s.params.auth;
  if (!auth) {
    actions.push({ kind: "send", packet, bytes: encodeControl(packet) });
    return s;
  }
  const seq = (s.authTxSeq + 1) >>> 0;
  actions.push({ kind: "send", packet, bytes: encodeSigned(packet, auth, seq) });
  return { ...s, authTxSeq: seq };
}

function changeState(s: Session, to: BfdState, diag: number, now: number, actions: Action[]): Session {
  const from = s.state;
  if (from === to) return s;
  actions.push({ kind: "state", from, to, diag });
  let n: Session = { ...s, state: to };
  if (to === "Up") {
    n = { ...n, diag: DIAG.None, upSince: now };
    // Leave slow transmission: the configured interval is a timer change, announced by a Poll.
    n = applyTimers(n, n.params.desiredMinTxUs, n.params.requiredMinRxUs);
  } else {
    const lastDiag = diag !== DIAG.None ? diag : n.lastDiag;
    n = { ...n, diag: to === "Init" ? n.diag : diag, lastDiag, upSince: null };
    if (from === "Up") n = { ...n, flaps: n.flaps + 1 };
    const slow = Math.max(n.params.desiredMinTxUs, SLOW_TX_US);
    // Not Up: no poll; the slow rate applies at once (§6.8.3).
    n = {
      ...n,
      pollActive: false,
      pollQueued: false,
      desiredMinTx: slow,
      txBase: slow,
      requiredMinRx: n.params.requiredMinRxUs,
      rxBase: n.params.requiredMinRxUs,
    };
  }
  return n;
}

/**
 * Sets the advertised timers. While Up, a change starts a Poll Sequence (or queues one), and
 * an increased TX / reduced RX interval only takes effect when the Poll terminates (§6.8.3).
 */
function applyTimers(s: Session, txUs: number, rxUs: number): Session {
  if (txUs === s.desiredMinTx && rxUs === s.requiredMinRx) return s;
  if (s.state !== "Up") return { ...s, desiredMinTx: txUs, requiredMinRx: rxUs, txBase: txUs, rxBase: rxUs };
  return {
    ...s,
    desiredMinTx: txUs,
    requiredMinRx: rxUs,
    txBase: Math.min(txUs, s.txBase),
    rxBase: Math.max(rxUs, s.rxBase),
    pollActive: true,
    pollQueued: s.pollActive,
  };
}

/** The timer fired (or may have): detection expiry, then periodic transmission. */
export function onTimer(s0: Session, now: number, rand: number): Step {
  const actions: Action[] = [];
  let s = s0;
  if (s.detectAt !== null && now >= s.detectAt) {
    if (s.state === "Init" || s.state === "Up") {
      s = changeState(s, "Down", DIAG.ControlDetectionTimeExpired, now, actions);
      s = send(s, false, actions);
    }
    // §6.8.1: bfd.RemoteDiscr is zeroed when the Detection Time passes without a packet.
    s = { ...s, detectAt: null, remoteDiscr: 0, remoteState: "Down", authRx: AUTH_RX_INITIAL };
    s = scheduleTx(s, now, rand);
  }
  if (s.nextTxAt !== null && now >= s.nextTxAt) {
    s = send(s, false, actions);
    s = scheduleTx(s, now, rand);
  }
  return { session: s, actions };
}

/**
 * A packet that passed `decodeControl` and the manager's discriminator checks arrived for this
 * session. `raw` is the received payload (for authentication).
 */
export function onPacket(s0: Session, raw: Uint8Array, p: ControlPacket, now: number, rand: number): Step {
  const actions: Action[] = [];
  // §6.8.6 checks 9–11: authentication.
  const v = verifyAuth(raw, p, s0.params.auth, s0.authRx);
  if (!v.ok) return { session: s0, actions, drop: v.reason };
  const wasTransmitting = mayTransmit(s0) && s0.nextTxAt !== null;
  let s: Session = {
    ...s0,
    authRx: v.rx,
    remoteDiscr: p.myDiscr,
    remoteState: p.state,
    remoteMinRx: p.requiredMinRx,
    remoteDesiredMinTx: p.desiredMinTx,
    remoteDetectMult: p.detectMult,
    lastRxAt: now,
  };
  if (p.final && s.pollActive) {
    s = {
      ...s,
      pollActive: s.pollQueued,
      pollQueued: false,
      txBase: s.desiredMinTx,
      rxBase: s.requiredMinRx,
    };
  }
  s = { ...s, detectAt: now + detectionTimeMs(s) };
  // Reschedule transmission when it just became allowed or the interval shrank below the wait.
  if (!mayTransmit(s)) s = { ...s, nextTxAt: null };
  else if (!wasTransmitting || s.nextTxAt === null) s = { ...s, nextTxAt: now };
  else if (s.nextTxAt > now + txIntervalMs(s)) s = scheduleTx(s, now, rand);

  if (s.state === "AdminDown") return { session: s, actions, drop: "SessionAdminDown" };
  const before = s.state;
  const pollBefore = s.pollActive;
  if (p.state === "AdminDown") {
    if (s.state !== "Down") s = changeState(s, "Down", DIAG.NeighborSignaledSessionDown, now, actions);
  } else if (s.state === "Down") {
    if (p.state === "Down") s = changeState(s, "Init", DIAG.None, now, actions);
    else if (p.state === "Init") s = changeState(s, "Up", DIAG.None, now, actions);
  } else if (s.state === "Init") {
    if (p.state === "Init" || p.state === "Up") s = changeState(s, "Up", DIAG.None, now, actions);
  } else if (p.state === "Down") {
    s = changeState(s, "Down", DIAG.NeighborSignaledSessionDown, now, actions);
  }
  // §6.8.6: a Poll is answered at once with Final; a state change is announced at once.
  // A Poll we just started needs its own packet (P and F never share one).
  const pollStarted = s.pollActive && !pollBefore;
  if (p.poll) s = send(s, true, actions);
  if (pollStarted || (s.state !== before && !p.poll)) s = send(s, false, actions);
  return { session: s, actions };
}

/** Applies a new configuration (timers, multiplier, role, auth) to a running session. */
export function setParams(s0: Session, params: SessionParams, now: number, rand: number): Step {
  const actions: Action[] = [];
  const authChanged = JSON.stringify(s0.params.auth) !== JSON.stringify(params.auth);
  let s: Session = { ...s0, params, authRx: authChanged ? AUTH_RX_INITIAL : s0.authRx };
  const tx = s.state === "Up" ? params.desiredMinTxUs : Math.max(params.desiredMinTxUs, SLOW_TX_US);
  const pollBefore = s.pollActive;
  s = applyTimers(s, tx, params.requiredMinRxUs);
  if (s.pollActive && !pollBefore) s = send(s, false, actions);
  if (!mayTransmit(s)) s = { ...s, nextTxAt: null };
  else if (s.nextTxAt === null) s = { ...s, nextTxAt: now };
  else s = scheduleTx(s, now, rand);
  return { session: s, actions };
}

/** Administrative control (§6.8.16): AdminDown sends diag 7; leaving it starts again in Down. */
export function setAdminDown(s0: Session, down: boolean, now: number, rand: number): Step {
  const actions: Action[] = [];
  let s = s0;
  if (down && s.state !== "AdminDown") {
    s = changeState(s, "AdminDown", DIAG.AdministrativelyDown, now, actions);
    s = { ...s, detectAt: null };
    s = send(s, false, actions);
  } else if (!down && s.state === "AdminDown") {
    s = changeState(s, "Down", DIAG.None, now, actions);
  } else {
    return { session: s, actions };
  }
  return { session: scheduleTx(s, now, rand), actions };
}
