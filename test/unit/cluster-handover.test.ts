/**
 * Make before break (src/plan/handover.ts): a VIP lost to another live node is held until the
 * new owner acknowledges (a settled heartbeat) or at most HANDOVER_HOLD_MS, never in any other
 * case; a regained VIP is owned again. And the heartbeat's settled flag, from the wire to the
 * membership's view of the peer.
 */
import { describe, expect, test } from "bun:test";
import { MembershipEngine } from "../../src/cluster/engine.ts";
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from "../../src/cluster/heartbeat.ts";
import { createMembership, onHeartbeat } from "../../src/cluster/membership.ts";
import { HANDOVER_ACK_MARGIN_MS, HANDOVER_HOLD_MS, type Held, handover } from "../../src/plan/handover.ts";

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

describe("waiting for the new owner's settled heartbeat (MembershipEngine.awaitSettled)", () => {
  const key = new Uint8Array(32).fill(9);
  /** An engine that never opens its socket, its wall clock set by the test; the reasons it gave. */
  const engine = () => {
    const o = { wall: 0, why: [] as string[] };
    const e = new MembershipEngine({
      self: "n1",
      members: [{ name: "n1" }, { name: "n2", address: "127.0.0.1" }],
      key,
      port: 0,
      intervalMs: 50,
      deadAfterMs: 200,
      riseMs: 0,
      onChange: (why) => o.why.push(why),
      now: () => 0,
      wallNow: () => o.wall,
    });
    /** n2's heartbeat sent at wall clock `ms` (its sequence number: µs of wall clock). */
    const beat = (ms: number, settled: boolean) =>
      (e as unknown as { receive(b: Uint8Array): void }).receive(
        encodeHeartbeat(
          {
            node: "n2",
            seq: BigInt(ms) * 1000n,
            intervalMs: 50,
            leaving: false,
            ready: true,
            settled,
          } as Heartbeat,
          key,
        ),
      );
    const settledEvents = () => o.why.filter((w) => w === "member n2 is settled").length;
    return { e, o, beat, settledEvents };
  };

  test("a new owner settled all along (it applied its gain before the old owner decided): its next heartbeat sent after the margin wakes the old owner, once", () => {
    const { e, o, beat, settledEvents } = engine();
    beat(9_900, true);
    beat(9_950, true);
    // The old owner loses the VIP at 10,000 ms and waits for n2. Before this fix only a
    // not-settled -> settled transition woke it, so it held the VIP (and answered ARP beside
    // n2) for the whole HANDOVER_HOLD_MS.
    o.wall = 10_000;
    e.awaitSettled(new Set(["n2"]));
    // Sent within the margin (perhaps before n2 learned of anything): does not count.
    beat(10_000 + HANDOVER_ACK_MARGIN_MS - 1, true);
    expect(settledEvents()).toBe(0);
    beat(10_000 + HANDOVER_ACK_MARGIN_MS + 10, true);
    expect(settledEvents()).toBe(1);
    // Told once: later settled heartbeats do not replan again until asked again.
    beat(10_200, true);
    beat(10_250, true);
    expect(settledEvents()).toBe(1);
    e.stop(false);
  });

  test("a new owner that becomes settled late wakes the old owner with that heartbeat; an unsettled one does not", () => {
    const { e, o, beat, settledEvents } = engine();
    beat(19_900, true);
    beat(19_950, true);
    o.wall = 20_000;
    e.awaitSettled(new Set(["n2"]));
    beat(20_060, false);
    beat(20_110, false);
    expect(settledEvents()).toBe(0);
    beat(20_160, true);
    expect(settledEvents()).toBe(1);
    e.stop(false);
  });

  test("asked again while still waiting, a member keeps the clock of the first ask; a member no longer asked for is not told", () => {
    const { e, o, beat, settledEvents } = engine();
    beat(29_900, true);
    beat(29_950, true);
    o.wall = 30_000;
    e.awaitSettled(new Set(["n2"]));
    o.wall = 30_040;
    e.awaitSettled(new Set(["n2"]));
    beat(30_000 + HANDOVER_ACK_MARGIN_MS + 5, true);
    expect(settledEvents()).toBe(1);
    o.wall = 40_000;
    e.awaitSettled(new Set(["n2"]));
    e.awaitSettled(new Set());
    beat(40_100, true);
    expect(settledEvents()).toBe(1);
    e.stop(false);
  });
});
