/**
 * What changed between two Configs read from the files, by key: the file worker
 * (file-worker.ts) sends it instead of the whole Config, and the main thread applies it to the
 * Config it holds (file-reload.ts). `applyDelta(prev, diffConfig(prev, next))` equals `next`,
 * list order included (test/unit/config-delta.test.ts); objects that did not change keep their
 * identity on this side too, so the allocator and the planner see at once that they are the same.
 */

import type { Config } from "../config/index.ts";

/** The Config's lists of named objects. */
export const LISTS = [
  "pools",
  "l2Advertisements",
  "bgpAdvertisements",
  "peers",
  "bfdProfiles",
  "communities",
  "services",
  "namespaces",
] as const;
export type ListName = (typeof LISTS)[number];
type Item = Config[ListName][number];

/** An object's key in its list (unique per list: the validator refuses duplicates). */
export function itemKey(o: Item): string {
  return o.kind === "Service" ? `${o.metadata.namespace ?? "default"}/${o.metadata.name}` : o.metadata.name;
}

/**
 * One list's change: splices of the old list, in its index order — at old index `at`, `remove`
 * objects are replaced by `insert`. Found by identity (an unchanged document gives the same
 * object), so a one-Service edit costs a walk of pointers, not a key or a comparison per object.
 */
export interface Splice {
  at: number;
  remove: number;
  insert: Item[];
}
export type ListDelta = Splice[];

export interface ConfigDelta {
  lists: Partial<Record<ListName, ListDelta>>;
  /** Present when NodeSettings changed (null: removed). */
  nodeSettings?: { value: Config["nodeSettings"] | null };
}

/** Objects in a delta: what decides whether a delta or the whole Config is cheaper to send. */
export function deltaSize(d: ConfigDelta): number {
  let n = d.nodeSettings !== undefined ? 1 : 0;
  for (const l of Object.values(d.lists)) for (const h of l) n += h.insert.length + h.remove;
  return n;
}

/** Objects in a Config. */
export function configSize(c: Config): number {
  let n = c.nodeSettings !== undefined ? 1 : 0;
  for (const name of LISTS) n += c[name].length;
  return n;
}

/** Plain-data equality: the same object, or the same JSON text (NodeSettings: one object). */
function same(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function diffList(prev: readonly Item[], next: readonly Item[]): ListDelta | undefined {
  if (prev === next) return undefined;
  const out: Splice[] = [];
  let pos: Map<Item, number> | undefined;
  let i = 0;
  let j = 0;
  let open: Splice | undefined;
  const hunk = (): Splice => {
    if (open === undefined || open.at + open.remove !== i) {
      open = { at: i, remove: 0, insert: [] };
      out.push(open);
    }
    return open;
  };
  while (j < next.length) {
    const o = next[j] as Item;
    if (i < prev.length && prev[i] === o) {
      i++;
      j++;
      open = undefined;
      continue;
    }
    if (pos === undefined) {
      pos = new Map();
      for (let k = 0; k < prev.length; k++) pos.set(prev[k] as Item, k);
    }
    const p = pos.get(o);
    if (p !== undefined && p > i) {
      // The old objects up to this one are gone (or moved later: inserted again where they are).
      hunk().remove += p - i;
      i = p;
    } else {
      hunk().insert.push(o);
      j++;
    }
  }
  if (i < prev.length) hunk().remove += prev.length - i;
  return out.length === 0 ? undefined : out;
}

/** What changed from `prev` to `next` (objects that are the same object are left out). */
export function diffConfig(prev: Config, next: Config): ConfigDelta {
  const lists: ConfigDelta["lists"] = {};
  for (const name of LISTS) {
    const d = diffList(prev[name], next[name]);
    if (d !== undefined) lists[name] = d;
  }
  const ns =
    (prev.nodeSettings === undefined) === (next.nodeSettings === undefined) &&
    (prev.nodeSettings === undefined || same(prev.nodeSettings, next.nodeSettings))
      ? undefined
      : { value: next.nodeSettings ?? null };
  return { lists, ...(ns !== undefined ? { nodeSettings: ns } : {}) };
}

function applyList(prev: readonly Item[], d: ListDelta): Item[] {
  // A copy (native), then each splice from the last: the earlier ones' indexes stay valid.
  const out = prev.slice();
  for (let k = d.length - 1; k >= 0; k--) {
    const h = d[k] as Splice;
    out.splice(h.at, h.remove, ...h.insert);
  }
  return out;
}

/** `prev` with `d` applied: a new Config (`prev` when `d` is empty); unchanged lists are shared. */
export function applyDelta(prev: Config, d: ConfigDelta): Config {
  // Nothing changed (the files were rewritten as they were): the same Config, so that the next
  // change is known to be from the Config the daemon holds.
  if (d.nodeSettings === undefined && LISTS.every((n) => d.lists[n] === undefined)) return prev;
  const next: Config = { ...prev };
  for (const name of LISTS) {
    const l = d.lists[name];
    if (l !== undefined) (next as Record<ListName, Item[]>)[name] = applyList(prev[name], l);
  }
  if (d.nodeSettings !== undefined) next.nodeSettings = d.nodeSettings.value ?? undefined;
  return next;
}

/**
 * The Services `d` (applied to `prev`) adds, changes or removes, by key — objects replaced by an
 * equal one included; and whether anything but Services changed.
 */
export function serviceChanges(prev: Config, d: ConfigDelta): { services: Set<string>; others: boolean } {
  const s = d.lists.services;
  const services = new Set<string>();
  if (s !== undefined) {
    for (const h of s) {
      for (let i = h.at; i < h.at + h.remove; i++) services.add(itemKey(prev.services[i] as Item));
      for (const o of h.insert) services.add(itemKey(o));
    }
  }
  const others =
    d.nodeSettings !== undefined || LISTS.some((n) => n !== "services" && d.lists[n] !== undefined);
  return { services, others };
}

/**
 * The Services `d` (applied to `prev`, giving `next`) adds, changes or removes, by key: the new
 * object, or undefined for a removed one (allocate's `changed` hint, src/plan/allocate.ts).
 */
export function changedServices(
  prev: Config,
  d: ConfigDelta,
): Map<string, Config["services"][number] | undefined> {
  const out = new Map<string, Config["services"][number] | undefined>();
  for (const h of d.lists.services ?? [])
    for (let i = h.at; i < h.at + h.remove; i++) out.set(itemKey(prev.services[i] as Item), undefined);
  for (const h of d.lists.services ?? [])
    for (const o of h.insert) out.set(itemKey(o), o as Config["services"][number]);
  return out;
}
