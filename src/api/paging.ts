/**
 * Paged lists, as Kubernetes lists page: `?limit=N` (default 1000, at most 10000) and
 * `?continue=TOKEN` (the `metadata.continue` of the previous page, opaque to clients). A page
 * answers `{ items, metadata: { continue, remainingItemCount } }`; the last page has no
 * `metadata`, so a list that fits in one page looks as it always did (`{ items }`).
 *
 * A list that fits in one page comes whole, in the runtime's order, as it always did. A longer
 * one is paged in the order of a key unique per list (a Service's namespace/name, a pool's
 * name...), and the token holds the list's name and the last key sent. The next page starts after that key in
 * the list as it is then: like Kubernetes' inconsistent continuation, an item added or removed
 * between pages appears or not, but nothing present throughout is lost or repeated. A token of
 * another list, or not one of ours, is a 400 (nothing leaks: the key was already in a page).
 * Pure: values in, values out.
 */

import { ApiError } from "./http.ts";

export const PAGE_DEFAULT = 1000;
export const PAGE_MAX = 10000;

export interface PageQuery {
  limit: number;
  /** The last key of the previous page; null for the first page. */
  after: string | null;
}

export interface Page<T> {
  items: T[];
  metadata?: { continue: string; remainingItemCount: number };
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64url");

export function encodeContinue(list: string, key: string): string {
  return b64(JSON.stringify({ v: 1, l: list, k: key }));
}

/** Reads `limit` and `continue` query values for `list`; throws a 400 ApiError when invalid. */
export function parsePage(list: string, limit: string | undefined, token: string | undefined): PageQuery {
  let n = PAGE_DEFAULT;
  if (limit !== undefined) {
    if (!/^[0-9]{1,6}$/.test(limit) || Number(limit) < 1 || Number(limit) > PAGE_MAX)
      throw new ApiError(
        400,
        "BadRequest",
        `?limit must be an integer from 1 to ${PAGE_MAX} (default ${PAGE_DEFAULT})`,
      );
    n = Number(limit);
  }
  if (token === undefined) return { limit: n, after: null };
  const bad = () =>
    new ApiError(
      400,
      "BadRequest",
      `?continue is not a continue token of this list (${list}); start again without it`,
    );
  if (token.length === 0 || token.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  const p = parsed as { v?: unknown; l?: unknown; k?: unknown } | null;
  if (p === null || typeof p !== "object" || p.v !== 1 || p.l !== list || typeof p.k !== "string")
    throw bad();
  return { limit: n, after: p.k };
}

/** Max-heap of keyed items by key (the largest on top). */
class MaxHeap<T> {
  readonly a: { k: string; item: T }[] = [];
  push(x: { k: string; item: T }): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.k >= a[i]!.k) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  top(): string {
    return this.a[0]!.k;
  }
  replaceTop(x: { k: string; item: T }): void {
    const a = this.a;
    a[0] = x;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && a[l]!.k > a[m]!.k) m = l;
      if (r < a.length && a[r]!.k > a[m]!.k) m = r;
      if (m === i) break;
      [a[m], a[i]] = [a[i]!, a[m]!];
      i = m;
    }
  }
}

/**
 * One page of `items` ordered by `key` (unique per item), after `q.after`. The runtime's lists
 * are not assumed to be in any order; the page is selected with a heap of `limit` items, so a
 * page of 1000 out of 100,000 costs one pass (not a sort of all of them).
 */
export function paginate<T>(list: string, items: readonly T[], key: (t: T) => string, q: PageQuery): Page<T> {
  // A list that fits in one page keeps the runtime's order (members list this node first).
  if (q.after === null && items.length <= q.limit) return { items: [...items] };
  const heap = new MaxHeap<T>();
  let after = 0; // items past the cursor
  for (const item of items) {
    const k = key(item);
    if (q.after !== null && k <= q.after) continue;
    after += 1;
    if (heap.a.length < q.limit) heap.push({ k, item });
    else if (k < heap.top()) heap.replaceTop({ k, item });
  }
  const page = heap.a.sort((x, y) => (x.k < y.k ? -1 : x.k > y.k ? 1 : 0));
  const out = page.map((x) => x.item);
  if (after <= q.limit) return { items: out };
  return {
    items: out,
    metadata: {
      continue: encodeContinue(list, page[page.length - 1]!.k),
      remainingItemCount: after - page.length,
    },
  };
}
