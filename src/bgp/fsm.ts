/**
 * The BGP finite state machine of RFC 4271 §8, pure: `step(fsm, event, ctx)` returns the next
 * state and the actions for the session to carry out. Time (`ctx.now`, ms) and randomness
 * (`ctx.random`, [0,1)) are passed in; timers are absolute deadlines kept in the state, and
 * `nextDeadline()` tells the driver when to wake up and which timer event to feed back.
 *
 * Covered: connect-retry with jitter (RFC 4271 §10: 0.75–1.0) and exponential backoff, hold time
 * negotiation (0 or ≥ 3 s, §4.2/§6.2), keepalive at the configured interval or hold/3, OPEN
 * validation (§6.2, via codec/open.ts), passive peers (§8.1.1 PassiveTcpEstablishment), idle hold
 * after errors (§8.1.1 DampPeerOscillations, backoff), and the connection-collision hook of §6.8
 * (the session holds the second connection until its OPEN arrives and calls `collisionWinner`).
 * FSM errors carry the RFC 6608 subcode of the state they happened in.
 */
import { CeaseSub, ErrCode, FsmSub } from "./codec/constants.ts";
import type { BgpDecodeError } from "./codec/errors.ts";
import { type OpenExpectation, type OpenMessage, validateOpen } from "./codec/open.ts";

export type FsmState = "Idle" | "Connect" | "Active" | "OpenSent" | "OpenConfirm" | "Established";

export const FSM_STATES: readonly FsmState[] = [
  "Idle",
  "Connect",
  "Active",
  "OpenSent",
  "OpenConfirm",
  "Established",
];

export interface FsmConfig {
  /** Do not initiate TCP; wait for the peer (RFC 4271 PassiveTcpEstablishment). */
  passive: boolean;
  /** Base connect-retry interval, seconds. */
  connectRetrySeconds: number;
  /** Upper bound of the backed-off connect-retry and idle-hold intervals, seconds. */
  maxBackoffSeconds: number;
  /** Our proposed hold time, seconds (0 disables keepalives and the hold timer). */
  holdTime: number;
  /** Keepalive interval, seconds; defaults to hold/3. Never more than negotiated hold/3. */
  keepaliveTime?: number;
  /** Base idle hold after an error, seconds (doubles per consecutive error). */
  idleHoldSeconds: number;
  open: OpenExpectation;
}

export interface FsmTimers {
  connectRetry?: number;
  hold?: number;
  keepalive?: number;
  idleHold?: number;
}

export interface Fsm {
  readonly state: FsmState;
  /** ManualStart seen and no ManualStop since. */
  readonly enabled: boolean;
  readonly connectRetryCounter: number;
  /** Consecutive error-caused downs, for idle-hold backoff; reset when Established. */
  readonly errorCount: number;
  readonly timers: FsmTimers;
  /** Negotiated hold time and keepalive interval, seconds (valid from OpenConfirm on). */
  readonly holdTime: number;
  readonly keepaliveTime: number;
  /** The peer's OPEN once received and accepted. */
  readonly peerOpen?: OpenMessage;
  readonly peerAsn?: number;
  readonly as4?: boolean;
}

export type FsmEvent =
  | { type: "ManualStart" }
  | { type: "ManualStop" }
  | { type: "ConnectRetryTimerExpires" }
  | { type: "HoldTimerExpires" }
  | { type: "KeepaliveTimerExpires" }
  | { type: "IdleHoldTimerExpires" }
  /** Our outgoing TCP connection completed. */
  | { type: "TcpConnectionConfirmed" }
  /** A TCP connection from the peer was accepted by the listener. */
  | { type: "TcpConnectionIncoming" }
  | { type: "TcpConnectionFails" }
  | { type: "BGPOpen"; open: OpenMessage }
  /** A message that failed to decode with session-reset severity (header, OPEN or UPDATE). */
  | { type: "DecodeError"; error: BgpDecodeError }
  | { type: "NotifMsg"; code: number; subcode: number }
  | { type: "KeepAliveMsg" }
  | { type: "UpdateMsg" }
  | { type: "RouteRefreshMsg" }
  /** §6.8: this connection lost a collision and must be closed with Cease/7. */
  | { type: "OpenCollisionDump" };

