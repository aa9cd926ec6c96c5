/**
 * The BGP FSM (RFC 4271 §8) as tables: every state × every event, then the timers, driven by an
 * injected clock and an injected random source — nothing here sleeps.
 */
import { describe, expect, test } from "bun:test";
import { BgpDecodeError, type OpenMessage } from "../../src/bgp/codec/index.ts";
import {
  collisionWinner,
  FSM_STATES,
  type Fsm,
  type FsmAction,
  type FsmConfig,
  type FsmEvent,
  type FsmState,
  fsmErrorSubcode,
  initialFsm,
  nextDeadline,
  step,
} from "../../src/bgp/fsm.ts";

const cfg: FsmConfig = {
  passive: false,
  connectRetrySeconds: 5,
  maxBackoffSeconds: 60,
  holdTime: 90,
  idleHoldSeconds: 1,
  open: { peerAsn: 64500, localAsn: 64512, localBgpId: 0x0a000002 },
};
const peerOpen: OpenMessage = {
  type: "open",
  version: 4,
  myAs: 64500,
  holdTime: 30,
  bgpId: 0x0a000001,
  capabilities: [{ kind: "as4", asn: 64500 }],
};
const ctx = (now = 1_000_000, r = 0.5) => ({ now, random: () => r });

const EVENTS: Record<string, FsmEvent> = {
  ManualStart: { type: "ManualStart" },
  ManualStop: { type: "ManualStop" },
  ConnectRetryTimerExpires: { type: "ConnectRetryTimerExpires" },
  HoldTimerExpires: { type: "HoldTimerExpires" },
  KeepaliveTimerExpires: { type: "KeepaliveTimerExpires" },
  IdleHoldTimerExpires: { type: "IdleHoldTimerExpires" },
  TcpConnectionConfirmed: { type: "TcpConnectionConfirmed" },
  TcpConnectionIncoming: { type: "TcpConnectionIncoming" },
  TcpConnectionFails: { type: "TcpConnectionFails" },
  BGPOpen: { type: "BGPOpen", open: peerOpen },
  DecodeError: { type: "DecodeError", error: new BgpDecodeError(3, 1, "bad") },
  NotifMsg: { type: "NotifMsg", code: 6, subcode: 2 },
  KeepAliveMsg: { type: "KeepAliveMsg" },
  UpdateMsg: { type: "UpdateMsg" },
  RouteRefreshMsg: { type: "RouteRefreshMsg" },
  OpenCollisionDump: { type: "OpenCollisionDump" },
};

/** A running (ManualStart'ed) FSM in each state, as the driver would have it. */
function inState(s: FsmState): Fsm {
  const base = { ...initialFsm(), enabled: true, state: s };
  if (s === "OpenConfirm" || s === "Established")
    return { ...base, holdTime: 30, keepaliveTime: 10, peerOpen, peerAsn: 64500, as4: true };
  return base;
}

const fmt = (a: FsmAction) => (a.type === "sendNotification" ? `notify(${a.code}/${a.subcode})` : a.type);

