/**
 * One session's Adj-RIB-Out (RFC 4271 §3.2), pure: the routes the caller wants the peer to have
 * (a RouteTable, ribout.ts), what the peer has from us, and the UPDATEs that turn one into the
 * other. What was sent is the last flushed table itself plus, per attribute set, whether it could
 * be sent: no per-route copy. A flush walks both sorted tables once (a merge), groups the prefixes
 * to announce by attribute set and packs each group into UPDATEs filled to 4096 bytes; withdrawals
 * go first. End-of-RIB follows the initial table once per session (RFC 4724 §2). ROUTE-REFRESH
 * re-sends one family (RFC 2918 §4); a next-hop change marks the other family stale so it is sent
 * again (or withdrawn when it can no longer be sent).
 */
import {
  type AttrContext,
  endOfRib,
  packReachNlri,
  packWithdrawNlri,
  type RouteRefreshMessage,
} from "./codec/index.ts";
import {
  type OutAttributes,
  outAttributesOf,
  type PrefixList,
  RouteTable,
  type SessionView,
} from "./ribout.ts";

export interface RibOutFlush {
  messages: Uint8Array[];
  /** Routes that could not be sent to this peer, with the reason. */
  skipped: { key: string; reason: string }[];
  /** Prefixes announced and withdrawn by these messages. */
  announced: number;
  withdrawn: number;
  /** End-of-RIB markers close these messages (the session's initial table). */
  endOfRib: boolean;
}

/** What the peer has from us: the table last flushed, and which of its sets went out per family. */
interface Sent {
  table: RouteTable;
  /** sendable[fam][set index] === 1: the routes of that set and family are at the peer. */
  sendable: Record<4 | 6, Uint8Array>;
  count: Record<4 | 6, number>;
}

const FAMILIES = [4, 6] as const;

/** Encodes entries `idx` of `l` back to back as NLRI (length octet, significant octets). */
function nlriOf(l: PrefixList, idx: ArrayLike<number>): Uint8Array {
  const w = l.width;
  const bytes = l.bytes;
  let n = 0;
  for (let x = 0; x < idx.length; x++) n += 1 + ((bytes[idx[x]! * w + w - 1]! + 7) >> 3);
  const out = new Uint8Array(n);
  let at = 0;
  for (let x = 0; x < idx.length; x++) {
    const from = idx[x]! * w;
    const len = bytes[from + w - 1]!;
    out[at++] = len;
    const end = from + ((len + 7) >> 3);
    for (let y = from; y < end; y++) out[at++] = bytes[y]!;
  }
  return out;
}

export class AdjRibOut {
  private desired = RouteTable.empty();
  private sent: Sent | null = null;
  private eorSent = false;
  private readonly forgotten = new Set<4 | 6>();
  private readonly stale = new Set<4 | 6>();

  /** Prefixes the peer has from us. */
  get size(): number {
    if (this.sent === null) return 0;
    return FAMILIES.reduce((n, f) => n + (this.forgotten.has(f) ? 0 : this.sent!.count[f]), 0);
  }

  /** Whether the initial table and its End-of-RIB went out on this session. */
  get endOfRibSent(): boolean {
    return this.eorSent;
  }

  setDesired(routes: RouteTable): void {
    this.desired = routes;
  }

  /** A new session: the peer has nothing from us, the initial table and End-of-RIB are due. */
  established(): void {
    this.down();
    this.eorSent = false;
  }

  /** The session went down: the peer dropped (or holds as stale) what we sent. */
  down(): void {
    this.sent = null;
    this.forgotten.clear();
    this.stale.clear();
  }

  /** ROUTE-REFRESH for one family: forget what was sent of it, so the next flush re-sends it. */
  forgetFamily(fam: 4 | 6): void {
    this.forgotten.add(fam);
  }

  /** The other family's next hops changed: its sent routes go out again (or are withdrawn). */
  markStale(fam: 4 | 6): void {
    this.stale.add(fam);
  }