export type FsmEventType = FsmEvent["type"];

export type FsmAction =
  | { type: "connect" }
  | { type: "disconnect" }
  | { type: "sendOpen" }
  | { type: "sendKeepalive" }
  | { type: "sendNotification"; code: number; subcode: number; data?: Uint8Array }
  /** Accept the pending incoming connection as this session's connection. */
  | { type: "acceptIncoming" }
  /** Close the pending incoming connection. */
  | { type: "rejectIncoming" }
  /** Keep the pending incoming connection aside until its OPEN decides the collision (§6.8). */
  | { type: "holdIncoming" }
  | { type: "established" }
  /** The session left Established (routes from the peer are gone, RIB-out must be resent). */
  | { type: "down"; reason: string };

export interface StepContext {
  now: number;
  random: () => number;
}

export interface StepResult {
  fsm: Fsm;
  actions: FsmAction[];
}

export function initialFsm(): Fsm {
  return {
    state: "Idle",
    enabled: false,
    connectRetryCounter: 0,
    errorCount: 0,
    timers: {},
    holdTime: 0,
    keepaliveTime: 0,
  };
}

/** RFC 4271 §10: timers are jittered by a factor in [0.75, 1.0]. */
function jitter(ms: number, ctx: StepContext): number {
  return Math.round(ms * (0.75 + 0.25 * ctx.random()));
}

function backoffMs(baseS: number, n: number, maxS: number): number {
  return Math.min(baseS * 2 ** Math.min(n, 16), Math.max(baseS, maxS)) * 1000;
}

/** Large hold timer while waiting for the OPEN (RFC 4271 §8.2.2 suggests 4 minutes). */
const OPEN_HOLD_MS = 240_000;

/** The earliest pending timer and the event it fires, or null. */
export function nextDeadline(f: Fsm): { at: number; event: FsmEvent } | null {
  const t = f.timers;
  const cands: [number | undefined, FsmEvent][] = [
    [t.idleHold, { type: "IdleHoldTimerExpires" }],
    [t.connectRetry, { type: "ConnectRetryTimerExpires" }],
    [t.hold, { type: "HoldTimerExpires" }],
    [t.keepalive, { type: "KeepaliveTimerExpires" }],
  ];
  let best: { at: number; event: FsmEvent } | null = null;
  for (const [at, event] of cands)
    if (at !== undefined && (best === null || at < best.at)) best = { at, event };
  return best;
}

/** §6.8: which connection survives a collision. The higher BGP Identifier's connection wins. */
export function collisionWinner(
  localBgpId: number,
  remoteBgpId: number,
): "local-initiated" | "remote-initiated" {
  return localBgpId >>> 0 < remoteBgpId >>> 0 ? "remote-initiated" : "local-initiated";
}

/** Leaving for Idle after an error: drop the connection, schedule idle hold with backoff. */
function toIdleAfterError(
  f: Fsm,
  cfg: FsmConfig,
  ctx: StepContext,
  actions: FsmAction[],
  reason: string,
): StepResult {
  if (f.state === "Established") actions.push({ type: "down", reason });
  actions.push({ type: "disconnect" });
  const errorCount = f.errorCount + 1;
  const hold = jitter(backoffMs(cfg.idleHoldSeconds, errorCount - 1, cfg.maxBackoffSeconds), ctx);
  return {
    fsm: {
      ...f,
      state: "Idle",
      connectRetryCounter: f.connectRetryCounter + 1,
      errorCount,
      timers: f.enabled ? { idleHold: ctx.now + hold } : {},
      peerOpen: undefined,
    },
    actions,
  };
}

