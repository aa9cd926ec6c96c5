/**
 * Heartbeat format version 2 (declined VIPs, src/cluster/heartbeat.ts), the ready flag, and what
 * the membership FSM does with both: declines recorded per peer and counted only from Alive
 * peers; when a partition heals, the smaller side steps back at once (yieldsToPartition).
 */
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import {
  type Decline,
  decodeHeartbeat,
  encodeHeartbeat,
  type Heartbeat,
  MAX_DECLINES,
} from "../../src/cluster/heartbeat.ts";
import {
  aliveNodes,
  createMembership,
  isReady,
  type Membership,
  notReadyReason,
  onHeartbeat,
  peerDeclines,
  tick,
  yieldsToPartition,
} from "../../src/cluster/membership.ts";

const KEY = new TextEncoder().encode("site-shared-key-0123456789abcdef");

describe("heartbeat version 2: declined VIPs", () => {
  test("declines (IPv4, IPv6, with and without a preferred node) survive encode → decode", () => {
    const arbIp = fc.oneof(
      fc.ipV4(),
      fc
        .tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }))
        .map(([a, b]) => `fd00::${a.toString(16)}:${b.toString(16)}`),
    );
    const arbDecline = fc.record({
      ip: arbIp,
      to: fc.option(fc.constantFrom("n1", "node-b", "ü-node"), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.array(arbDecline, { minLength: 1, maxLength: MAX_DECLINES }),
        fc.boolean(),
        (ds, ready) => {
          const declines: Decline[] = ds.map((d) =>
            d.to === undefined ? { ip: d.ip } : { ip: d.ip, to: d.to },
          );
          const hb: Heartbeat = {
            node: "n1",
            seq: 42n,
            intervalMs: 50,
            leaving: false,
            declines,
            ...(ready ? { ready } : {}),
          };
          const r = decodeHeartbeat(encodeHeartbeat(hb, KEY), KEY);
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          // Addresses come back in canonical form.
          expect(r.hb.declines?.map((d) => d.to)).toEqual(declines.map((d) => d.to));
          expect(r.hb.declines).toHaveLength(declines.length);
          expect(r.hb.ready).toBe(ready ? true : undefined);
        },
      ),
      { seed: 11, numRuns: 200 },
    );
  });

  test("without declines the sender keeps speaking version 1 (older members understand it)", () => {
    const b = encodeHeartbeat({ node: "n1", seq: 1n, intervalMs: 50, leaving: false, declines: [] }, KEY);
    expect(b[4]).toBe(1);
    const d = encodeHeartbeat(
      { node: "n1", seq: 1n, intervalMs: 50, leaving: false, declines: [{ ip: "10.0.0.1" }] },
      KEY,
    );
    expect(d[4]).toBe(2);
  });

  test("bad input to the encoder is refused with a clear error", () => {
    const hb = (declines: Decline[]) => ({ node: "n1", seq: 1n, intervalMs: 50, leaving: false, declines });
    expect(() => encodeHeartbeat(hb([{ ip: "not-an-ip" }]), KEY)).toThrow("not an IP address");
    expect(() => encodeHeartbeat(hb([{ ip: "10.0.0.1", to: "" }]), KEY)).toThrow("1..253 bytes");
    const many = Array.from({ length: MAX_DECLINES + 1 }, (_, i) => ({ ip: `10.0.0.${i}` }));
    expect(() => encodeHeartbeat(hb(many), KEY)).toThrow(`at most ${MAX_DECLINES}`);
  });

  test("a validly signed version-2 body with a malformed decline list is dropped as BadDecline", () => {
    const name = new TextEncoder().encode("n1");
    const sign = (tail: number[]) => {
      const body = new Uint8Array(17 + name.length + tail.length);
      const v = new DataView(body.buffer);
      v.setUint32(0, 0x56495048);
      v.setUint8(4, 2);
      v.setUint16(6, 50);
      v.setBigUint64(8, 7n);
      v.setUint8(16, name.length);
      body.set(name, 17);
      body.set(tail, 17 + name.length);
      const mac = new Uint8Array(createHmac("sha256", KEY).update(body).digest());
      const out = new Uint8Array(body.length + 32);
      out.set(body);
      out.set(mac, body.length);
      return out;
    };
    const cases: [string, number[]][] = [
      ["a count of zero", [0]],
      ["a count above the limit", [MAX_DECLINES + 1]],
      ["an unknown family", [1, 5, 10, 0, 0, 1, 0]],
      ["a truncated address", [1, 4, 10, 0]],
      ["a preferred name running past the end", [1, 4, 10, 0, 0, 1, 9, 0x61]],
      ["trailing bytes", [1, 4, 10, 0, 0, 1, 0, 0xff]],
      ["a preferred name that is not UTF-8", [1, 4, 10, 0, 0, 1, 1, 0xff]],
    ];
    for (const [why, tail] of cases)
      expect(decodeHeartbeat(sign(tail), KEY), why).toEqual({ ok: false, reason: "BadDecline" });
    expect(decodeHeartbeat(sign([1, 4, 10, 0, 0, 1, 2, 0x6e, 0x32]), KEY)).toEqual({
      ok: true,
      hb: { node: "n1", seq: 7n, intervalMs: 50, leaving: false, declines: [{ ip: "10.0.0.1", to: "n2" }] },
    });
  });

  test("a flipped bit anywhere in a version-2 heartbeat is refused, never an exception", () => {
    const good = encodeHeartbeat(
      {
        node: "node-b",
        seq: 5n,
        intervalMs: 50,
        leaving: false,
        ready: true,
        declines: [{ ip: "fd00::1", to: "node-c" }],
      },
      KEY,
    );
    for (let i = 0; i < good.length; i++) {
      for (const bit of [0, 1, 3, 7]) {
        const bad = good.slice();
        bad[i] = (bad[i] as number) ^ (1 << bit);
        expect(decodeHeartbeat(bad, KEY).ok).toBe(false);
      }
    }
  });
});

