/**
 * What a peer announced to us, reduced to what vipd needs: the count of its prefixes (vipd
 * announces, it does not route, so received routes are parsed, counted and discarded). Pure.
 * RFC 4271 §3.2 (Adj-RIB-In), RFC 4760 (MP_REACH/MP_UNREACH), RFC 7606 §2 (treat-as-withdraw).
 */
import { formatPrefix, type UpdateMessage } from "./codec/index.ts";

export class AdjRibIn {
  private readonly prefixes = new Set<string>();

  get size(): number {
    return this.prefixes.size;
  }

  clear(): void {
    this.prefixes.clear();
  }

  /** Applies one UPDATE; `treatAsWithdraw` (RFC 7606) turns its announcements into withdrawals. */
  apply(m: UpdateMessage, treatAsWithdraw: boolean): void {
    for (const p of m.withdrawn) this.prefixes.delete(formatPrefix(p));
    for (const p of m.attributes.mpUnreach?.withdrawn ?? []) this.prefixes.delete(formatPrefix(p));
    for (const list of [m.nlri, m.attributes.mpReach?.nlri ?? []])
      for (const p of list) {
        if (treatAsWithdraw) this.prefixes.delete(formatPrefix(p));
        else this.prefixes.add(formatPrefix(p));
      }
  }
}