function connectRetryAt(f: Fsm, cfg: FsmConfig, ctx: StepContext): number {
  return (
    ctx.now + jitter(backoffMs(cfg.connectRetrySeconds, f.connectRetryCounter, cfg.maxBackoffSeconds), ctx)
  );
}

/** Connect (active) or Active (passive) with a fresh connect-retry timer. */
function start(f: Fsm, cfg: FsmConfig, ctx: StepContext): StepResult {
  if (cfg.passive) {
    return { fsm: { ...f, state: "Active", timers: {} }, actions: [] };
  }
  return {
    fsm: { ...f, state: "Connect", timers: { connectRetry: connectRetryAt(f, cfg, ctx) } },
    actions: [{ type: "connect" }],
  };
}

/**
 * RFC 6608 §3: the FSM Error subcode names the state the unexpected event arrived in (1 OpenSent,
 * 2 OpenConfirm, 3 Established; 0 Unspecified otherwise).
 */
export function fsmErrorSubcode(state: FsmState): number {
  switch (state) {
    case "OpenSent":
      return FsmSub.UNEXPECTED_IN_OPENSENT;
    case "OpenConfirm":
      return FsmSub.UNEXPECTED_IN_OPENCONFIRM;
    case "Established":
      return FsmSub.UNEXPECTED_IN_ESTABLISHED;
    default:
      return FsmSub.UNSPECIFIED;
  }
}

function fsmError(f: Fsm, cfg: FsmConfig, ctx: StepContext, reason: string): StepResult {
  return toIdleAfterError(
    f,
    cfg,
    ctx,
    [{ type: "sendNotification", code: ErrCode.FSM, subcode: fsmErrorSubcode(f.state) }],
    reason,
  );
}

function afterOpenSent(f: Fsm, ctx: StepContext): Fsm {
  return { ...f, state: "OpenSent", timers: { hold: ctx.now + OPEN_HOLD_MS } };
}

function keepaliveMs(f: Fsm, ctx: StepContext): number {
  return jitter(f.keepaliveTime * 1000, ctx);
}

