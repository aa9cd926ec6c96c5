/**
 * One session's Adj-RIB-Out (RFC 4271 §3.2), pure: the routes the caller wants the peer to have,
 * what the peer has from us, and the UPDATEs that turn one into the other (ribout.ts packs them).
 * End-of-RIB follows the initial table once per session (RFC 4724 §2). ROUTE-REFRESH re-sends one
 * family (RFC 2918 §4); a next-hop change marks the other family stale so it is sent again.
 */
import { endOfRib, type RouteRefreshMessage } from "./codec/index.ts";
import { diffRib, encodeDiff, type Route, type SessionView } from "./ribout.ts";

export interface RibOutFlush {
  messages: Uint8Array[];
  /** Routes that could not be sent to this peer, with the reason. */
  skipped: { key: string; reason: string }[];
}

export class AdjRibOut {
  private desired: ReadonlyMap<string, Route> = new Map();
  /** What the peer has from us: prefix key → attribute key ("" for stale). */
  private readonly sent = new Map<string, string>();
  private eorSent = false;

  /** Prefixes the peer has from us. */
  get size(): number {
    return this.sent.size;
  }

  /** Whether the initial table and its End-of-RIB went out on this session. */
  get endOfRibSent(): boolean {
    return this.eorSent;
  }

  setDesired(routes: ReadonlyMap<string, Route>): void {
    this.desired = routes;
  }

  /** A new session: the peer has nothing from us, the initial table and End-of-RIB are due. */
  established(): void {
    this.sent.clear();
    this.eorSent = false;
  }

  /** The session went down: the peer dropped (or holds as stale) what we sent. */
  down(): void {
    this.sent.clear();
  }

  /** ROUTE-REFRESH for one family: forget what was sent of it, so the next flush re-sends it. */
  forgetFamily(fam: 4 | 6): void {
    for (const k of [...this.sent.keys()]) if (k.includes(":") === (fam === 6)) this.sent.delete(k);
  }

  /** The other family's next hops changed: its sent routes go out again (or are withdrawn). */
  markStale(fam: 4 | 6): void {
    for (const k of this.sent.keys()) if (k.includes(":") === (fam === 6)) this.sent.set(k, "");
  }

  /** The UPDATEs that bring the peer to the desired set, or null when there is nothing to send. */
  flush(v: SessionView): RibOutFlush | null {
    const diff = diffRib(this.sent, this.desired);
    if (diff.announce.length === 0 && diff.withdraw.length === 0 && this.eorSent) return null;
    const enc = encodeDiff(diff, v, this.sent);
    for (const k of enc.withdrawn) this.sent.delete(k);
    for (const [k, a] of enc.announced) this.sent.set(k, a);
    const messages = enc.messages;
    if (!this.eorSent) {
      for (const f of v.families) messages.push(endOfRib(f));
      this.eorSent = true;
    }
    return { messages, skipped: enc.skipped };
  }
}

/**
 * The family a ROUTE-REFRESH asks for (RFC 2918 §4: re-advertise that <AFI, SAFI> only), or null:
 * not IPv4/IPv6 unicast, or a BoRR/EoRR marker (RFC 7313 §4, subtypes 1 and 2: the peer's own
 * demarcation, nothing to answer).
 */
export function refreshFamily(m: RouteRefreshMessage): 4 | 6 | null {
  if (m.safi !== 1 || m.subtype !== 0) return null;
  return m.afi === 1 ? 4 : m.afi === 2 ? 6 : null;
}
