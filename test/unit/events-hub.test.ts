/**
 * The event hub (src/events/hub.ts): ids, resume from a Last-Event-ID, the bounded ring, resets,
 * and listeners that break.
 */

import { describe, expect, test } from "bun:test";
import { EventHub, type HubEvent } from "../../src/events/hub.ts";

function hub(capacity = 4) {
  let t = 1_000;
  return new EventHub({ capacity, epoch: "e1", now: () => t++ });
}

describe("event hub", () => {
  test("ids are <epoch>-<seq>, growing by one; time comes from the injected clock", () => {
    const h = hub();
    expect(h.lastId).toBeUndefined();
    const a = h.publish("config", { generation: 1 });
    const b = h.publish("ownership", { vip: "10.0.0.1", from: "n1", to: "n2" });
    expect([a.id, b.id]).toEqual(["e1-1", "e1-2"]);
    expect([a.time, b.time]).toEqual([1000, 1001]);
    expect(h.lastId).toBe("e1-2");
    expect(h.stats()).toEqual({ published: 2, buffered: 2, listeners: 0, listenerErrors: 0 });
  });

  test("replay gives exactly the events after the id; none for a new watcher or the last id", () => {
    const h = hub();
    for (let i = 1; i <= 3; i++) h.publish("config", { generation: i });
    expect(h.replay(undefined)).toEqual({ kind: "events", events: [] });
    expect(h.replay("")).toEqual({ kind: "events", events: [] });
    const r = h.replay("e1-1");
    expect(r.kind).toBe("events");
    expect(r.events.map((e) => e.data["generation"])).toEqual([2, 3]);
    expect(h.replay("e1-3").events).toEqual([]);
    // An id of 0 (before the first event) replays all, while all are buffered.
    expect(h.replay("e1-0").events.map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  test("the ring keeps `capacity` events; a resume older than that is a reset, not a gap", () => {
    const h = hub(4);
    for (let i = 1; i <= 10; i++) h.publish("assignment", { n: i });
    expect(h.stats().buffered).toBe(4);
    // 7..10 are buffered: resuming after 6 is complete, after 5 would miss 6.
    expect(h.replay("e1-6").events.map((e) => e.seq)).toEqual([7, 8, 9, 10]);
    expect(h.replay("e1-5")).toEqual({ kind: "reset", reason: "evicted", events: [] });
    expect(h.replay("e1-0").kind).toBe("reset");
  });

  test("ids of another process, malformed ids and ids ahead of the hub are resets", () => {
    const h = hub();
    h.publish("config", { generation: 1 });
    expect(h.replay("e0-1")).toMatchObject({ kind: "reset", reason: "unknown-epoch" });
    expect(h.replay("e1-x")).toMatchObject({ kind: "reset", reason: "malformed" });
    expect(h.replay("garbage")).toMatchObject({ kind: "reset", reason: "malformed" });
    expect(h.replay("e1-99999999999999999999")).toMatchObject({ kind: "reset", reason: "malformed" });
    expect(h.replay("e1-2")).toMatchObject({ kind: "reset", reason: "ahead" });
  });

  test("replay then subscribe in one turn misses nothing and repeats nothing", () => {
    const h = hub(8);
    h.publish("config", { generation: 1 });
    h.publish("config", { generation: 2 });
    const seen: HubEvent[] = [];
    const r = h.replay("e1-1");
    seen.push(...r.events);
    const off = h.subscribe((e) => seen.push(e));
    h.publish("config", { generation: 3 });
    off();
    h.publish("config", { generation: 4 });
    expect(seen.map((e) => e.seq)).toEqual([2, 3]);
    expect(h.stats().listeners).toBe(0);
  });

  test("a listener that throws is removed and counted; publish and the other listeners go on", () => {
    const h = hub();
    const good: number[] = [];
    h.subscribe(() => {
      throw new Error("broken watcher");
    });
    h.subscribe((e) => good.push(e.seq));
    expect(() => h.publish("bgp-session", { peer: "10.0.0.9", state: "Established" })).not.toThrow();
    h.publish("bgp-session", { peer: "10.0.0.9", state: "Idle" });
    expect(good).toEqual([1, 2]);
    expect(h.stats()).toMatchObject({ listeners: 1, listenerErrors: 1 });
  });

  test("the same function subscribed twice is two subscriptions, each with its own unsubscribe", () => {
    const h = hub();
    const seen: number[] = [];
    const f = (e: HubEvent) => seen.push(e.seq);
    const off1 = h.subscribe(f);
    h.subscribe(f);
    h.publish("update", { phase: "download" });
    off1();
    h.publish("update", { phase: "install" });
    expect(seen).toEqual([1, 1, 2]);
  });

  test("bad options are refused", () => {
    expect(() => new EventHub({ capacity: 0 })).toThrow(/capacity/);
    expect(() => new EventHub({ epoch: "A-B" })).toThrow(/epoch/);
    expect(new EventHub({ now: () => 36 ** 3 }).epoch).toBe("1000");
  });
});

describe("reading at one's own pace", () => {
  test("after(seq, max) pages through the buffer; null once the next one is evicted", () => {
    const h = hub(4);
    expect([h.lastSeq, h.oldestSeq]).toEqual([0, 1]);
    expect(h.after(0, 10)).toEqual([]);
    for (let i = 1; i <= 6; i++) h.publish("assignment", { n: i });
    expect([h.lastSeq, h.oldestSeq]).toEqual([6, 3]);
    expect(h.after(2, 2)?.map((e) => e.seq)).toEqual([3, 4]);
    expect(h.after(4, 10)?.map((e) => e.seq)).toEqual([5, 6]);
    expect(h.after(6, 10)).toEqual([]);
    expect(h.after(1, 10)).toBeNull();
  });
});
