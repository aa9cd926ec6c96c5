/**
 * NodeEventPublisher's assignment events (src/node/events.ts) compare only what lies between the
 * same assignment objects at either end of the last list and the new one. Property: on random
 * edits made as the allocator makes them (unchanged assignments are the same objects; adds,
 * removals, re-addresses, moves), and on lists the shortcut cannot take (fresh objects, a key
 * listed twice), the events are exactly those of the map of every entry compared each time.
 */
import { describe, expect, test } from "bun:test";
import type { EventHub } from "../../src/events/hub.ts";
import { NodeEventPublisher, SUMMARY_OVER } from "../../src/node/events.ts";

type A = { key: string; ips: readonly string[] };

/** The events of the whole comparison (events.ts before the shortcut), as a reference. */
class Reference {
  private assigned = new Map<string, readonly string[]>();
  readonly out: unknown[] = [];
  call(services: readonly A[]): void {
    const next = new Map(services.map((s) => [s.key, s.ips]));
    const changed: { service: string; addresses: string[] }[] = [];
    for (const [key, ips] of next) {
      const was = this.assigned.get(key);
      if (was === undefined || was.length !== ips.length || was.some((ip, i) => ip !== ips[i]))
        changed.push({ service: key, addresses: [...ips] });
    }
    for (const key of this.assigned.keys()) if (!next.has(key)) changed.push({ service: key, addresses: [] });
    this.assigned = next;
    if (changed.length > SUMMARY_OVER) {
      this.out.push(["assignment", { summary: true, changed: changed.length, services: next.size }]);
      return;
    }
    for (const c of changed)
      this.out.push([
        "assignment",
        {
          service: c.service,
          addresses: c.addresses,
          ...(c.addresses.length === 0 ? { reason: "released" } : {}),
        },
      ]);
  }
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("assignment events compare only what changed", () => {
  test("the same events as comparing every entry, on random edits", () => {
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 300; seed++) {
      const r = rng(seed);
      const int = (n: number) => Math.floor(r() * n);
      const out: unknown[] = [];
      const hub = { publish: (type: string, data: unknown) => out.push([type, data]) } as unknown as EventHub;
      const pub = new NodeEventPublisher(hub);
      const ref = new Reference();
      const keys = 12;
      const ip = () => `10.0.0.${int(6)}`;
      const make = (k: number): A => ({
        key: `ns/s${k}`,
        ips: int(5) === 0 ? [] : int(3) === 0 ? [ip(), ip()] : [ip()],
      });
      let list: A[] = Array.from({ length: int(keys) }, (_, i) => make(i));
      for (let step = 0; step < 40; step++) {
        pub.onEvent({ type: "assignments", services: list });
        ref.call(list);
        expect(out).toEqual(ref.out);
        const next = list.slice();
        const edits = int(4) === 0 ? int(8) : 1;
        for (let e = 0; e < edits; e++) {
          const kind = int(9);
          const used = new Set(next.map((a) => a.key));
          const free = Array.from({ length: keys }, (_, i) => i).filter((i) => !used.has(`ns/s${i}`));
          if (kind === 0 && free.length > 0) {
            kinds.add("add");
            next.splice(int(next.length + 1), 0, make(free[int(free.length)] as number));
          } else if (kind === 1 && next.length > 0) {
            kinds.add("remove");
            next.splice(int(next.length), 1);
          } else if (kind === 2 && next.length > 0) {
            kinds.add("readdress");
            const i = int(next.length);
            next[i] = { key: (next[i] as A).key, ips: int(2) === 0 ? [ip()] : [...(next[i] as A).ips] };
          } else if (kind === 3 && next.length > 1) {
            kinds.add("move");
            const [a] = next.splice(int(next.length), 1);
            next.splice(int(next.length + 1), 0, a as A);
          } else if (kind === 4 && next.length > 0) {
            kinds.add("duplicate key");
            const a = next[int(next.length)] as A;
            next.splice(int(next.length + 1), 0, { key: a.key, ips: int(2) === 0 ? a.ips : [ip()] });
          } else if (kind === 5 && next.length > 0) {
            kinds.add("same object twice");
            next.splice(int(next.length + 1), 0, next[int(next.length)] as A);
          } else if (kind === 6) {
            kinds.add("fresh objects");
            for (let i = 0; i < next.length; i++) next[i] = { ...(next[i] as A) };
          } else if (kind === 7 && next.length > 0) {
            kinds.add("dedupe");
            const seen = new Set<string>();
            const kept = next.filter((a) => !seen.has(a.key) && seen.add(a.key));
            next.length = 0;
            next.push(...kept);
          } else kinds.add("none");
        }
        // The caller's array changed in place after the call must not matter.
        if (int(3) === 0) {
          list.reverse();
          list = next;
        } else list = next;
      }
    }
    expect([...kinds].sort()).toEqual(
      [
        "add",
        "remove",
        "readdress",
        "move",
        "duplicate key",
        "same object twice",
        "fresh objects",
        "dedupe",
        "none",
      ].sort(),
    );
  });

  test("a mass change is one summary; then one Service's change is its own event", () => {
    const out: unknown[] = [];
    const hub = { publish: (type: string, data: unknown) => out.push([type, data]) } as unknown as EventHub;
    const pub = new NodeEventPublisher(hub);
    const list: A[] = Array.from({ length: 1000 }, (_, i) => ({
      key: `ns/s${i}`,
      ips: [`10.1.${i >> 8}.${i & 255}`],
    }));
    pub.onEvent({ type: "assignments", services: list });
    expect(out).toEqual([["assignment", { summary: true, changed: 1000, services: 1000 }]]);
    const next = [...list.slice(0, 500), { key: "ns/new", ips: ["10.2.0.1"] }, ...list.slice(501)];
    pub.onEvent({ type: "assignments", services: next });
    expect(out.slice(1)).toEqual([
      ["assignment", { service: "ns/new", addresses: ["10.2.0.1"] }],
      ["assignment", { service: "ns/s500", addresses: [], reason: "released" }],
    ]);
  });
});
