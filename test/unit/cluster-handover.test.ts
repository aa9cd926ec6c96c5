/**
 * Make before break (src/cluster/handover.ts): a VIP lost to another live node is held for a
 * moment, never in any other case; a regained VIP is owned again; holds end on time.
 */
import { describe, expect, test } from "bun:test";
import { HANDOVER_HOLD_MS, type Held, handover } from "../../src/cluster/handover.ts";

const e = (ip: string) => ({ ip });
const none = new Map<string, Held<{ ip: string }>>();

describe("hand-over hold", () => {
  test("n1 loses 192.0.2.10 to n2 (failback, forced failover, a node joining): n1 keeps answering for the hold", () => {
    const r = handover({
      prevOwned: [e("192.0.2.10"), e("192.0.2.11")],
      held: none,
      nextOwned: [e("192.0.2.11")],
      ownerOf: () => "n2",
      self: "n1",
      selfReady: true,
      now: 1000,
    });
    expect([...r.held.keys()]).toEqual(["192.0.2.10"]);
    expect(r.held.get("192.0.2.10")).toEqual({
      entry: e("192.0.2.10"),
      until: 1000 + HANDOVER_HOLD_MS,
      to: "n2",
    });
    expect(r.wakeAt).toBe(1000 + HANDOVER_HOLD_MS);
  });

  test("the hold ends on time, and a later plan does not restart it", () => {
    const first = handover({
      prevOwned: [e("192.0.2.10")],
      held: none,
      nextOwned: [],
      ownerOf: () => "n2",
      self: "n1",
      selfReady: true,
      now: 0,
      holdMs: 300,
    });
    const mid = handover({
      prevOwned: [],
      held: first.held,
      nextOwned: [],
      ownerOf: () => "n2",
      self: "n1",
      selfReady: true,
      now: 200,
      holdMs: 300,
    });
    expect(mid.held.get("192.0.2.10")?.until).toBe(300);
    const end = handover({
      prevOwned: [],
      held: mid.held,
      nextOwned: [],
      ownerOf: () => "n2",
      self: "n1",
      selfReady: true,
      now: 300,
      holdMs: 300,
    });
    expect(end.held.size).toBe(0);
    expect(end.wakeAt).toBeUndefined();
  });

  test("regained during the hold (a cancelled forced failover): owned again, no longer held", () => {
    const held = new Map([["192.0.2.10", { entry: e("192.0.2.10"), until: 500, to: "n2" }]]);
    const r = handover({
      prevOwned: [],
      held,
      nextOwned: [e("192.0.2.10")],
      ownerOf: () => "n1",
      self: "n1",
      selfReady: true,
      now: 100,
    });
    expect(r.held.size).toBe(0);
  });

  test("no hold when this node is not ready (start, pause, stepping back after a partition)", () => {
    const held = new Map([["192.0.2.11", { entry: e("192.0.2.11"), until: 500, to: "n2" }]]);
    const r = handover({
      prevOwned: [e("192.0.2.10")],
      held,
      nextOwned: [],
      ownerOf: () => "n2",
      self: "n1",
      selfReady: false,
      now: 100,
    });
    expect(r.held.size).toBe(0);
  });

  test("no hold when the VIP has no owner any more (Service deleted, nobody eligible)", () => {
    const r = handover({
      prevOwned: [e("192.0.2.10")],
      held: none,
      nextOwned: [],
      ownerOf: () => undefined,
      self: "n1",
      selfReady: true,
      now: 0,
    });
    expect(r.held.size).toBe(0);
  });
});
