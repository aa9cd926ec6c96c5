import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from "../../src/cluster/heartbeat.ts";
import {
  aliveNodes,
  createMembership,
  isReady,
  type Membership,
  onHeartbeat,
  tick,
} from "../../src/cluster/membership.ts";

const KEY = new TextEncoder().encode("site-shared-key-0123456789abcdef");
const OTHER_KEY = new TextEncoder().encode("a stranger's key");
const cfg = { self: "a", members: ["a", "b", "c"], intervalMs: 50, deadAfterMs: 200, riseMs: 1000 };

/** Drives a membership with heartbeats from `from` every 50 ms until `until`. */
function beat(m: Membership, from: string[], start: number, until: number, seq0 = 1n): Membership {
  let s = seq0;
  for (let t = start; t <= until; t += 50) {
    for (const n of from)
      m = onHeartbeat(m, { node: n, seq: s, intervalMs: 50, leaving: false, ready: true }, t).m;
    s++;
    m = tick(m, t).m;
  }
  return m;
}

describe("heartbeat codec", () => {
  test("a heartbeat survives encode → decode with the site key", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 60 }).filter((s) => new TextEncoder().encode(s).length <= 253),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.integer({ min: 1, max: 65535 }),
        fc.boolean(),
        (node, seq, intervalMs, leaving) => {
          const hb: Heartbeat = { node, seq, intervalMs, leaving };
          expect(decodeHeartbeat(encodeHeartbeat(hb, KEY), KEY)).toEqual({ ok: true, hb });
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });

  test("a stranger without the key cannot forge liveness", () => {
    const forged = encodeHeartbeat({ node: "b", seq: 99n, intervalMs: 50, leaving: false }, OTHER_KEY);
    expect(decodeHeartbeat(forged, KEY)).toEqual({ ok: false, reason: "BadMac" });
  });

  test("a flipped bit anywhere is refused with a named reason, never an exception", () => {
    const good = encodeHeartbeat({ node: "node-b", seq: 5n, intervalMs: 50, leaving: false }, KEY);
    for (let i = 0; i < good.length; i++) {
      for (const bit of [0, 3, 7]) {
        const bad = good.slice();
        bad[i] = (bad[i] as number) ^ (1 << bit);
        const r = decodeHeartbeat(bad, KEY);
        expect(r.ok).toBe(false);
      }
    }
  });

  test("truncated and padded datagrams are refused", () => {
    const good = encodeHeartbeat({ node: "b", seq: 1n, intervalMs: 50, leaving: false }, KEY);
    for (let n = 0; n < good.length; n++) expect(decodeHeartbeat(good.subarray(0, n), KEY).ok).toBe(false);
    const padded = new Uint8Array(good.length + 1);
    padded.set(good);
    expect(decodeHeartbeat(padded, KEY)).toEqual({ ok: false, reason: "BadLength" });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (junk) => {
        expect(decodeHeartbeat(junk, KEY).ok).toBe(false);
      }),
      { seed: 11, numRuns: 500 },
    );
  });
});

