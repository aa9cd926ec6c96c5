/**
 * A set of integers (bigint) stored as maximal runs of consecutive members, kept sorted in
 * chunks: the allocator's record of which addresses are taken.
 *
 * Memory grows with the number of runs (at most the number of members), never with the size
 * of the space; membership, insertion, deletion and "lowest non-member in [lo, hi]" are
 * O(log n) searches plus a splice inside one chunk of bounded size. Because runs are maximal,
 * the first non-member after a run is its end + 1, so a free address is found without walking.
 *
 * @example
 * const s = new RunSet();
 * s.add(10n); s.add(11n);
 * s.lowestFree(10n, 20n); // 12n
 */

const MAX_CHUNK = 512;

export class RunSet {
  /** starts[c][i], ends[c][i]: run i of chunk c, inclusive. Chunks are non-empty and ordered. */
  private starts: bigint[][] = [];
  private ends: bigint[][] = [];
  /** heads[c] === starts[c][0], for the binary search over chunks. */
  private heads: bigint[] = [];
  private members = 0;
  private runCount = 0;

  /** Number of members. */
  get size(): number {
    return this.members;
  }

  /** Number of maximal runs (what the memory use is proportional to). */
  get runs(): number {
    return this.runCount;
  }

  /** Position (chunk, index) of the last run starting at or before x, or c = -1 if none. */
  private locate(x: bigint): [number, number] {
    const heads = this.heads;
    let lo = 0;
    let hi = heads.length - 1;
    let c = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((heads[mid] as bigint) <= x) {
        c = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (c < 0) return [-1, -1];
    const starts = this.starts[c] as bigint[];
    lo = 0;
    hi = starts.length - 1;
    let i = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((starts[mid] as bigint) <= x) {
        i = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return [c, i];
  }

  has(x: bigint): boolean {
    const [c, i] = this.locate(x);
    return c >= 0 && (this.ends[c]![i] as bigint) >= x;
  }

  /** Adds x; false if it was already a member. */
  add(x: bigint): boolean {
    const [c, i] = this.locate(x);
    if (c >= 0 && (this.ends[c]![i] as bigint) >= x) return false;
    this.members++;
    // Successor run: the one after (c, i), or the very first run when x precedes everything.
    let sc = c;
    let si = i + 1;
    if (c < 0) {
      sc = 0;
      si = 0;
    } else if (si >= this.starts[c]!.length) {
      sc = c + 1;
      si = 0;
    }
    const hasSucc = sc < this.starts.length;
    const joinLeft = c >= 0 && (this.ends[c]![i] as bigint) + 1n === x;
    const joinRight = hasSucc && (this.starts[sc]![si] as bigint) === x + 1n;
    if (joinLeft && joinRight) {
      this.ends[c]![i] = this.ends[sc]![si] as bigint;
      this.removeAt(sc, si);
    } else if (joinLeft) {
      this.ends[c]![i] = x;
    } else if (joinRight) {
      this.starts[sc]![si] = x;
      if (si === 0) this.heads[sc] = x;
    } else if (c < 0) {
      this.insertAt(0, 0, x, x);
    } else {
      this.insertAt(c, i + 1, x, x);
    }
    return true;
  }

  /** Removes x; false if it was not a member. */
  delete(x: bigint): boolean {
    const [c, i] = this.locate(x);
    if (c < 0) return false;
    const starts = this.starts[c]!;
    const ends = this.ends[c]!;
    const s = starts[i] as bigint;
    const e = ends[i] as bigint;
    if (e < x) return false;
    this.members--;
    if (s === e) this.removeAt(c, i);
    else if (x === s) {
      starts[i] = x + 1n;
      if (i === 0) this.heads[c] = x + 1n;
    } else if (x === e) ends[i] = x - 1n;
    else {
      ends[i] = x - 1n;
      this.insertAt(c, i + 1, x + 1n, e);
    }
    return true;
  }

  /** The lowest v with lo <= v <= hi that is not a member, or null if all are members. */
  lowestFree(lo: bigint, hi: bigint): bigint | null {
    if (lo > hi) return null;
    const [c, i] = this.locate(lo);
    if (c < 0) return lo;
    const e = this.ends[c]![i] as bigint;
    if (e < lo) return lo;
    return e + 1n <= hi ? e + 1n : null;
  }

  /** All runs in order, as [start, end] pairs (for tests and snapshots). */
  *entries(): IterableIterator<[bigint, bigint]> {
    for (let c = 0; c < this.starts.length; c++) {
      const starts = this.starts[c]!;
      const ends = this.ends[c]!;
      for (let i = 0; i < starts.length; i++) yield [starts[i] as bigint, ends[i] as bigint];
    }
  }

  private insertAt(c: number, i: number, s: bigint, e: bigint): void {
    this.runCount++;
    if (this.starts.length === 0) {
      this.starts.push([s]);
      this.ends.push([e]);
      this.heads.push(s);
      return;
    }
    const starts = this.starts[c]!;
    const ends = this.ends[c]!;
    starts.splice(i, 0, s);
    ends.splice(i, 0, e);
    if (i === 0) this.heads[c] = s;
    if (starts.length > MAX_CHUNK) {
      const half = starts.length >> 1;
      const s2 = starts.splice(half);
      const e2 = ends.splice(half);
      this.starts.splice(c + 1, 0, s2);
      this.ends.splice(c + 1, 0, e2);
      this.heads.splice(c + 1, 0, s2[0] as bigint);
    }
  }

  private removeAt(c: number, i: number): void {
    this.runCount--;
    const starts = this.starts[c]!;
    const ends = this.ends[c]!;
    starts.splice(i, 1);
    ends.splice(i, 1);
    if (starts.length === 0) {
      this.starts.splice(c, 1);
      this.ends.splice(c, 1);
      this.heads.splice(c, 1);
    } else if (i === 0) this.heads[c] = starts[0] as bigint;
  }
}
