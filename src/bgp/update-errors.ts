/**
 * Accounting of the UPDATE errors that keep a session (RFC 7606 treat-as-withdraw and
 * attribute-discard): counted by "action|reason" for the status and metrics, and logged at most
 * once a minute per reason with the count held back meanwhile (ratelimit.ts). Pure but for the
 * log callback; time is passed in.
 */
import { type BgpDecodeError, UpdateSub } from "./codec/index.ts";
import { LogRateLimiter } from "./ratelimit.ts";
import type { Log } from "./session-types.ts";

const UPDATE_SUB_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(UpdateSub).map(([k, v]) => [v, k.toLowerCase().replaceAll("_", "-")]),
);

/** A bounded metric label for an UPDATE Message Error subcode (RFC 4271 §6.3 names). */
export function updateErrorReason(subcode: number): string {
  return UPDATE_SUB_NAMES[subcode] ?? "other";
}

export class UpdateErrorCounter {
  /** Non-fatal UPDATE errors by "action|reason". */
  readonly counts: Record<string, number> = {};
  private readonly limiter = new LogRateLimiter(60_000, 32);

  constructor(
    private readonly peer: string,
    private readonly log: Log,
  ) {}

  /** Counts and (rate-limited) logs the errors of one UPDATE that announced `prefixes` prefixes. */
  note(errors: readonly BgpDecodeError[], prefixes: number, now: number): void {
    for (const e of errors) {
      if (e.action === "session-reset") continue;
      const reason = updateErrorReason(e.subcode);
      const key = `${e.action}|${reason}`;
      this.counts[key] = (this.counts[key] ?? 0) + 1;
      const d = this.limiter.check(key, now);
      if (d.log)
        this.log("warn", `bgp UPDATE error handled as ${e.action} (RFC 7606)`, {
          peer: this.peer,
          error: e.message,
          reason,
          prefixes,
          ...(d.suppressed > 0 ? { suppressed: d.suppressed } : {}),
        });
    }
  }
}
