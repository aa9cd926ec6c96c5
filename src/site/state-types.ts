/**
 * The site state machine's types (src/site/state.ts is the reducer): its options, its state, the
 * events it takes and the effects it asks the driver to carry out.
 */

import type { ProposeError, SiteMessage } from "./codec.ts";
import type { AddressChange, SiteAssignment, Snapshot, Version } from "./table.ts";

export type AllocateFn = (
  config: string,
  prev: readonly SiteAssignment[] | undefined,
) => { ok: true; table: SiteAssignment[] } | { ok: false; message: string };

export interface SiteOptions {
  self: string;
  /** Every configured member, this one included. */
  members: readonly string[];
  /** How often this member sends its status to every other member. */
  statusMs: number;
  /** A member not heard for this long is not alive on the site channel. */
  deadMs: number;
  /** The longest a starting member waits to hear the others before it goes on without them. */
  startupMs: number;
  /** Least time between two snapshot requests to one member. */
  requestMs: number;
  /** A forwarded PUT not answered in this time fails (NotReady). */
  proposeTimeoutMs: number;
  /** Pure and deterministic: the table for `config`, continuing from `prev`. */
  allocate: AllocateFn;
}

export interface PeerView {
  readonly name: string;
  /** When a message from it was last taken; -Infinity when never. */
  readonly lastHeard: number;
  readonly version?: Version | undefined;
  readonly digest?: string | undefined;
  readonly ready: boolean;
  /** The last version it acknowledged as persisted and applied. */
  readonly acked?: Version | undefined;
  /** The sender's clock (µs of wall clock) of the message that told `version`; -1n: unknown. */
  readonly versionSent?: bigint | undefined;
  /** Which report told `version` last: a site message, or a membership heartbeat. */
  readonly versionVia?: "site" | "heartbeat" | undefined;
  readonly lastRequest: number;
}

export interface HealReport {
  readonly at: number;
  readonly from: string;
  readonly to: string;
  readonly changes: readonly AddressChange[];
}

export interface Pending {
  /** Where the answer goes: the local API ("local") or the member that forwarded it. */
  readonly at: number;
}

export interface SiteState {
  readonly phase: "starting" | "ready";
  readonly startedAt: number;
  readonly now: number;
  readonly snapshot?: Snapshot | undefined;
  /** The site configuration in this member's own file (bootstrap, and the hand-edit report). */
  readonly local: string;
  readonly peers: ReadonlyMap<string, PeerView>;
  readonly pending: ReadonlyMap<string, Pending>;
  readonly lastStatus: number;
  /** The allocator last logged (to log a change once). */
  readonly allocatorSeen?: string | undefined;
  readonly lastHeal?: HealReport | undefined;
  readonly counters: Readonly<{
    adopted: number;
    heals: number;
    readdressed: number;
    committed: number;
    stale: number;
    refused: number;
    noQuorum: number;
  }>;
}

export interface ProposeResult {
  ok: boolean;
  generation: number;
  allocator: string;
  error?: ProposeError | undefined;
  message?: string | undefined;
}

export type Effect =
  | { type: "send"; to: string; msg: SiteMessage }
  | { type: "persist"; snapshot: Snapshot }
  | { type: "apply"; snapshot: Snapshot }
  | { type: "reply"; id: string; result: ProposeResult }
  | { type: "log"; level: "info" | "warn"; message: string; fields: Record<string, unknown> };

export type SiteEvent =
  | { type: "tick"; now: number }
  /** `sent`: the sender's clock (µs of wall clock) when it sent the message (its counter). */
  | {
      type: "message";
      now: number;
      from: string;
      msg: SiteMessage;
      sent?: bigint | undefined;
      /** As for "propose": what live membership hears, for a forwarded write's quorum check. */
      heard?: readonly string[] | undefined;
    }
  /**
   * A PUT on this member (the API validated `config`); `base` 0 means unconditional. `heard`: the
   * members live membership hears now (its heartbeats), when it runs: a write counts only members
   * alive on both (quorum).
   */
  | {
      type: "propose";
      now: number;
      id: string;
      base: number;
      config: string;
      heard?: readonly string[] | undefined;
    }
  /** This member's own file changed (what it would bootstrap a new site from). */
  | { type: "local"; now: number; config: string };

export interface Step {
  state: SiteState;
  effects: Effect[];
}
