/**
 * Errors talking to the Kubernetes API server, for people: what went wrong in plain words
 * ("cannot reach the Kubernetes API server at https://10.0.0.1:6443: connection refused"), and
 * a log that says each kind of failure at once, then at most once per window with how many times
 * it happened meanwhile, and once more when it stops. Pure apart from the logger it is given;
 * the clock is a parameter.
 */

import type { Logger } from "../util/log.ts";
import { KubeError } from "./client.ts";

const CODES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ConnectionRefused: "connection refused",
  ECONNRESET: "the connection was reset",
  ConnectionClosed: "the connection was closed",
  EHOSTUNREACH: "no route to the host",
  ENETUNREACH: "the network is unreachable",
  ETIMEDOUT: "no answer (timed out)",
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name does not resolve (DNS is not answering)",
  EPIPE: "the connection was closed",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its TLS certificate is not signed by the configured CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "its TLS certificate is self-signed and not trusted",
  SELF_SIGNED_CERT_IN_CHAIN: "its TLS certificate chain is not trusted",
  ERR_TLS_CERT_ALTNAME_INVALID: "its TLS certificate does not name this address",
  CERT_HAS_EXPIRED: "its TLS certificate has expired",
};

/** One line, in plain words, for an error of a request to the API server at `server`. */
export function plainError(e: unknown, server: string): string {
  if (e instanceof KubeError) {
    if (e.status === 401)
      return `the Kubernetes API server at ${server} refused vipd's credentials (401 Unauthorized)`;
    if (e.status === 403)
      return `the Kubernetes API server at ${server} forbids it (403): ${e.message} — check vipd's RBAC`;
    if (e.status >= 500) return `the Kubernetes API server at ${server} failed (${e.status}): ${e.message}`;
    return e.message;
  }
  const err = e as { code?: unknown; type?: unknown; message?: unknown } | null;
  const code = typeof err?.code === "string" ? err.code : "";
  const msg = typeof err?.message === "string" ? err.message : String(e);
  const known =
    CODES[code] ??
    Object.entries(CODES).find(([c]) => msg.startsWith(`${c}:`) || msg.includes(` ${c} `))?.[1];
  if (known !== undefined) return `cannot reach the Kubernetes API server at ${server}: ${known}`;
  if (err?.type === "request-timeout" || /timeout|timed out/i.test(msg))
    return `cannot reach the Kubernetes API server at ${server}: no answer (timed out)`;
  if (/abort/i.test(msg)) return `the request to the Kubernetes API server at ${server} was cancelled`;
  return `the Kubernetes API server at ${server}: ${msg}`;
}

export interface RateLimitedLogOptions {
  log: Logger | undefined;
  /** At most one line per key per window after the first (default 60 s). */
  windowMs?: number;
  now?: () => number;
}

interface Entry {
  /** When the last line for this key was written. */
  at: number;
  /** Occurrences since then that were not written. */
  suppressed: number;
  /** Occurrences since the failure began. */
  total: number;
  since: number;
}

/**
 * Warnings that repeat while something stays broken. `warn(key, …)` writes the first at once,
 * then at most one per window (with `repeated`: how many were held back); `ok(key, …)` writes
 * one line when a failing key recovers.
 */
export class RateLimitedLog {
  private readonly entries = new Map<string, Entry>();
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: RateLimitedLogOptions) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Returns true when a line was written. */
  warn(key: string, message: string, fields: Record<string, unknown> = {}): boolean {
    const now = this.now();
    const e = this.entries.get(key);
    if (e === undefined) {
      this.entries.set(key, { at: now, suppressed: 0, total: 1, since: now });
      this.opts.log?.warn(message, fields);
      return true;
    }
    e.total++;
    if (now - e.at < this.windowMs) {
      e.suppressed++;
      return false;
    }
    this.opts.log?.warn(message, {
      ...fields,
      repeated: e.suppressed + 1,
      failingForS: Math.round((now - e.since) / 1000),
    });
    e.at = now;
    e.suppressed = 0;
    return true;
  }

  /** The failure of `key` is over: one line saying so (nothing if it was not failing). */
  ok(key: string, message: string, fields: Record<string, unknown> = {}): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    this.entries.delete(key);
    this.opts.log?.info(message, {
      ...fields,
      failures: e.total,
      failedForS: Math.round((this.now() - e.since) / 1000),
    });
    return true;
  }

  /** Keys failing now. */
  failing(): string[] {
    return [...this.entries.keys()];
  }
}
