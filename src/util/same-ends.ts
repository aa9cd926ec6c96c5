/**
 * How many items two lists share, by identity, at their start (`head`) and, after that, at their
 * end (`tail`): what lies between (`a.slice(head, a.length - tail)`, `b.slice(head, b.length -
 * tail)`) is what changed. The incremental steps of a reload (plan index, slot reuse, state
 * journal, assignment events) compare only that part, as the allocator hands on the same objects
 * while they do not change.
 */
export function sameEnds<T>(a: readonly T[], b: readonly T[]): { head: number; tail: number } {
  const m = a.length;
  const n = b.length;
  let head = 0;
  while (head < m && head < n && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < m - head && tail < n - head && a[m - 1 - tail] === b[n - 1 - tail]) tail++;
  return { head, tail };
}