// state, event → next state, actions. "—" means no actions.
const TABLE = `
Idle         ManualStart              Idle         —
Idle         ManualStop               Idle         —
Idle         ConnectRetryTimerExpires Idle         —
Idle         HoldTimerExpires         Idle         —
Idle         KeepaliveTimerExpires    Idle         —
Idle         IdleHoldTimerExpires     Connect      connect
Idle         TcpConnectionConfirmed   Idle         —
Idle         TcpConnectionIncoming    Idle         rejectIncoming
Idle         TcpConnectionFails       Idle         —
Idle         BGPOpen                  Idle         —
Idle         DecodeError              Idle         —
Idle         NotifMsg                 Idle         —
Idle         KeepAliveMsg             Idle         —
Idle         UpdateMsg                Idle         —
Idle         RouteRefreshMsg          Idle         —
Idle         OpenCollisionDump        Idle         —
Connect      ManualStart              Connect      —
Connect      ManualStop               Idle         disconnect
Connect      ConnectRetryTimerExpires Connect      disconnect,connect
Connect      HoldTimerExpires         Connect      —
Connect      KeepaliveTimerExpires    Connect      —
Connect      IdleHoldTimerExpires     Connect      —
Connect      TcpConnectionConfirmed   OpenSent     sendOpen
Connect      TcpConnectionIncoming    OpenSent     disconnect,acceptIncoming,sendOpen
Connect      TcpConnectionFails       Active       —
Connect      BGPOpen                  Idle         disconnect
Connect      DecodeError              Idle         disconnect
Connect      NotifMsg                 Idle         disconnect
Connect      KeepAliveMsg             Idle         disconnect
Connect      UpdateMsg                Idle         disconnect
Connect      RouteRefreshMsg          Idle         disconnect
Connect      OpenCollisionDump        Idle         disconnect
Active       ManualStart              Active       —
Active       ManualStop               Idle         disconnect
Active       ConnectRetryTimerExpires Connect      disconnect,connect
Active       HoldTimerExpires         Active       —
Active       KeepaliveTimerExpires    Active       —
Active       IdleHoldTimerExpires     Active       —
Active       TcpConnectionConfirmed   Active       disconnect
Active       TcpConnectionIncoming    OpenSent     acceptIncoming,sendOpen
Active       TcpConnectionFails       Active       —
Active       BGPOpen                  Idle         disconnect
Active       DecodeError              Idle         disconnect
Active       NotifMsg                 Idle         disconnect
Active       KeepAliveMsg             Idle         disconnect
Active       UpdateMsg                Idle         disconnect
Active       RouteRefreshMsg          Idle         disconnect
Active       OpenCollisionDump        Idle         disconnect
OpenSent     ManualStart              OpenSent     —
OpenSent     ManualStop               Idle         notify(6/2),disconnect
OpenSent     ConnectRetryTimerExpires OpenSent     —
OpenSent     HoldTimerExpires         Idle         notify(4/0),disconnect
OpenSent     KeepaliveTimerExpires    Idle         notify(5/1),disconnect
OpenSent     IdleHoldTimerExpires     OpenSent     —
OpenSent     TcpConnectionConfirmed   Idle         notify(5/1),disconnect
OpenSent     TcpConnectionIncoming    OpenSent     holdIncoming
OpenSent     TcpConnectionFails       Active       disconnect
OpenSent     BGPOpen                  OpenConfirm  sendKeepalive
OpenSent     DecodeError              Idle         notify(3/1),disconnect
OpenSent     NotifMsg                 Idle         disconnect
OpenSent     KeepAliveMsg             Idle         notify(5/1),disconnect
OpenSent     UpdateMsg                Idle         notify(5/1),disconnect
OpenSent     RouteRefreshMsg          Idle         notify(5/1),disconnect
OpenSent     OpenCollisionDump        Idle         notify(6/7),disconnect
OpenConfirm  ManualStart              OpenConfirm  —
OpenConfirm  ManualStop               Idle         notify(6/2),disconnect
OpenConfirm  ConnectRetryTimerExpires OpenConfirm  —
OpenConfirm  HoldTimerExpires         Idle         notify(4/0),disconnect
OpenConfirm  KeepaliveTimerExpires    OpenConfirm  sendKeepalive
OpenConfirm  IdleHoldTimerExpires     OpenConfirm  —
OpenConfirm  TcpConnectionConfirmed   Idle         notify(5/2),disconnect
OpenConfirm  TcpConnectionIncoming    OpenConfirm  holdIncoming
OpenConfirm  TcpConnectionFails       Idle         disconnect
OpenConfirm  BGPOpen                  Idle         notify(5/2),disconnect
OpenConfirm  DecodeError              Idle         notify(3/1),disconnect
OpenConfirm  NotifMsg                 Idle         disconnect
OpenConfirm  KeepAliveMsg             Established  established
OpenConfirm  UpdateMsg                Idle         notify(5/2),disconnect
OpenConfirm  RouteRefreshMsg          Idle         notify(5/2),disconnect
OpenConfirm  OpenCollisionDump        Idle         notify(6/7),disconnect
Established  ManualStart              Established  —
Established  ManualStop               Idle         notify(6/2),down,disconnect
Established  ConnectRetryTimerExpires Established  —
Established  HoldTimerExpires         Idle         notify(4/0),down,disconnect
Established  KeepaliveTimerExpires    Established  sendKeepalive
Established  IdleHoldTimerExpires     Established  —
Established  TcpConnectionConfirmed   Idle         notify(5/3),down,disconnect
Established  TcpConnectionIncoming    Established  rejectIncoming
Established  TcpConnectionFails       Idle         down,disconnect
Established  BGPOpen                  Idle         notify(5/3),down,disconnect
Established  DecodeError              Idle         notify(3/1),down,disconnect
Established  NotifMsg                 Idle         down,disconnect
Established  KeepAliveMsg             Established  —
Established  UpdateMsg                Established  —
Established  RouteRefreshMsg          Established  —
Established  OpenCollisionDump        Idle         notify(6/7),down,disconnect
`
  .trim()
  .split("\n")
  .map((l) => l.trim().split(/\s+/) as [FsmState, string, FsmState, string]);

