/**
 * The BFD manager's vocabulary, shared by the proxy on the main thread (manager.ts), the engine
 * in the timing worker (engine.ts) and their callers: the desired session, its status, and the
 * validation of a desired set (pure).
 */

import { canonicalIp, parseIp } from "../util/ip.ts";
import { type AuthConfig, validateAuth } from "./auth.ts";
import type { BfdState, DropReason } from "./codec.ts";
import { type BfdProfile, validateProfile } from "./profile.ts";

export interface DesiredSession {
  /** Caller's identity for the session (e.g. the BGPPeer name); events carry it. */
  key: string;
  peer: string;
  local?: string;
  ifname?: string;
  multihop: boolean;
  profile: BfdProfile;
  auth?: AuthConfig;
}

export interface SessionStatus {
  key: string;
  peer: string;
  local: string | null;
  multihop: boolean;
  state: BfdState;
  remoteState: BfdState;
  localDiscr: number;
  remoteDiscr: number;
  /** Current transmit interval before jitter, and the interval the remote transmits at. */
  txIntervalMs: number;
  rxIntervalMs: number;
  detectionTimeMs: number;
  detectMult: number;
  remoteDetectMult: number;
  lastDiag: string;
  flaps: number;
  upSince?: string;
  pollActive: boolean;
  srcPort: number | null;
  packetsSent: number;
  packetsReceived: number;
}

export interface BfdStatus {
  sessions: SessionStatus[];
  /** Received packets discarded, by reason (RFC 5880 §6.8.6 order). */
  drops: Record<DropReason, number>;
  /**
   * Scheduler health: lateness quantiles over the last 4096 fires; the all-time maximum and the
   * number of fires more than 50 ms late (stalls of the process, e.g. CPU starvation).
   */
  timer: {
    fires: number;
    latenessP50Ms: number;
    latenessP99Ms: number;
    latenessMaxMs: number;
    latenessMaxEverMs: number;
    stalls: number;
  };
  /** Errors reported by the sockets (e.g. ECONNREFUSED from ICMP port unreachable), by code. */
  socketErrors: Record<string, number>;
}

export type BfdEvent = "up" | "down";
export type BfdListener = (key: string, diag: string) => void;
export type BfdLog = (msg: string, fields?: Record<string, unknown>) => void;

export interface BfdManagerOptions {
  /** Monotonic milliseconds; default performance.now. */
  now?: () => number;
  random?: () => number;
  log?: BfdLog;
  /** Ports to use (tests may move them); defaults 3784 / 4784. */
  singleHopPort?: number;
  multihopPort?: number;
}

export class BfdConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid BFD sessions:\n${problems.join("\n")}`);
  }
}

/** Validates a desired set; returns one message per problem (empty when it can be applied). */
export function validateSessions(desired: DesiredSession[]): string[] {
  const problems: string[] = [];
  const keys = new Set<string>();
  const endpoints = new Set<string>();
  for (const d of desired) {
    const at = `session ${JSON.stringify(d.key)}`;
    if (!d.key) problems.push("session key must not be empty");
    if (keys.has(d.key)) problems.push(`${at}: duplicate key`);
    keys.add(d.key);
    const peer = parseIp(d.peer);
    if (!peer) problems.push(`${at}: peer: not an IP address: ${JSON.stringify(d.peer)}`);
    if (d.local !== undefined) {
      const local = parseIp(d.local);
      if (!local) problems.push(`${at}: local: not an IP address: ${JSON.stringify(d.local)}`);
      else if (peer && local.family !== peer.family) problems.push(`${at}: local and peer differ in family`);
    }
    if (peer) {
      const ep = `${d.multihop ? "m" : "s"}/${canonicalIp(d.peer)}`;
      if (endpoints.has(ep)) problems.push(`${at}: another session already runs to ${d.peer}`);
      endpoints.add(ep);
    }
    for (const p of validateProfile(d.profile)) problems.push(`${at}: ${p}`);
    if (d.auth) {
      const a = validateAuth(d.auth);
      if (a) problems.push(`${at}: ${a}`);
    }
  }
  return problems;
}