const cfg = { self: "a", members: ["a", "b", "c"], intervalMs: 50, deadAfterMs: 200, riseMs: 1000 };
type Beat = { from: string; ready?: boolean; declines?: Decline[] };
/** Feeds heartbeats every 50 ms from `beats` in [start, until], ticking the clock. */
function run(m: Membership, beats: Beat[], start: number, until: number, seq: { n: bigint }): Membership {
  for (let t = start; t <= until; t += 50) {
    for (const b of beats)
      m = onHeartbeat(
        m,
        { node: b.from, seq: seq.n, intervalMs: 50, leaving: false, ready: b.ready, declines: b.declines },
        t,
      ).m;
    seq.n++;
    m = tick(m, t).m;
  }
  return m;
}

describe("membership: declines and the ready flag", () => {
  test("a peer's declines are recorded; a change is reported once it is Alive; a dead peer's do not count", () => {
    const seq = { n: 1n };
    let m = run(createMembership(cfg, 0), [{ from: "b" }, { from: "c" }], 0, 2000, seq);
    expect(peerDeclines(m).size).toBe(0);
    const r = onHeartbeat(
      m,
      { node: "b", seq: seq.n++, intervalMs: 50, leaving: false, declines: [{ ip: "10.0.0.5" }] },
      2050,
    );
    expect(r.changed).toBe(true);
    m = r.m;
    expect(peerDeclines(m)).toEqual(new Map([["b", [{ ip: "10.0.0.5" }]]]));
    // The same declines again: no change to report.
    const same = onHeartbeat(
      m,
      { node: "b", seq: seq.n++, intervalMs: 50, leaving: false, declines: [{ ip: "10.0.0.5" }] },
      2060,
    );
    expect(same.changed).toBe(false);
    // b goes silent and dies: its declines no longer matter.
    m = run(same.m, [{ from: "c" }], 2100, 2500, seq);
    expect(m.peers.get("b")?.state).toBe("Dead");
    expect(peerDeclines(m).size).toBe(0);
  });

  test("partition heals, 1 against 2: the lone node steps back at once, the pair keeps its VIPs", () => {
    // Seen from the lone node a: it hears b and c again, both ready (they owned things meanwhile).
    const seq = { n: 1n };
    let lone = run(createMembership(cfg, 0), [], 0, 1300, seq);
    expect(isReady(lone, 1300)).toBe(true);
    expect(aliveNodes(lone, 1300)).toEqual(["a"]);
    lone = run(
      lone,
      [
        { from: "b", ready: true },
        { from: "c", ready: true },
      ],
      1350,
      1400,
      seq,
    );
    expect(lone.peers.get("b")?.state).toBe("Rising");
    expect(yieldsToPartition(lone)).toBe(true);
    expect(isReady(lone, 1400)).toBe(false);
    expect(notReadyReason(lone, 1400)).toBe("partition");
    expect(aliveNodes(lone, 1400)).toEqual([]);
    // After riseMs they are Alive: one membership again, a is ready and takes part.
    lone = run(
      lone,
      [
        { from: "b", ready: true },
        { from: "c", ready: true },
      ],
      1450,
      2500,
      seq,
    );
    expect(isReady(lone, 2500)).toBe(true);
    expect(aliveNodes(lone, 2500)).toEqual(["a", "b", "c"]);

    // Seen from b (of the pair): a comes back ready; b has c Alive: 1 < 2, b keeps going.
    const fromB = { ...cfg, self: "b" };
    const s2 = { n: 1n };
    let pair = run(createMembership(fromB, 0), [{ from: "c", ready: true }], 0, 1300, s2);
    pair = run(
      pair,
      [
        { from: "c", ready: true },
        { from: "a", ready: true },
      ],
      1350,
      1400,
      s2,
    );
    expect(pair.peers.get("a")?.state).toBe("Rising");
    expect(yieldsToPartition(pair)).toBe(false);
    expect(aliveNodes(pair, 1400)).toEqual(["b", "c"]);
  });

  test("1 against 1 (two-node site): the side with the lower name keeps, the other steps back", () => {
    const two = { self: "a", members: ["a", "b"], intervalMs: 50, deadAfterMs: 200, riseMs: 1000 };
    const s = { n: 1n };
    let a = run(createMembership(two, 0), [], 0, 1300, s);
    a = run(a, [{ from: "b", ready: true }], 1350, 1400, s);
    expect(yieldsToPartition(a)).toBe(false);
    let b = run(createMembership({ ...two, self: "b" }, 0), [], 0, 1300, s);
    b = run(b, [{ from: "a", ready: true }], 1350, 1400, s);
    expect(yieldsToPartition(b)).toBe(true);
  });

  test("an Alive peer counts for the election only once it says it is ready (seamless hand-back)", () => {
    const seq = { n: 1n };
    const m = run(
      createMembership(cfg, 0),
      [
        { from: "b", ready: true },
        { from: "c", ready: false },
      ],
      0,
      1500,
      seq,
    );
    expect(m.peers.get("c")?.state).toBe("Alive");
    expect(aliveNodes(m, 1500)).toEqual(["a", "b"]);
    const r = onHeartbeat(m, { node: "c", seq: seq.n++, intervalMs: 50, leaving: false, ready: true }, 1510);
    expect(r.changed).toBe(true);
    expect(aliveNodes(r.m, 1510)).toEqual(["a", "b", "c"]);
  });

  test("a peer that is restarting or resuming (not ready) never makes anyone step back", () => {
    const seq = { n: 1n };
    let m = run(createMembership(cfg, 0), [], 0, 1300, seq);
    m = run(m, [{ from: "b" }, { from: "c", ready: false }], 1350, 1400, seq);
    expect(yieldsToPartition(m)).toBe(false);
    expect(isReady(m, 1400)).toBe(true);
    // It says it is ready now: a change worth a new plan (the partition rule may apply).
    const r = onHeartbeat(m, { node: "b", seq: seq.n++, intervalMs: 50, leaving: false, ready: true }, 1420);
    expect(r.changed).toBe(true);
  });
});
