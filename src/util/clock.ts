/**
 * Counters that keep increasing across restarts (heartbeat sequence numbers, site message
 * counters): microseconds of wall clock, bumped by one when the clock has not moved on.
 */
export function increasingMicros(): () => bigint {
  let last = 0n;
  return () => {
    const t = BigInt(Date.now()) * 1000n;
    last = t > last ? t : last + 1n;
    return last;
  };
}
