/**
 * The BFD session FSM on an injected clock (RFC 5880 §6.2, §6.5, §6.8): each test is a short
 * story of packets in, time passing, and the packets/state changes that come out.
 */

import { describe, expect, test } from "bun:test";
import { type AuthConfig, encodeSigned } from "../../src/bfd/auth.ts";
import {
  type ControlPacket,
  controlPacket,
  DIAG,
  decodeControl,
  encodeControl,
} from "../../src/bfd/codec.ts";
import {
  type Action,
  detectionTimeMs,
  jittered,
  newSession,
  nextDeadline,
  onPacket,
  onTimer,
  type Session,
  type SessionParams,
  type Step,
  setAdminDown,
  setParams,
  txIntervalMs,
} from "../../src/bfd/fsm.ts";

const FAST: SessionParams = {
  desiredMinTxUs: 50_000,
  requiredMinRxUs: 50_000,
  detectMult: 3,
  passive: false,
};
const LOCAL = 0xaaaa;
const REMOTE = 0xbbbb;

/** The remote's packet at 50 ms × 3 unless overridden. */
const peer = (f: Partial<ControlPacket>): ControlPacket =>
  controlPacket({ myDiscr: REMOTE, yourDiscr: LOCAL, desiredMinTx: 50_000, requiredMinRx: 50_000, ...f });

const rx = (s: Session, p: ControlPacket, now: number, rand = 0.5): Step =>
  onPacket(s, encodeControl(p), p, now, rand);
const sent = (st: Step): ControlPacket[] =>
  st.actions.filter((a): a is Extract<Action, { kind: "send" }> => a.kind === "send").map((a) => a.packet);
const changes = (st: Step) =>
  st.actions
    .filter((a): a is Extract<Action, { kind: "state" }> => a.kind === "state")
    .map((a) => [a.from, a.to, a.diag]);

/** Runs the three-way handshake from Down to Up at t = 0..2 and completes the Poll. */
function upSession(params = FAST): Session {
  let s = newSession(params, LOCAL, 0);
  s = rx(s, peer({ state: "Down", yourDiscr: 0 }), 1).session;
  s = rx(s, peer({ state: "Up" }), 2).session;
  expect(s.state).toBe("Up");
  return rx(s, peer({ state: "Up", final: true }), 3).session;
}

describe("bringing a session up", () => {
  test("a new session sends a Down packet at once, slowly (≥ 1 s), with Your Discriminator 0", () => {
    const s = newSession(FAST, LOCAL, 100);
    expect(nextDeadline(s)).toBe(100);
    const st = onTimer(s, 100, 0.5);
    const [p] = sent(st);
    expect(p).toMatchObject({
      state: "Down",
      myDiscr: LOCAL,
      yourDiscr: 0,
      desiredMinTx: 1_000_000,
      requiredMinRx: 50_000,
    });
    // Next transmission: 75–100% of 1 s.
    expect(st.session.nextTxAt).toBe(100 + 1000 * (0.75 + 0.25 * 0.5));
  });

  test("Down + remote Down → Init, announced at once; Init + remote Up → Up", () => {
    let s = newSession(FAST, LOCAL, 0);
    let st = rx(s, peer({ state: "Down", yourDiscr: 0 }), 10);
    expect(changes(st)).toEqual([["Down", "Init", DIAG.None]]);
    expect(sent(st)[0]).toMatchObject({ state: "Init", yourDiscr: REMOTE });
    s = st.session;
    st = rx(s, peer({ state: "Up" }), 20);
    expect(changes(st)).toEqual([["Init", "Up", DIAG.None]]);
    expect(st.session.upSince).toBe(20);
  });

  test("Down + remote Init → Up directly", () => {
    const st = rx(newSession(FAST, LOCAL, 0), peer({ state: "Init" }), 5);
    expect(changes(st)).toEqual([["Down", "Up", DIAG.None]]);
  });

  test("Down + remote Up is ignored (§6.8.6 table)", () => {
    const st = rx(newSession(FAST, LOCAL, 0), peer({ state: "Up" }), 5);
    expect(st.session.state).toBe("Down");
    expect(changes(st)).toEqual([]);
  });

  test("going Up leaves slow mode through a Poll; the Final completes it", () => {
    let s = newSession(FAST, LOCAL, 0);
    s = rx(s, peer({ state: "Down", yourDiscr: 0 }), 1).session;
    const st = rx(s, peer({ state: "Up" }), 2);
    s = st.session;
    expect(s.pollActive).toBe(true);
    expect(s.desiredMinTx).toBe(50_000);
    // Faster transmission may start at once (decrease); a Poll packet went out immediately.
    expect(txIntervalMs(s)).toBe(50);
    expect(sent(st).some((p) => p.poll && p.state === "Up" && p.desiredMinTx === 50_000)).toBe(true);
    // Periodic packets keep P until the Final.
    expect(sent(onTimer(s, s.nextTxAt!, 0.5)).every((p) => p.poll)).toBe(true);
    s = rx(s, peer({ state: "Up", final: true }), 10).session;
    expect(s.pollActive).toBe(false);
    expect(sent(onTimer(s, s.nextTxAt!, 0.5)).every((p) => !p.poll)).toBe(true);
  });

  test("a received Poll is answered at once with Final (and never P and F together)", () => {
    const s = upSession();
    const st = rx(s, peer({ state: "Up", poll: true, desiredMinTx: 100_000 }), 50);
    const [p] = sent(st);
    expect(p).toMatchObject({ final: true, poll: false, state: "Up" });
  });
});

