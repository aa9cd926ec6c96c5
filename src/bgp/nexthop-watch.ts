/**
 * Keeps one session's next hops for routes of the other family current: reads them (nexthop.ts)
 * from the interface holding the session's local address when the session is established, and
 * again every `addressCheckMs` (default 30 s) while it is — an IPv6 address that finishes DAD after
 * the session came up, a renumbered interface. On a change the session re-sends (or withdraws) the
 * other family's routes. RFC 2545 §3, RFC 4760 §3.
 */
import { networkInterfaces } from "node:os";
import { type IfaceTable, type OtherFamilyNextHops, otherFamilyNextHops } from "./nexthop.ts";
import type { Log } from "./session-types.ts";

function readInterfaces(): IfaceTable {
  return networkInterfaces() as IfaceTable;
}

export interface NextHopWatchDeps {
  log: Log;
  /** The host's interfaces (default os.networkInterfaces()). */
  interfaces?: () => IfaceTable;
  addressCheckMs?: number;
}

export class NextHopWatch {
  /** The other family's next hops as last read. */
  hops: OtherFamilyNextHops = {};
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly peer: string,
    private readonly deps: NextHopWatchDeps,
  ) {}

  /** Reads the next hops for a session from `local` to `peerAddress`; returns whether they changed. */
  read(local: string, peerAddress: string): boolean {
    let next: OtherFamilyNextHops;
    try {
      next = otherFamilyNextHops(this.deps.interfaces?.() ?? readInterfaces(), local, peerAddress);
    } catch (e) {
      next = {};
      this.deps.log("warn", "bgp cannot read the interface addresses", { peer: this.peer, error: String(e) });
    }
    if (JSON.stringify(next) === JSON.stringify(this.hops)) return false;
    this.hops = next;
    this.deps.log("info", "bgp next hops for the other family", { peer: this.peer, local, ...next });
    return true;
  }

  /** Forgets the last reading and calls `check` every interval until stop(). */
  start(check: () => void): void {
    this.stop();
    this.hops = {};
    this.timer = setInterval(check, this.deps.addressCheckMs ?? 30_000);
    (this.timer as { unref?: () => void }).unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
