/**
 * A log-line rate limiter, pure (time is passed in): at most one line per key per interval, and
 * the count of the lines held back meanwhile goes into the next one. The number of keys is
 * bounded: past `maxKeys`, new keys share one overflow key, so a flood from many sources costs a
 * fixed amount of memory and a fixed number of lines.
 *
 * @example
 * const rl = new LogRateLimiter(60_000);
 * const d = rl.check("10.0.0.9", now);
 * if (d.log) log("warn", "bgp connection from unknown address", { address, suppressed: d.suppressed });
 */

export interface RateDecision {
  /** Write a line now. */
  log: boolean;
  /** Lines held back for this key since its last line (only meaningful when `log`). */
  suppressed: number;
}

export const OVERFLOW_KEY = "(other)";

export class LogRateLimiter {
  private readonly keys = new Map<string, { last: number; suppressed: number }>();

  constructor(
    readonly intervalMs: number,
    readonly maxKeys = 256,
  ) {}

  check(key: string, now: number): RateDecision {
    let k = key;
    if (!this.keys.has(k) && this.keys.size >= this.maxKeys) {
      this.expire(now);
      if (this.keys.size >= this.maxKeys) k = OVERFLOW_KEY;
    }
    const e = this.keys.get(k);
    if (e === undefined || now - e.last >= this.intervalMs) {
      const suppressed = e?.suppressed ?? 0;
      this.keys.set(k, { last: now, suppressed: 0 });
      return { log: true, suppressed };
    }
    e.suppressed++;
    return { log: false, suppressed: e.suppressed };
  }

  /** Forgets keys whose interval has passed with nothing held back. */
  private expire(now: number): void {
    for (const [k, e] of this.keys)
      if (now - e.last >= this.intervalMs && e.suppressed === 0) this.keys.delete(k);
  }
}