describe("detection (§6.8.4)", () => {
  test("no packet for Detect Mult × max(local RX, remote TX) → Down, Control Detection Time Expired", () => {
    let s = upSession();
    s = rx(s, peer({ state: "Up" }), 1000).session;
    expect(detectionTimeMs(s)).toBe(150);
    expect(s.detectAt).toBe(1150);
    // Just before: still Up.
    expect(onTimer(s, 1149.9, 0.5).session.state).toBe("Up");
    const st = onTimer(s, 1150, 0.5);
    expect(changes(st)).toEqual([["Up", "Down", DIAG.ControlDetectionTimeExpired]]);
    expect(st.session).toMatchObject({
      remoteDiscr: 0,
      flaps: 1,
      lastDiag: DIAG.ControlDetectionTimeExpired,
    });
    // The Down packet carries the diagnostic and goes out at once, slowly paced afterwards.
    expect(sent(st)[0]).toMatchObject({ state: "Down", diag: 1, yourDiscr: REMOTE, desiredMinTx: 1_000_000 });
    expect(txIntervalMs(st.session)).toBe(1000);
  });

  test("the remote's multiplier and slower TX set the detection time", () => {
    let s = upSession();
    s = rx(s, peer({ state: "Up", detectMult: 5, desiredMinTx: 300_000 }), 100).session;
    expect(detectionTimeMs(s)).toBe(1500);
    s = rx(s, peer({ state: "Up", detectMult: 2, desiredMinTx: 10_000 }), 200).session;
    expect(detectionTimeMs(s)).toBe(100); // 2 × max(50 local RX, 10 remote TX)
  });

  test("every packet restarts the detection timer", () => {
    let s = upSession();
    for (let t = 100; t <= 1000; t += 100) {
      s = rx(s, peer({ state: "Up" }), t).session;
      s = onTimer(s, t + 99, 0.5).session;
      expect(s.state).toBe("Up");
    }
  });
});

describe("going down on the remote's word", () => {
  test("Up + remote Down → Down with Neighbor Signaled Session Down", () => {
    const st = rx(upSession(), peer({ state: "Down", diag: 1 }), 100);
    expect(changes(st)).toEqual([["Up", "Down", DIAG.NeighborSignaledSessionDown]]);
    expect(st.session.flaps).toBe(1);
  });

  test("remote AdminDown takes Init and Up down, leaves Down alone", () => {
    expect(changes(rx(upSession(), peer({ state: "AdminDown", diag: 7 }), 100))).toEqual([
      ["Up", "Down", DIAG.NeighborSignaledSessionDown],
    ]);
    const init = rx(newSession(FAST, LOCAL, 0), peer({ state: "Down", yourDiscr: 0 }), 1).session;
    expect(changes(rx(init, peer({ state: "AdminDown" }), 2))[0]).toEqual(["Init", "Down", 3]);
    expect(changes(rx(newSession(FAST, LOCAL, 0), peer({ state: "AdminDown" }), 2))).toEqual([]);
  });
});

describe("transmission (§6.8.7)", () => {
  test("jitter: 75–100% of the interval, 75–90% with a multiplier of 1", () => {
    expect(jittered(100, 3, 0)).toBe(75);
    expect(jittered(100, 3, 0.999999)).toBeCloseTo(100, 3);
    expect(jittered(100, 1, 0.999999)).toBeCloseTo(90, 3);
    let s = upSession();
    for (let i = 0; i < 200; i++) {
      const r = (i * 0.618) % 1;
      const t = s.nextTxAt!;
      s = rx(s, peer({ state: "Up" }), t).session; // keep it Up
      const st = onTimer(s, t, r);
      s = st.session;
      const gap = s.nextTxAt! - t;
      expect(gap).toBeGreaterThanOrEqual(37.5);
      expect(gap).toBeLessThanOrEqual(50);
    }
  });

  test("the interval is the larger of our Desired Min TX and the remote's Required Min RX", () => {
    const s = rx(upSession(), peer({ state: "Up", requiredMinRx: 200_000 }), 100).session;
    expect(txIntervalMs(s)).toBe(200);
  });

  test("a remote Required Min RX of 0 stops periodic transmission", () => {
    const s = rx(upSession(), peer({ state: "Up", requiredMinRx: 0 }), 100).session;
    expect(s.nextTxAt).toBeNull();
  });

  test("passive: silent until the remote speaks, silent again once it is timed out", () => {
    const params = { ...FAST, passive: true };
    let s = newSession(params, LOCAL, 0);
    expect(nextDeadline(s)).toBeNull();
    expect(sent(onTimer(s, 10_000, 0.5))).toEqual([]);
    const st = rx(s, peer({ state: "Down", yourDiscr: 0 }), 100);
    expect(sent(st)[0]).toMatchObject({ state: "Init" });
    s = st.session;
    expect(s.nextTxAt).not.toBeNull();
    // The remote vanishes: after the detection time, RemoteDiscr is 0 and we stop.
    s = onTimer(s, s.detectAt!, 0.5).session;
    expect(s.remoteDiscr).toBe(0);
    expect(s.nextTxAt).toBeNull();
  });
});

