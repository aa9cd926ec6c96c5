/**
 * The address book: which addresses are held, by whom, with which sharing key and ports, and
 * how many distinct addresses of each pool are in use. It answers the two questions allocation
 * asks — "may this Service use that address?" and "what is the lowest address of this range the
 * Service may use?" — in logarithmic time, without enumerating any pool.
 *
 * Sharing follows MetalLB: an address in use may be used by another Service only if both carry
 * the same non-empty allow-shared-ip key, the same backend key (externalTrafficPolicy Local
 * needs identical selectors) and no port/protocol pair in common.
 */

import type { Family, Ip } from "../util/ip.ts";
import {
  type CompiledPool,
  type CompiledRange,
  isBuggy,
  rangeFor,
  rangeSpaceToIp,
  type Space,
  spaceIndex,
  toDense,
} from "./pools.ts";
import type { SharingConflict } from "./reasons.ts";
import { RunSet } from "./runset.ts";
import { TombMap } from "./tombmap.ts";

interface IpUse {
  /** Holders and the ports each uses here (usually one holder, a few with sharing). */
  readonly users: { readonly key: string; readonly ports: readonly string[] }[];
  readonly sharingKey: string;
  readonly backendKey: string;
  /** The current pool that hands this address out, if any. */
  pool: string | null;
}

/** Map key of an address: IPv4 as a number (cheaper to hash than a bigint), IPv6 as a bigint. */
const mapKey = (ip: Ip): number | bigint => (ip.family === 4 ? Number(ip.value) : ip.value);

/** Who wants an address, for sharing checks. */
export interface Claimant {
  readonly key: string;
  readonly ports: readonly string[];
  readonly sharingKey: string;
  readonly backendKey: string;
}

export interface Refusal {
  readonly holders: readonly string[];
  readonly conflict: SharingConflict;
}

const shareIndexKey = (c: Claimant | IpUse): string => `${c.sharingKey}\u0000${c.backendKey}`;

