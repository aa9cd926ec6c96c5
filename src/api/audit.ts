/**
 * The audit log: every change attempted through the API by an authenticated caller — who (the
 * token's name and role), what (method, path, and what the handler says it did), when, and the
 * result (ok, refused with the error code, or failed) — in a bounded in-memory ring (the oldest
 * entry goes first; `dropped` counts them). Pure: the clock is injected; nothing is persisted.
 *
 * The gate records it (src/api/gate.ts), for every non-GET route whose rule does not say
 * `audit: false` (the dry run `POST /config/validate` changes nothing and is not recorded).
 * Requests without a valid token (401) are not recorded: they are logged and counted
 * (vipd_api_auth_failures_total), and an anonymous flood must not push real entries out.
 * A 403 is recorded: the token is known, and trying is worth knowing.
 *
 * @example
 * const audit = new AuditLog({ capacity: 1000, now: Date.now });
 * audit.record({ token: "ops", role: "admin", method: "PUT", path: "/api/v1/config", status: 200 });
 * audit.list({ afterSeq: 0, limit: 100 }); // oldest first
 */

import type { JsonValue } from "../events/hub.ts";

export interface AuditEntry {
  /** Grows by one per entry, from 1. */
  seq: number;
  /** ISO 8601, UTC. */
  time: string;
  token: string;
  role: string;
  method: string;
  path: string;
  status: number;
  result: "ok" | "refused" | "failed";
  /** The refusal's error code, when refused or failed. */
  error?: string;
  /** What the change did (the new ETag, the VIP moved...), as the handler put it. */
  detail?: { [key: string]: JsonValue };
}

export type AuditInput = Pick<AuditEntry, "token" | "role" | "method" | "path" | "status"> & {
  error?: string | undefined;
  detail?: { [key: string]: JsonValue } | undefined;
};

export class AuditLog {
  readonly capacity: number;
  private readonly now: () => number;
  private readonly entries: AuditEntry[] = [];
  private seq = 0;
  private dropped = 0;

  constructor(opts: { capacity?: number; now?: () => number } = {}) {
    const capacity = opts.capacity ?? 1000;
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new Error("AuditLog: capacity must be a positive integer");
    this.capacity = capacity;
    this.now = opts.now ?? Date.now;
  }

  record(input: AuditInput): AuditEntry {
    this.seq += 1;
    const result = input.status < 400 ? "ok" : input.status < 500 ? "refused" : "failed";
    const entry: AuditEntry = {
      seq: this.seq,
      time: new Date(this.now()).toISOString(),
      token: input.token,
      role: input.role,
      method: input.method,
      path: input.path,
      status: input.status,
      result,
      ...(input.error !== undefined && result !== "ok" ? { error: input.error } : {}),
      ...(input.detail !== undefined ? { detail: input.detail } : {}),
    };
    this.entries.push(entry);
    if (this.entries.length > this.capacity) {
      this.entries.shift();
      this.dropped += 1;
    }
    return entry;
  }

  /** Entries with seq > afterSeq, oldest first, at most `limit`. */
  list(opts: { afterSeq: number; limit: number }): AuditEntry[] {
    const first = this.entries[0];
    if (first === undefined) return [];
    const start = Math.max(0, opts.afterSeq + 1 - first.seq);
    return this.entries.slice(start, start + opts.limit);
  }

  /** Entries after `afterSeq` not returned by a list of `limit` from there. */
  remainingAfter(afterSeq: number): number {
    const first = this.entries[0];
    if (first === undefined) return 0;
    return Math.max(0, this.entries.length - Math.max(0, afterSeq + 1 - first.seq));
  }

  stats(): { recorded: number; kept: number; dropped: number } {
    return { recorded: this.seq, kept: this.entries.length, dropped: this.dropped };
  }
}