describe("timer changes (§6.8.3)", () => {
  test("a slower TX while Up starts a Poll and takes effect only after the Final", () => {
    let s = upSession();
    const st = setParams(s, { ...FAST, desiredMinTxUs: 300_000 }, 100, 0.5);
    s = st.session;
    expect(sent(st)[0]).toMatchObject({ poll: true, desiredMinTx: 300_000 });
    expect(txIntervalMs(s)).toBe(50);
    s = rx(s, peer({ state: "Up", final: true }), 110).session;
    expect(txIntervalMs(s)).toBe(300);
  });

  test("a smaller RX while Up keeps the old detection time until the Final", () => {
    let s = upSession({ ...FAST, requiredMinRxUs: 300_000 });
    s = rx(s, peer({ state: "Up" }), 100).session;
    expect(detectionTimeMs(s)).toBe(900);
    s = setParams(s, FAST, 110, 0.5).session;
    s = rx(s, peer({ state: "Up" }), 120).session;
    expect(detectionTimeMs(s)).toBe(900);
    s = rx(s, peer({ state: "Up", final: true }), 130).session;
    expect(detectionTimeMs(s)).toBe(150);
  });

  test("a change while a Poll is running is queued, not a second concurrent Poll", () => {
    let s = upSession();
    s = setParams(s, { ...FAST, desiredMinTxUs: 100_000 }, 100, 0.5).session;
    s = setParams(s, { ...FAST, desiredMinTxUs: 200_000 }, 101, 0.5).session;
    expect(s.pollQueued).toBe(true);
    s = rx(s, peer({ state: "Up", final: true }), 110).session;
    expect(s.pollActive).toBe(true); // the queued one
    s = rx(s, peer({ state: "Up", final: true }), 120).session;
    expect(s.pollActive).toBe(false);
    expect(txIntervalMs(s)).toBe(200);
  });

  test("while not Up, the configured fast rate never goes below 1 s", () => {
    const s = setParams(newSession(FAST, LOCAL, 0), { ...FAST, desiredMinTxUs: 10_000 }, 5, 0.5).session;
    expect(s.desiredMinTx).toBe(1_000_000);
    expect(s.pollActive).toBe(false);
  });
});

describe("administrative control (§6.8.16)", () => {
  test("AdminDown announces diag 7, counts a flap, and ignores the remote", () => {
    const st = setAdminDown(upSession(), true, 100, 0.5);
    expect(changes(st)).toEqual([["Up", "AdminDown", DIAG.AdministrativelyDown]]);
    expect(sent(st)[0]).toMatchObject({ state: "AdminDown", diag: 7 });
    const r = rx(st.session, peer({ state: "Up" }), 110);
    expect(r.drop).toBe("SessionAdminDown");
    expect(r.session.state).toBe("AdminDown");
    const back = setAdminDown(r.session, false, 200, 0.5);
    expect(changes(back)).toEqual([["AdminDown", "Down", DIAG.None]]);
  });
});

describe("authentication in the session (§6.7)", () => {
  const auth: AuthConfig = { type: "MeticulousKeyedSha1", keyId: 1, secret: "s3cret" };
  const params = { ...FAST, auth };
  const signedRx = (s: Session, p: ControlPacket, seq: number, now: number) => {
    const raw = encodeSigned(p, auth, seq);
    const d = decodeControl(raw);
    if (!d.ok) throw new Error(d.reason);
    return onPacket(s, raw, d.packet, now, 0.5);
  };

  test("unauthenticated packets are dropped; signed ones drive the FSM; replays are dropped", () => {
    const s = newSession(params, LOCAL, 0);
    expect(rx(s, peer({ state: "Down", yourDiscr: 0 }), 1).drop).toBe("AuthMissing");
    const st = signedRx(s, peer({ state: "Down", yourDiscr: 0 }), 10, 2);
    expect(st.drop).toBeUndefined();
    expect(st.session.state).toBe("Init");
    expect(signedRx(st.session, peer({ state: "Up" }), 10, 3).drop).toBe("AuthBadSequence");
    expect(signedRx(st.session, peer({ state: "Up" }), 11, 3).session.state).toBe("Up");
  });

  test("meticulous: our sequence number advances with every packet", () => {
    let s = newSession(params, LOCAL, 0);
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const st = onTimer(s, s.nextTxAt!, 0.5);
      s = st.session;
      const a = st.actions[0];
      if (a?.kind !== "send") throw new Error("no packet");
      seqs.push(new DataView(a.bytes.buffer).getUint32(28));
    }
    expect(seqs).toEqual([1, 2, 3]);
  });
});