function lowerBound(a: readonly bigint[], x: bigint): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((a[mid] as bigint) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class AddressBook {
  private readonly uses: Record<Family, TombMap<number | bigint, IpUse>> = {
    4: new TombMap(),
    6: new TombMap(),
  };
  private readonly taken: Record<Space, RunSet> = {
    raw4: new RunSet(),
    dense4: new RunSet(),
    raw6: new RunSet(),
  };
  /** sharing key + backend key -> sorted addresses held under that key, per family. */
  private readonly shared = new TombMap<string, Record<Family, bigint[]>>();
  /** pool -> distinct addresses in use, per family. */
  private readonly counts = new Map<string, Record<Family, number>>();
  private pools: readonly CompiledPool[] = [];
  /** Whether dense4 is maintained: only needed while some pool has avoidBuggyIPs. */
  private dense = false;

  /** Total runs across the taken-address sets (what memory grows with). */
  get runs(): number {
    return this.taken.raw4.runs + this.taken.dense4.runs + this.taken.raw6.runs;
  }

  private poolOf(ip: Ip): string | null {
    for (const p of this.pools) if (rangeFor(p, ip) !== undefined) return p.name;
    return null;
  }

  private count(pool: string | null, family: Family, delta: number): void {
    if (pool === null) return;
    let c = this.counts.get(pool);
    if (c === undefined) {
      c = { 4: 0, 6: 0 };
      this.counts.set(pool, c);
    }
    c[family] += delta;
  }

  /** Re-attributes every held address to the pool that hands it out under `pools`. */
  setPools(pools: readonly CompiledPool[]): void {
    this.pools = pools;
    const needDense = pools.some((p) => p.ranges.some((r) => r.space === "dense4"));
    if (needDense && !this.dense) {
      for (const k of this.uses[4].entries()) {
        const ip: Ip = { family: 4, value: BigInt(k[0]) };
        if (!isBuggy(ip)) this.taken.dense4.add(toDense(ip.value));
      }
    } else if (!needDense) this.taken.dense4 = new RunSet();
    this.dense = needDense;
    this.counts.clear();
    for (const family of [4, 6] as const) {
      for (const [k, use] of this.uses[family].entries()) {
        use.pool = this.poolOf({ family, value: BigInt(k) });
        this.count(use.pool, family, 1);
      }
    }
  }

  /** Distinct addresses of `pool` in use. */
  assigned(pool: string, family: Family): number {
    return this.counts.get(pool)?.[family] ?? 0;
  }

  holders(ip: Ip): string[] {
    const u = this.uses[ip.family].get(mapKey(ip));
    return u === undefined ? [] : u.users.map((h) => h.key).sort();
  }

  /**
   * Records `c` on `ip`. `pool` is the pool known to hand `ip` out (skips the lookup), or null
   * to look it up.
   */
  add(ip: Ip, c: Claimant, pool: string | null = null): void {
    const m = this.uses[ip.family];
    const k = mapKey(ip);
    let u = m.get(k);
    if (u === undefined) {
      // Made with its first holder (an array grown from empty has room to spare: 10,000 of them).
      u = { users: [c], sharingKey: c.sharingKey, backendKey: c.backendKey, pool: pool ?? this.poolOf(ip) };
      m.set(k, u);
      if (ip.family === 4) {
        this.taken.raw4.add(ip.value);
        if (this.dense && !isBuggy(ip)) this.taken.dense4.add(toDense(ip.value));
      } else this.taken.raw6.add(ip.value);
      if (c.sharingKey !== "") {
        const sk = shareIndexKey(c);
        let s = this.shared.get(sk);
        if (s === undefined) {
          s = { 4: [], 6: [] };
          this.shared.set(sk, s);
        }
        const arr = s[ip.family];
        arr.splice(lowerBound(arr, ip.value), 0, ip.value);
      }
      this.count(u.pool, ip.family, 1);
      return;
    }
    const i = u.users.findIndex((h) => h.key === c.key);
    if (i >= 0) u.users.splice(i, 1);
    // The claimant itself (the allocator's record of the Service, kept as long as it holds the
    // address): not a copy of its key and ports per address.
    u.users.push(c);
  }

  remove(ip: Ip, c: Claimant): void {
    const m = this.uses[ip.family];
    const k = mapKey(ip);
    const u = m.get(k);
    if (u === undefined) return;
    const i = u.users.findIndex((h) => h.key === c.key);
    if (i < 0) return;
    u.users.splice(i, 1);
    if (u.users.length > 0) return;
    m.delete(k);
    if (ip.family === 4) {
      this.taken.raw4.delete(ip.value);
      if (this.dense && !isBuggy(ip)) this.taken.dense4.delete(toDense(ip.value));
    } else this.taken.raw6.delete(ip.value);
    if (u.sharingKey !== "") {
      const sk = shareIndexKey(u);
      const s = this.shared.get(sk);
      if (s !== undefined) {
        const arr = s[ip.family];
        const j = lowerBound(arr, ip.value);
        if (arr[j] === ip.value) arr.splice(j, 1);
        if (s[4].length === 0 && s[6].length === 0) this.shared.delete(sk);
      }
    }
    this.count(u.pool, ip.family, -1);
  }

  /** Why `c` may not use `ip` alongside its current holders, or null if it may. */
  refusal(ip: Ip, c: Claimant): Refusal | null {
    const u = this.uses[ip.family].get(mapKey(ip));
    if (u === undefined) return null;
    const others = u.users.filter((h) => h.key !== c.key);
    if (others.length === 0) return null;
    const holders = others.map((h) => h.key).sort();
    const no = (conflict: SharingConflict): Refusal => ({ holders, conflict });
    if (u.sharingKey === "") return no({ kind: "HolderDoesNotShare", holders });
    if (c.sharingKey === "") return no({ kind: "RequesterDoesNotShare" });
    if (u.sharingKey !== c.sharingKey)
      return no({ kind: "SharingKeyMismatch", theirs: u.sharingKey, ours: c.sharingKey });
    if (u.backendKey !== c.backendKey) return no({ kind: "BackendMismatch" });
    const overlap = c.ports.filter((p) => others.some((h) => h.ports.includes(p)));
    if (overlap.length > 0) return no({ kind: "PortOverlap", ports: overlap });
    return null;
  }

  /** Lowest address of `r` that `c` may take: free, or shared compatibly. */
  lowestIn(r: CompiledRange, c: Claimant): bigint | null {
    if (r.lo > r.hi) return null;
    const idx = this.taken[r.space].lowestFree(r.lo, r.hi);
    const free = idx === null ? null : rangeSpaceToIp(r, idx);
    if (c.sharingKey === "") return free;
    const arr = this.shared.get(shareIndexKey(c))?.[r.family];
    if (arr === undefined) return free;
    for (let i = lowerBound(arr, r.first); i < arr.length; i++) {
      const v = arr[i] as bigint;
      if (v > r.last || (free !== null && v > free)) break;
      const ip = { family: r.family, value: v };
      if (spaceIndex(r, ip) !== null && this.refusal(ip, c) === null) return v;
    }
    return free;
  }

  /** Lowest address of `family` in `pool` (ranges in the order listed) that `c` may take. */
  lowestInPool(pool: CompiledPool, family: Family, c: Claimant): Ip | null {
    for (const r of pool.ranges) {
      if (r.family !== family) continue;
      const v = this.lowestIn(r, c);
      if (v !== null) return { family, value: v };
    }
    return null;
  }
}