/** One FSM transition. Never throws. */
export function step(f: Fsm, ev: FsmEvent, cfg: FsmConfig, ctx: StepContext): StepResult {
  // Administrative events first: they mean the same in every state.
  if (ev.type === "ManualStart") {
    if (f.state !== "Idle" || f.enabled) return { fsm: { ...f, enabled: true }, actions: [] };
    return start({ ...f, enabled: true, connectRetryCounter: 0, errorCount: 0 }, cfg, ctx);
  }
  if (ev.type === "ManualStop") {
    const actions: FsmAction[] = [];
    if (f.state === "OpenSent" || f.state === "OpenConfirm" || f.state === "Established") {
      actions.push({ type: "sendNotification", code: ErrCode.CEASE, subcode: CeaseSub.ADMIN_SHUTDOWN });
    }
    if (f.state === "Established") actions.push({ type: "down", reason: "administratively stopped" });
    if (f.state !== "Idle") actions.push({ type: "disconnect" });
    if (ev.type === "ManualStop" && f.state === "Idle" && !f.enabled) return { fsm: f, actions };
    return {
      fsm: { ...f, state: "Idle", enabled: false, connectRetryCounter: 0, timers: {}, peerOpen: undefined },
      actions,
    };
  }

  switch (f.state) {
    case "Idle":
      if (ev.type === "IdleHoldTimerExpires" && f.enabled) return start({ ...f, timers: {} }, cfg, ctx);
      if (ev.type === "TcpConnectionIncoming") return { fsm: f, actions: [{ type: "rejectIncoming" }] };
      // RFC 4271 §8.2.2: all other events are ignored in Idle.
      return { fsm: f, actions: [] };

    case "Connect":
    case "Active":
      switch (ev.type) {
        case "ConnectRetryTimerExpires":
          if (f.state === "Active" && cfg.passive) return { fsm: f, actions: [] };
          return {
            fsm: {
              ...f,
              state: "Connect",
              connectRetryCounter: f.connectRetryCounter + 1,
              timers: {
                connectRetry: connectRetryAt(
                  { ...f, connectRetryCounter: f.connectRetryCounter + 1 },
                  cfg,
                  ctx,
                ),
              },
            },
            actions: [{ type: "disconnect" }, { type: "connect" }],
          };
        case "TcpConnectionConfirmed":
          if (f.state !== "Connect") return { fsm: f, actions: [{ type: "disconnect" }] };
          return { fsm: afterOpenSent(f, ctx), actions: [{ type: "sendOpen" }] };
        case "TcpConnectionIncoming":
          // Take the peer's connection; abandon our own attempt if one is in flight.
          return {
            fsm: afterOpenSent(f, ctx),
            actions:
              f.state === "Connect"
                ? [{ type: "disconnect" }, { type: "acceptIncoming" }, { type: "sendOpen" }]
                : [{ type: "acceptIncoming" }, { type: "sendOpen" }],
          };
        case "TcpConnectionFails":
          // Connect → Active: wait for the retry timer (or an incoming connection).
          return {
            fsm: {
              ...f,
              state: "Active",
              timers: cfg.passive
                ? {}
                : { connectRetry: f.timers.connectRetry ?? connectRetryAt(f, cfg, ctx) },
            },
            actions: [],
          };
        case "HoldTimerExpires":
        case "KeepaliveTimerExpires":
        case "IdleHoldTimerExpires":
          return { fsm: f, actions: [] };
        default:
          // Any BGP message before a connection is a protocol error (§8.2.2 "any other event").
          return toIdleAfterError(f, cfg, ctx, [], `unexpected ${ev.type} in ${f.state}`);
      }

    case "OpenSent":
      switch (ev.type) {
        case "BGPOpen":
          return acceptOpen(f, ev.open, cfg, ctx);
        case "TcpConnectionFails":
          // §8.2.2: back to Active and retry.
          return {
            fsm: {
              ...f,
              state: cfg.passive ? "Active" : "Active",
              timers: cfg.passive ? {} : { connectRetry: connectRetryAt(f, cfg, ctx) },
            },
            actions: [{ type: "disconnect" }],
          };
        case "TcpConnectionIncoming":
          return { fsm: f, actions: [{ type: "holdIncoming" }] };
        case "HoldTimerExpires":
          return toIdleAfterError(
            f,
            cfg,
            ctx,
            [{ type: "sendNotification", code: ErrCode.HOLD_TIMER_EXPIRED, subcode: 0 }],
            "hold timer expired in OpenSent",
          );
        default:
          return commonErrors(f, ev, cfg, ctx);
      }

    case "OpenConfirm":
      switch (ev.type) {
        case "KeepAliveMsg":
          return {
            fsm: {
              ...f,
              state: "Established",
              errorCount: 0,
              connectRetryCounter: 0,
              timers: holdTimers(f, ctx, true),
            },
            actions: [{ type: "established" }],
          };
        case "KeepaliveTimerExpires":
          return {
            fsm: { ...f, timers: { ...f.timers, keepalive: ctx.now + keepaliveMs(f, ctx) } },
            actions: [{ type: "sendKeepalive" }],
          };
        case "TcpConnectionIncoming":
          return { fsm: f, actions: [{ type: "holdIncoming" }] };
        case "HoldTimerExpires":
          return toIdleAfterError(
            f,
            cfg,
            ctx,
            [{ type: "sendNotification", code: ErrCode.HOLD_TIMER_EXPIRED, subcode: 0 }],
            "hold timer expired in OpenConfirm",
          );
        default:
          return commonErrors(f, ev, cfg, ctx);
      }

    case "Established":
      switch (ev.type) {
        case "KeepAliveMsg":
        case "UpdateMsg":
        case "RouteRefreshMsg":
          return {
            fsm: {
              ...f,
              timers: { ...f.timers, hold: f.holdTime > 0 ? ctx.now + f.holdTime * 1000 : undefined },
            },
            actions: [],
          };
        case "KeepaliveTimerExpires":
          return {
            fsm: { ...f, timers: { ...f.timers, keepalive: ctx.now + keepaliveMs(f, ctx) } },
            actions: [{ type: "sendKeepalive" }],
          };
        case "TcpConnectionIncoming":
          // An established session keeps its connection (§6.8: collision with Established).
          return { fsm: f, actions: [{ type: "rejectIncoming" }] };
        case "HoldTimerExpires":
          return toIdleAfterError(
            f,
            cfg,
            ctx,
            [{ type: "sendNotification", code: ErrCode.HOLD_TIMER_EXPIRED, subcode: 0 }],
            "hold timer expired",
          );
        default:
          return commonErrors(f, ev, cfg, ctx);
      }
  }
}

