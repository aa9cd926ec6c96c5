/**
 * Make before break (src/plan/handover.ts): a VIP lost to another live node is held until the
 * new owner acknowledges (a settled heartbeat) or at most HANDOVER_HOLD_MS, never in any other
 * case; a regained VIP is owned again. And the heartbeat's settled flag, from the wire to the
 * membership's view of the peer.
 */
import { describe, expect, test } from "bun:test";
import { decodeHeartbeat, encodeHeartbeat } from "../../src/cluster/heartbeat.ts";
import { createMembership, onHeartbeat } from "../../src/cluster/membership.ts";
import { HANDOVER_HOLD_MS, type Held, handover } from "../../src/plan/handover.ts";

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
      since: 1000,
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
    const held = new Map([["192.0.2.10", { entry: e("192.0.2.10"), since: 0, until: 500, to: "n2" }]]);
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
    const held = new Map([["192.0.2.11", { entry: e("192.0.2.11"), since: 0, until: 500, to: "n2" }]]);
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

  test("the new owner's acknowledgment ends the hold before its deadline; no acknowledgment, the hold goes on", () => {
    const held = new Map([["192.0.2.10", { entry: e("192.0.2.10"), since: 0, until: 2000, to: "n2" }]]);
    const base = {
      prevOwned: [],
      held,
      nextOwned: [],
      ownerOf: () => "n2",
      self: "n1",
      selfReady: true,
      now: 120,
    };
    expect(handover({ ...base, acknowledged: () => false }).held.size).toBe(1);
    expect(handover({ ...base, acknowledged: (h) => h.to === "n2" }).held.size).toBe(0);
    // The VIP went on to a third node meanwhile: n2's word no longer matters, the hold ends.
    expect(handover({ ...base, ownerOf: () => "n3", acknowledged: () => false }).held.size).toBe(0);
  });
});

describe("the settled flag (heartbeat bit 2)", () => {
  const key = new Uint8Array(32).fill(7);
  test("round-trips, and a receiver records the sender's clock of its latest settled heartbeat", () => {
    const beat = (seq: bigint, settled: boolean) => {
      const d = decodeHeartbeat(
        encodeHeartbeat({ node: "n2", seq, intervalMs: 50, leaving: false, ready: true, settled }, key),
        key,
      );
      if (!d.ok) throw new Error(d.reason);
      return d.hb;
    };
    expect(beat(1n, true).settled).toBe(true);
    expect(beat(2n, false).settled).toBeUndefined();
    let m = createMembership(
      { self: "n1", members: ["n1", "n2"], intervalMs: 50, deadAfterMs: 200, riseMs: 0 },
      0,
    );
    m = onHeartbeat(m, beat(1_000n, false), 1).m;
    m = onHeartbeat(m, beat(2_000n, false), 2).m;
    expect(m.peers.get("n2")?.state).toBe("Alive");
    expect(m.peers.get("n2")?.settledSeq).toBe(-1n);
    // Not a membership change by itself (every node replans on changes, and a replan flips its
    // own flag: two nodes would wake each other forever); the service tells the daemon only when
    // it waits for that member (awaitSettled).
    const r = onHeartbeat(m, beat(3_000n, true), 3);
    expect(r.changed).toBe(false);
    expect(r.m.peers.get("n2")?.settledSeq).toBe(3_000n);
    const again = onHeartbeat(r.m, beat(4_000n, true), 4);
    expect(again.changed).toBe(false);
    expect(again.m.peers.get("n2")?.settledSeq).toBe(4_000n);
    // A later unsettled heartbeat keeps the last settled clock (the old owner compares it with
    // the moment it lost the VIP).
    expect(onHeartbeat(again.m, beat(5_000n, false), 5).m.peers.get("n2")?.settledSeq).toBe(4_000n);
  });
});