describe("membership", () => {
  test("a node claims nothing until it has listened for riseMs + deadAfterMs after start", () => {
    const m = createMembership(cfg, 0);
    expect(isReady(m, 1199)).toBe(false);
    expect(aliveNodes(m, 1199)).toEqual([]);
    expect(isReady(m, 1200)).toBe(true);
    expect(aliveNodes(m, 1200)).toEqual(["a"]);
  });

  test("peers heard steadily become Alive only after riseMs (hysteresis)", () => {
    let m = createMembership(cfg, 0);
    m = beat(m, ["b", "c"], 0, 950);
    expect(m.peers.get("b")?.state).toBe("Rising");
    m = beat(m, ["b", "c"], 1000, 1250, 100n);
    expect(m.peers.get("b")?.state).toBe("Alive");
    expect(aliveNodes(m, 1250)).toEqual(["a", "b", "c"]);
  });

  test("a silent peer is Dead after deadAfterMs, and a flap is counted", () => {
    let m = beat(createMembership(cfg, 0), ["b", "c"], 0, 1500);
    m = beat(m, ["c"], 1550, 1750, 1000n); // b falls silent after 1500
    expect(m.peers.get("b")?.state).toBe("Dead");
    expect(m.peers.get("b")?.flaps).toBe(1);
    expect(aliveNodes(m, 1750)).toEqual(["a", "c"]);
  });

  test("a returning peer rises again for riseMs before it takes anything back", () => {
    let m = beat(createMembership(cfg, 0), ["b", "c"], 0, 1500);
    m = beat(m, ["c"], 1550, 2000, 1000n);
    m = beat(m, ["b", "c"], 2050, 2500, 2000n);
    expect(m.peers.get("b")?.state).toBe("Rising");
    m = beat(m, ["b", "c"], 2550, 3100, 3000n);
    expect(m.peers.get("b")?.state).toBe("Alive");
  });

  test("a replayed heartbeat cannot keep a dead peer alive", () => {
    let m = beat(createMembership(cfg, 0), ["b"], 0, 1500);
    const r = onHeartbeat(m, { node: "b", seq: 3n, intervalMs: 50, leaving: false }, 1510);
    expect(r.drop).toBe("Replay");
    m = r.m;
  });

  test("heartbeats from strangers and from ourselves are dropped", () => {
    const m = createMembership(cfg, 0);
    expect(onHeartbeat(m, { node: "zed", seq: 1n, intervalMs: 50, leaving: false }, 10).drop).toBe(
      "UnknownNode",
    );
    expect(onHeartbeat(m, { node: "a", seq: 1n, intervalMs: 50, leaving: false }, 10).drop).toBe("Self");
  });

  test("a leaving heartbeat (clean shutdown) drops the peer at once", () => {
    let m = beat(createMembership(cfg, 0), ["b", "c"], 0, 1500);
    m = onHeartbeat(m, { node: "b", seq: 10_000n, intervalMs: 50, leaving: true }, 1510).m;
    expect(m.peers.get("b")?.state).toBe("Dead");
  });

  test("after a pause (SIGSTOP) the node forgets what it knew and claims nothing for a while", () => {
    let m = beat(createMembership(cfg, 0), ["b", "c"], 0, 1500);
    expect(aliveNodes(m, 1500)).toEqual(["a", "b", "c"]);
    const t = tick(m, 5000); // stopped for 3.5 s
    expect(t.paused).toBe(true);
    m = t.m;
    expect(aliveNodes(m, 5000)).toEqual([]);
    expect(m.holdReason).toBe("pause");
    m = beat(m, ["b", "c"], 5050, 6200, 5000n);
    expect(aliveNodes(m, 6200)).toEqual(["a", "b", "c"]);
  });

  test("the returning node is not ready before the others have seen it rise (no two owners)", () => {
    // b's view of a, and a's own readiness, after a returns at t=10000 from a pause.
    const bCfg = { ...cfg, self: "b" };
    let bView = beat(createMembership(bCfg, 0), ["a", "c"], 0, 1500);
    bView = beat(bView, ["c"], 1550, 10_000, 100n); // a silent (stopped) → dead in b's view
    expect(bView.peers.get("a")?.state).toBe("Dead");
    let aView = tick(beat(createMembership(cfg, 0), ["b", "c"], 0, 1500), 10_000).m;
    // a resumes and beats; b sees a rise; a must not be ready before b sees it Alive.
    let seq = 50_000n;
    for (let t = 10_000; t <= 12_000; t += 50) {
      bView = tick(onHeartbeat(bView, { node: "a", seq: seq++, intervalMs: 50, leaving: false }, t).m, t).m;
      aView = tick(beat(aView, ["b", "c"], t, t, seq++), t).m;
      if (isReady(aView, t)) expect(bView.peers.get("a")?.state).toBe("Alive");
    }
    expect(isReady(aView, 12_000)).toBe(true);
  });
});