/** Hold and keepalive timers after negotiation (both off when the hold time is 0). */
function holdTimers(f: Fsm, ctx: StepContext, fresh: boolean): FsmTimers {
  if (f.holdTime === 0) return {};
  return {
    hold: ctx.now + f.holdTime * 1000,
    keepalive: fresh ? ctx.now + keepaliveMs(f, ctx) : f.timers.keepalive,
  };
}

/** Events with the same meaning in OpenSent, OpenConfirm and Established. */
function commonErrors(f: Fsm, ev: FsmEvent, cfg: FsmConfig, ctx: StepContext): StepResult {
  switch (ev.type) {
    case "TcpConnectionFails":
      return toIdleAfterError(f, cfg, ctx, [], "connection closed by peer");
    case "NotifMsg":
      return toIdleAfterError(f, cfg, ctx, [], `NOTIFICATION ${ev.code}/${ev.subcode} from peer`);
    case "DecodeError":
      return toIdleAfterError(
        f,
        cfg,
        ctx,
        [{ type: "sendNotification", code: ev.error.code, subcode: ev.error.subcode, data: ev.error.data }],
        `decode error: ${ev.error.message}`,
      );
    case "OpenCollisionDump":
      // §6.8: not an error of the peer's, so no idle-hold backoff: restart at once.
      return {
        fsm: { ...f, state: "Idle", timers: f.enabled ? { idleHold: ctx.now } : {}, peerOpen: undefined },
        actions: [
          { type: "sendNotification", code: ErrCode.CEASE, subcode: CeaseSub.CONNECTION_COLLISION },
          ...(f.state === "Established" ? [{ type: "down", reason: "connection collision" } as const] : []),
          { type: "disconnect" },
        ],
      };
    case "ConnectRetryTimerExpires":
    case "IdleHoldTimerExpires":
      // Stale timers from an earlier state: ignore.
      return { fsm: f, actions: [] };
    default:
      return fsmError(f, cfg, ctx, `unexpected ${ev.type} in ${f.state}`);
  }
}

function acceptOpen(f: Fsm, open: OpenMessage, cfg: FsmConfig, ctx: StepContext): StepResult {
  const check = validateOpen(open, cfg.open);
  if (!check.ok) {
    return toIdleAfterError(
      f,
      cfg,
      ctx,
      [
        {
          type: "sendNotification",
          code: check.error.code,
          subcode: check.error.subcode,
          data: check.error.data,
        },
      ],
      `OPEN rejected: ${check.error.message}`,
    );
  }
  // §4.2: the negotiated hold time is the smaller of the two; 0 means no keepalives at all.
  const holdTime = Math.min(cfg.holdTime, open.holdTime);
  const keepaliveTime =
    holdTime === 0
      ? 0
      : Math.max(1, Math.min(cfg.keepaliveTime ?? Math.floor(holdTime / 3), Math.floor(holdTime / 3)));
  const next: Fsm = {
    ...f,
    state: "OpenConfirm",
    holdTime,
    keepaliveTime,
    peerOpen: open,
    peerAsn: check.peerAsn,
    as4: check.as4,
  };
  return {
    fsm: { ...next, timers: holdTimers(next, ctx, true) },
    actions: [{ type: "sendKeepalive" }],
  };
}