  /** The UPDATEs that bring the peer to the desired set, or null when there is nothing to send. */
  flush(v: SessionView): RibOutFlush | null {
    const old = this.sent;
    const want = this.desired;
    if (old?.table === want && this.forgotten.size === 0 && this.stale.size === 0 && this.eorSent)
      return null;
    const ctx: AttrContext = { as4: v.as4, ebgp: v.localAsn !== v.peerAsn };
    const withdrawals: Uint8Array[] = [];
    const announcements: Uint8Array[] = [];
    const skipped: { key: string; reason: string }[] = [];
    const next: Sent = {
      table: want,
      sendable: { 4: new Uint8Array(want.sets.length), 6: new Uint8Array(want.sets.length) },
      count: { 4: 0, 6: 0 },
    };
    let announced = 0;
    let withdrawn = 0;
    for (const f of FAMILIES) {
      const a = old?.table.list(f);
      const b = want.list(f);
      const aSent = old && !this.forgotten.has(f) ? old.sendable[f] : null;
      const d = this.mergeFamily(a, aSent, old?.table, b, want, this.stale.has(f));
      // Per attribute set: its attributes towards this peer, computed once, and what can be sent.
      const k = want.sets.length;
      const all = new Uint32Array(k);
      for (let j = 0; j < b.count; j++) all[b.set[j]!]!++;
      const out: OutAttributes[] = [];
      for (let si = 0; si < k; si++) {
        if (all[si] === 0) continue;
        const o = outAttributesOf(want.sets[si]!, f, v);
        out[si] = o;
        if (!("error" in o)) {
          next.sendable[f][si] = 1;
          next.count[f] += all[si]!;
        }
      }
      // The entries to announce grouped by set (a counting sort, in prefix order within a set).
      const start = new Uint32Array(k + 1);
      for (let x = 0; x < d.count; x++) start[b.set[d.announce[x]!]! + 1]!++;
      for (let si = 0; si < k; si++) start[si + 1]! += start[si]!;
      const fillAt = start.slice(0, k);
      const grouped = new Uint32Array(d.count);
      for (let x = 0; x < d.count; x++) {
        const j = d.announce[x]!;
        grouped[fillAt[b.set[j]!]!++] = j;
      }
      // Withdrawn: old entries no longer wanted, and wanted ones at the peer that can no longer go.
      const goneB: number[] = [];
      for (let si = 0; si < k; si++) {
        const from = start[si]!;
        const to = start[si + 1]!;
        if (from === to) continue;
        const o = out[si]!;
        if ("error" in o) {
          for (let x = from; x < to; x++) {
            const j = grouped[x]!;
            skipped.push({ key: b.key(j), reason: o.error });
            // A route we can no longer send must not stay at the peer with old attributes.
            if (d.wasSent[j] === 1) goneB.push(j);
          }
          continue;
        }
        const nlri = nlriOf(b, grouped.subarray(from, to));
        announcements.push(
          ...packReachNlri({ attributes: o.attrs, family: f, nextHops: o.nextHops, nlri }, ctx),
        );
        announced += to - from;
      }
      if (d.withdraw.length + goneB.length > 0 && v.families.has(f)) {
        const nlriA = a ? nlriOf(a, d.withdraw) : new Uint8Array(0);
        const nlriB = nlriOf(b, goneB);
        const nlri = new Uint8Array(nlriA.length + nlriB.length);
        nlri.set(nlriA);
        nlri.set(nlriB, nlriA.length);
        withdrawals.push(...packWithdrawNlri(f, nlri));
        withdrawn += d.withdraw.length + goneB.length;
      }
    }
    this.sent = next;
    this.forgotten.clear();
    this.stale.clear();
    const messages = [...withdrawals, ...announcements];
    const eor = !this.eorSent;
    if (eor) {
      for (const f of v.families) messages.push(endOfRib(f));
      this.eorSent = true;
    }
    return { messages, skipped, announced, withdrawn, endOfRib: eor };
  }

  /**
   * One family's difference, by a merge of the two sorted lists: the old entries to withdraw, the
   * new entries to announce grouped by set index, and which of those were at the peer before.
   */
  private mergeFamily(
    a: PrefixList | undefined,
    aSent: Uint8Array | null,
    aTable: RouteTable | undefined,
    b: PrefixList,
    bTable: RouteTable,
    stale: boolean,
  ): { withdraw: number[]; announce: Uint32Array; count: number; wasSent: Uint8Array } {
    const withdraw: number[] = [];
    const announce = new Uint32Array(b.count);
    let count = 0;
    const wasSent = new Uint8Array(b.count);
    const na = a?.count ?? 0;
    let i = 0;
    let j = 0;
    while (i < na || j < b.count) {
      const c = i >= na ? 1 : j >= b.count ? -1 : a!.cmp(i, b, j);
      if (c < 0) {
        if (aSent?.[a!.set[i]!] === 1) withdraw.push(i);
        i++;
      } else if (c > 0) {
        announce[count++] = j++;
      } else {
        const was = aSent?.[a!.set[i]!] === 1;
        if (!was || stale || aTable!.sets[a!.set[i]!] !== bTable.sets[b.set[j]!]) {
          wasSent[j] = was ? 1 : 0;
          announce[count++] = j;
        }
        i++;
        j++;
      }
    }
    return { withdraw, announce, count, wasSent };
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
