/** The shapes a BGP session shows the speaker: its dependencies, its log, its status (and how it is built) and its send timing. */

import type { Fsm, FsmState } from "./fsm.ts";
import type { IfaceTable } from "./nexthop.ts";

export type Log = (
  level: "debug" | "info" | "warn" | "error",
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export interface SessionStatus {
  name: string;
  address: string;
  state: FsmState;
  uptimeSeconds?: number;
  prefixesSent: number;
  prefixesReceived: number;
  updatesSent: number;
  updatesReceived: number;
  notificationsSent: number;
  notificationsReceived: number;
  /** Counts of decode problems by RFC 7606 action and of dropped connections by reason. */
  drops: Record<string, number>;
  /** UPDATE errors that kept the session (RFC 7606), by "action|reason" (e.g. "treat-as-withdraw|malformed-as-path"). */
  updateErrors: Record<string, number>;
  lastError?: string;
  peerRouterId?: string;
  negotiatedHoldTime?: number;
  enabled: boolean;
}

/**
 * The last flush that moved prefixes, timed on the speaker's side (performance.now, ms): from the
 * start of the diff to the first UPDATE handed to the socket, and to the last byte of the flush
 * (End-of-RIB included when it went with it) taken by the kernel.
 */
export interface SendTiming {
  peer: string;
  prefixes: number;
  updates: number;
  /** Diff and encoding, until the first UPDATE was handed to the socket. */
  encodeMs: number;
  /** First UPDATE handed to the socket → last byte taken by the kernel (absent while queued). */
  writeMs?: number;
  /** The flush carried End-of-RIB. */
  endOfRib: boolean;
}

/** A session's status from its parts (uptime and prefixes sent only while Established). */
export function sessionStatus(p: {
  name: string;
  address: string;
  fsm: Fsm;
  now: number;
  establishedAt: number | null;
  prefixesSent: number;
  prefixesReceived: number;
  counters: Pick<
    SessionStatus,
    "updatesSent" | "updatesReceived" | "notificationsSent" | "notificationsReceived"
  >;
  drops: Record<string, number>;
  updateErrors: Record<string, number>;
  lastError: string | undefined;
}): SessionStatus {
  const open = p.fsm.peerOpen;
  const up = p.fsm.state === "Established";
  return {
    name: p.name,
    address: p.address,
    state: p.fsm.state,
    ...(p.establishedAt !== null && up
      ? { uptimeSeconds: Math.floor((p.now - p.establishedAt) / 1000) }
      : {}),
    prefixesSent: up ? p.prefixesSent : 0,
    prefixesReceived: p.prefixesReceived,
    ...p.counters,
    drops: { ...p.drops },
    updateErrors: { ...p.updateErrors },
    ...(p.lastError !== undefined ? { lastError: p.lastError } : {}),
    ...(open
      ? {
          peerRouterId: [24, 16, 8, 0].map((s) => (open.bgpId >>> s) & 255).join("."),
          negotiatedHoldTime: p.fsm.holdTime,
        }
      : {}),
    enabled: p.fsm.enabled,
  };
}

export interface SessionDeps {
  routerId: string;
  now: () => number;
  random: () => number;
  log: Log;
  /** The speaker was restarted (RFC 4724 R bit in our first OPENs). */
  restarted: boolean;
  /** The host's interfaces and addresses (default: os.networkInterfaces()), for next hops. */
  interfaces?: () => IfaceTable;
  /** How often an Established session re-reads those addresses, ms (default 30 000). */
  addressCheckMs?: number;
  /** Called when the session enters or leaves Established. */
  onStateChange?: (name: string, state: FsmState) => void;
}
