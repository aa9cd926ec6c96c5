/** The shapes a BGP session shows the speaker: its dependencies, its log, and its status. */

import type { FsmState } from "./fsm.ts";
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