describe("state × event table (active peer, started)", () => {
  test("the table covers every state and every event exactly once", () => {
    const keys = new Set(TABLE.map(([s, e]) => `${s} ${e}`));
    expect(keys.size).toBe(TABLE.length);
    expect(TABLE.length).toBe(FSM_STATES.length * Object.keys(EVENTS).length);
  });
  for (const [from, ev, to, acts] of TABLE) {
    test(`${from} + ${ev} → ${to} [${acts}]`, () => {
      const r = step(inState(from), EVENTS[ev]!, cfg, ctx());
      expect(r.fsm.state).toBe(to);
      expect(r.actions.map(fmt).join(",") || "—").toBe(acts);
    });
  }
});

describe("FSM errors name the state (RFC 6608 §3)", () => {
  // Issue 17, "BGP behaviour found with GoBGP and ExaBGP as peers": unexpected messages in
  // OpenSent got 5/0 (Unspecific); RFC 6608 gives each state its own subcode.
  for (const [state, sub] of [
    ["OpenSent", 1],
    ["OpenConfirm", 2],
    ["Established", 3],
  ] as const) {
    test(`an unexpected message in ${state} gets NOTIFICATION 5/${sub}`, () => {
      const ev: FsmEvent =
        state === "Established" ? { type: "BGPOpen", open: peerOpen } : { type: "UpdateMsg" };
      const r = step(inState(state), ev, cfg, ctx());
      expect(r.actions.map(fmt)[0]).toBe(`notify(5/${sub})`);
      expect(fsmErrorSubcode(state)).toBe(sub);
    });
  }
});

