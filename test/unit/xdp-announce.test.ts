/**
 * Takeover announcements: sent at once, repeated on the schedule, restarted by a new takeover,
 * cancelled at once when the VIP is lost. The sender is a recorder (the frames themselves are
 * tested in xdp-frames.test.ts, the real sending in test/lab/xdp-l2.test.ts); the clock is a
 * fake one advanced by hand, so nothing sleeps.
 */

import { expect, test } from "bun:test";
import { parseIp } from "../../src/util/ip.ts";
import { type AnnounceClock, Announcer } from "../../src/xdp/announce.ts";
import { parseMac } from "../../src/xdp/layout.ts";

const MAC = parseMac("02:00:5e:00:00:aa")!;
const V4 = parseIp("192.0.2.10")!;
const V6 = parseIp("2001:db8::10")!;

/** A manual clock: timers fire, in due order, only when advance() passes their time. */
function fakeClock() {
  let now = 1000;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const clock: AnnounceClock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (h) => void timers.delete(h as number),
  };
  const advance = (ms: number) => {
    const end = now + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      const due = [...timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      timers.delete(due[0]);
      now = Math.max(now, due[1].at);
      due[1].fn();
    }
    now = end;
  };
  return { clock, advance, timers };
}

function recorder() {
  const sent: { ifindex: number; kind: string }[] = [];
  const send = (ifindex: number, f: Uint8Array) => {
    const kind = f[12] === 0x08 ? (f[21] === 1 ? "garp-request" : "garp-reply") : "na";
    sent.push({ ifindex, kind });
  };
  return { sent, send };
}

test("IPv4: GARP request and reply at once, then at each step of the schedule", () => {
  const r = recorder();
  const c = fakeClock();
  const a = new Announcer(r.send, [0, 30, 60], c.clock);
  a.announce(2, V4, MAC);
  expect(r.sent).toEqual([
    { ifindex: 2, kind: "garp-request" },
    { ifindex: 2, kind: "garp-reply" },
  ]);
  expect(a.pending()).toBe(1);
  c.advance(29);
  expect(r.sent.length).toBe(2);
  c.advance(1);
  expect(r.sent.length).toBe(4);
  c.advance(30);
  expect(a.pending()).toBe(0);
  expect(a.sent).toBe(6);
});

test("IPv6: one unsolicited NA per step", () => {
  const r = recorder();
  const c = fakeClock();
  const a = new Announcer(r.send, [0, 20], c.clock);
  a.announce(3, V6, MAC);
  c.advance(100);
  expect(r.sent).toEqual([
    { ifindex: 3, kind: "na" },
    { ifindex: 3, kind: "na" },
  ]);
});

test("losing a VIP cancels its pending repeats at once, and only its own", () => {
  const r = recorder();
  const c = fakeClock();
  const a = new Announcer(r.send, [0, 40, 80], c.clock);
  a.announce(2, V4, MAC);
  a.announce(2, V6, MAC);
  a.cancel(2, V4);
  c.advance(200);
  expect(r.sent.filter((s) => s.kind !== "na")).toHaveLength(2); // only the immediate pair
  expect(r.sent.filter((s) => s.kind === "na")).toHaveLength(3);
});

test("a new takeover restarts the schedule instead of doubling it", () => {
  const r = recorder();
  const c = fakeClock();
  const a = new Announcer(r.send, [0, 50], c.clock);
  a.announce(2, V6, MAC);
  c.advance(30);
  a.announce(2, V6, MAC);
  c.advance(49);
  expect(r.sent).toHaveLength(2); // the first schedule's repeat (due at 50) is gone
  c.advance(1);
  expect(r.sent).toHaveLength(3); // two immediate, one repeat
});

test("a failing send is counted, and the others still go out", () => {
  let n = 0;
  const a = new Announcer(
    () => {
      n++;
      if (n === 1) throw new Error("sendto(AF_PACKET) failed: ENETDOWN");
    },
    [0],
    fakeClock().clock,
  );
  a.announce(2, V4, MAC);
  expect([a.sent, a.failed, a.lastError]).toEqual([1, 1, "sendto(AF_PACKET) failed: ENETDOWN"]);
  a.stop();
});
