/**
 * Times a session's sending on the speaker's side (performance.now, ms): for the last flush that
 * moved prefixes, the diff and encoding until the first UPDATE is handed to the socket, then until
 * the kernel has taken the last byte of the flush (End-of-RIB included when it went with it).
 */
import type { SendTiming } from "./session-types.ts";

export class SendClock {
  private last: SendTiming | null = null;
  private since = 0;

  constructor(private readonly peer: string) {}

  /** A flush handed `updates` messages moving `prefixes` prefixes to the socket; `t0` its start. */
  sent(t0: number, prefixes: number, updates: number, endOfRib: boolean): void {
    if (prefixes === 0) return;
    this.since = performance.now();
    this.last = { peer: this.peer, prefixes, updates, encodeMs: this.since - t0, endOfRib };
  }

  /** The output queue is empty now (after a write or a `drain`). */
  written(): void {
    if (this.last && this.last.writeMs === undefined) this.last.writeMs = performance.now() - this.since;
  }

  get(): SendTiming | null {
    return this.last && { ...this.last };
  }
}