describe("timers on an injected clock", () => {
  const t0 = 1_000_000;
  const established = (hold: number, keepalive?: number) => {
    const c: FsmConfig = {
      ...cfg,
      holdTime: 90,
      ...(keepalive !== undefined ? { keepaliveTime: keepalive } : {}),
    };
    let f = step(initialFsm(), { type: "ManualStart" }, c, ctx(t0)).fsm;
    f = step(f, { type: "TcpConnectionConfirmed" }, c, ctx(t0)).fsm;
    f = step(f, { type: "BGPOpen", open: { ...peerOpen, holdTime: hold } }, c, ctx(t0)).fsm;
    return { f: step(f, { type: "KeepAliveMsg" }, c, ctx(t0, 1)).fsm, c };
  };

  test("hold time is the smaller of the two; keepalive is hold/3", () => {
    const { f } = established(30);
    expect([f.state, f.holdTime, f.keepaliveTime]).toEqual(["Established", 30, 10]);
    expect(f.timers.hold).toBe(t0 + 30_000);
    expect(f.timers.keepalive).toBe(t0 + 10_000);
  });
  test("a configured keepalive wins when shorter, never exceeds hold/3", () => {
    expect(established(30, 3).f.keepaliveTime).toBe(3);
    expect(established(9, 30).f.keepaliveTime).toBe(3);
  });
  test("hold time 0 from the peer: no hold timer, no keepalives", () => {
    const { f } = established(0);
    expect([f.holdTime, f.keepaliveTime, f.timers]).toEqual([0, 0, {}]);
    expect(nextDeadline(f)).toBeNull();
  });
  test("keepalives go out on time; messages from the peer restart the hold timer; silence expires it", () => {
    const { f, c } = established(30);
    let d = nextDeadline(f);
    expect(d?.event.type).toBe("KeepaliveTimerExpires");
    let r = step(f, d!.event, c, ctx(d!.at, 1));
    expect(r.actions.map(fmt)).toEqual(["sendKeepalive"]);
    expect(r.fsm.timers.keepalive).toBe(d!.at + 10_000);
    r = step(r.fsm, { type: "UpdateMsg" }, c, ctx(t0 + 20_000));
    expect(r.fsm.timers.hold).toBe(t0 + 50_000);
    // Only keepalive deadlines pass until t0+50 s; then the hold timer fires.
    let g = r.fsm;
    for (;;) {
      d = nextDeadline(g);
      if (d!.event.type === "HoldTimerExpires") break;
      g = step(g, d!.event, c, ctx(d!.at, 1)).fsm;
    }
    expect(d!.at).toBe(t0 + 50_000);
    const end = step(g, d!.event, c, ctx(d!.at));
    expect([end.fsm.state, end.actions.map(fmt).join(",")]).toEqual(["Idle", "notify(4/0),down,disconnect"]);
  });
  test("connect retry is jittered within [0.75, 1] of the interval and backs off to the cap", () => {
    const lo = step(initialFsm(), { type: "ManualStart" }, cfg, ctx(t0, 0)).fsm;
    const hi = step(initialFsm(), { type: "ManualStart" }, cfg, ctx(t0, 0.999999)).fsm;
    expect(lo.timers.connectRetry).toBe(t0 + 3750);
    expect(hi.timers.connectRetry).toBe(t0 + 5000);
    let f = lo;
    const gaps: number[] = [];
    for (let i = 0; i < 6; i++) {
      const at = f.timers.connectRetry!;
      f = step(f, { type: "TcpConnectionFails" }, cfg, ctx(at - 1, 1)).fsm;
      expect(f.state).toBe("Active");
      const r = step(f, { type: "ConnectRetryTimerExpires" }, cfg, ctx(at, 0.999999));
      expect(r.actions.map(fmt)).toEqual(["disconnect", "connect"]);
      f = r.fsm;
      gaps.push(f.timers.connectRetry! - at);
    }
    expect(gaps).toEqual([10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
  });
  test("idle hold after errors doubles per consecutive error and resets once Established", () => {
    const { f, c } = established(30);
    let g = f;
    const holds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = step(g, { type: "NotifMsg", code: 6, subcode: 4 }, c, ctx(t0, 0.999999));
      holds.push(r.fsm.timers.idleHold! - t0);
      g = step(r.fsm, { type: "IdleHoldTimerExpires" }, c, ctx(t0)).fsm;
      g = step(g, { type: "TcpConnectionConfirmed" }, c, ctx(t0)).fsm;
      g = step(g, { type: "BGPOpen", open: peerOpen }, c, ctx(t0)).fsm;
      if (i < 2) g = { ...g, state: "Established" }; // simulate reaching Established without the reset
    }
    expect(holds).toEqual([1000, 2000, 4000]);
    const back = step(g, { type: "KeepAliveMsg" }, c, ctx(t0)).fsm;
    expect(back.errorCount).toBe(0);
  });
  test("a passive peer waits in Active with no timers and never connects", () => {
    const p: FsmConfig = { ...cfg, passive: true };
    const r = step(initialFsm(), { type: "ManualStart" }, p, ctx());
    expect([r.fsm.state, r.actions, nextDeadline(r.fsm)]).toEqual(["Active", [], null]);
    expect(step(r.fsm, { type: "ConnectRetryTimerExpires" }, p, ctx()).actions).toEqual([]);
    expect(step(r.fsm, { type: "TcpConnectionIncoming" }, p, ctx()).fsm.state).toBe("OpenSent");
  });
  test("an unacceptable OPEN is refused with its NOTIFICATION", () => {
    let f = step(initialFsm(), { type: "ManualStart" }, cfg, ctx()).fsm;
    f = step(f, { type: "TcpConnectionConfirmed" }, cfg, ctx()).fsm;
    const bad = (o: Partial<OpenMessage>) =>
      step(f, { type: "BGPOpen", open: { ...peerOpen, ...o } }, cfg, ctx())
        .actions.map(fmt)
        .join(",");
    expect(bad({ holdTime: 2 })).toBe("notify(2/6),disconnect");
    expect(bad({ myAs: 64501, capabilities: [] })).toBe("notify(2/2),disconnect");
    expect(bad({ bgpId: 0 })).toBe("notify(2/3),disconnect");
  });
  test("nextDeadline picks the earliest timer", () => {
    const f: Fsm = { ...initialFsm(), timers: { hold: 50, keepalive: 20, connectRetry: 30 } };
    expect(nextDeadline(f)).toEqual({ at: 20, event: { type: "KeepaliveTimerExpires" } });
  });
  test("collision: the higher BGP identifier's connection survives (§6.8)", () => {
    expect(collisionWinner(0x0a000002, 0x0a000001)).toBe("local-initiated");
    expect(collisionWinner(0x0a000001, 0x0a000002)).toBe("remote-initiated");
    expect(collisionWinner(0xff000001, 0x0a000002)).toBe("local-initiated");
  });
});
