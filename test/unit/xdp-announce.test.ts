/**
 * Takeover announcements: sent at once, repeated on the schedule, restarted by a new takeover,
 * cancelled at once when the VIP is lost. The sender is a recorder (the frames themselves are
 * tested in xdp-frames.test.ts, the real sending in test/lab/xdp-l2.test.ts).
 */

import { expect, test } from "bun:test";
import { parseIp } from "../../src/util/ip.ts";
import { Announcer } from "../../src/xdp/announce.ts";
import { parseMac } from "../../src/xdp/layout.ts";

const MAC = parseMac("02:00:5e:00:00:aa")!;
const V4 = parseIp("192.0.2.10")!;
const V6 = parseIp("2001:db8::10")!;

function recorder() {
  const sent: { ifindex: number; kind: string }[] = [];
  const send = (ifindex: number, f: Uint8Array) => {
    const kind = f[12] === 0x08 ? (f[21] === 1 ? "garp-request" : "garp-reply") : "na";
    sent.push({ ifindex, kind });
  };
  return { sent, send };
}

test("IPv4: GARP request and reply at once, then at each step of the schedule", async () => {
  const r = recorder();
  const a = new Announcer(r.send, [0, 30, 60]);
  a.announce(2, V4, MAC);
  expect(r.sent).toEqual([
    { ifindex: 2, kind: "garp-request" },
    { ifindex: 2, kind: "garp-reply" },
  ]);
  expect(a.pending()).toBe(1);
  await Bun.sleep(150);
  expect(r.sent.length).toBe(6);
  expect(a.pending()).toBe(0);
  expect(a.sent).toBe(6);
});

test("IPv6: one unsolicited NA per step", async () => {
  const r = recorder();
  const a = new Announcer(r.send, [0, 20]);
  a.announce(3, V6, MAC);
  await Bun.sleep(100);
  expect(r.sent).toEqual([
    { ifindex: 3, kind: "na" },
    { ifindex: 3, kind: "na" },
  ]);
});

test("losing a VIP cancels its pending repeats at once, and only its own", async () => {
  const r = recorder();
  const a = new Announcer(r.send, [0, 40, 80]);
  a.announce(2, V4, MAC);
  a.announce(2, V6, MAC);
  a.cancel(2, V4);
  await Bun.sleep(200);
  expect(r.sent.filter((s) => s.kind !== "na")).toHaveLength(2); // only the immediate pair
  expect(r.sent.filter((s) => s.kind === "na")).toHaveLength(3);
});

test("a new takeover restarts the schedule instead of doubling it", async () => {
  const r = recorder();
  const a = new Announcer(r.send, [0, 50]);
  a.announce(2, V6, MAC);
  a.announce(2, V6, MAC);
  await Bun.sleep(150);
  expect(r.sent).toHaveLength(3); // two immediate, one repeat
});

test("a failing send is counted, and the others still go out", () => {
  let n = 0;
  const a = new Announcer(() => {
    n++;
    if (n === 1) throw new Error("sendto(AF_PACKET) failed: ENETDOWN");
  }, [0]);
  a.announce(2, V4, MAC);
  expect([a.sent, a.failed, a.lastError]).toEqual([1, 1, "sendto(AF_PACKET) failed: ENETDOWN"]);
  a.stop();
});
