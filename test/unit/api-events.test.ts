/**
 * The watch stream `GET /api/v1/events` (src/api/routes/events.ts over src/api/watch.ts and the
 * hub): who may watch, the opening `hello`, live events, resume with Last-Event-ID, `reset` when
 * the resume point is gone, type filters, heartbeats (an injected ticker), the watcher limit, and
 * a client that stops reading — in-process and for real over a loopback socket — cut off with
 * bounded memory. Also `GET /api/v1/audit`.
 */

import { describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { createApp } from "../../src/api/app.ts";
import { AuditLog } from "../../src/api/audit.ts";
import { hashToken } from "../../src/api/auth.ts";
import { serveApi } from "../../src/api/serve.ts";
import { Watchers, type WatchLimits } from "../../src/api/watch.ts";
import { EventHub } from "../../src/events/hub.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const ADMIN = "events-admin-token";
const READER = "events-read-token";
const TOKENS = [
  { name: "ops", role: "admin" as const, hash: hashToken(ADMIN) },
  { name: "dash", role: "read" as const, hash: hashToken(READER) },
];
const auth = (t: string) => ({ Authorization: `Bearer ${t}` });
const quiet = () => createLogger("api", { level: "error", sink: () => {} });

/** A ticker the test fires by hand: `fire()` runs every running timer once. */
function manualTicker() {
  const running = new Set<() => void>();
  const tick: WatchLimits["tick"] = (fn) => {
    running.add(fn);
    return () => running.delete(fn);
  };
  const fire = () => {
    for (const f of [...running]) f();
  };
  return { tick, fire, count: () => running.size };
}

function setup(opts: { capacity?: number; watch?: Partial<WatchLimits> } = {}) {
  let t = Date.UTC(2026, 0, 1);
  const hub = new EventHub({ capacity: opts.capacity ?? 64, epoch: "ep1", now: () => t++ });
  const ticker = manualTicker();
  const audit = new AuditLog();
  const app = createApp(new FakeRuntime(), {
    tokens: TOKENS,
    metricsOpen: true,
    events: hub,
    audit,
    watch: { tick: ticker.tick, ...opts.watch },
    log: quiet(),
  });
  return { hub, app, ticker, audit };
}

interface Frame {
  id?: string;
  event?: string;
  data?: unknown;
  comment?: string;
  retry?: number;
}

/** Reads SSE frames from a response body, as an EventSource would parse them. */
function sse(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const parse = (block: string): Frame => {
    const f: Frame = {};
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) f.comment = line.slice(1).trim();
      else {
        const i = line.indexOf(":");
        const [k, v] = [line.slice(0, i), line.slice(i + 1).replace(/^ /, "")];
        if (k === "id") f.id = v;
        else if (k === "event") f.event = v;
        else if (k === "data") f.data = JSON.parse(v);
        else if (k === "retry") f.retry = Number(v);
      }
    }
    return f;
  };
  return {
    /** The next `n` frames; fails after 2 s without them. */
    async next(n = 1): Promise<Frame[]> {
      const out: Frame[] = [];
      const deadline = Date.now() + 2000;
      while (out.length < n) {
        const end = buf.indexOf("\n\n");
        if (end >= 0) {
          out.push(parse(buf.slice(0, end)));
          buf = buf.slice(end + 2);
          continue;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${out.length} of ${n} frames: ${JSON.stringify(out)}`);
        const r = await Promise.race([reader.read(), Bun.sleep(left).then(() => null)]);
        if (r === null) continue;
        if (r.done) throw new Error(`stream ended after ${out.length} of ${n} frames`);
        buf += dec.decode(r.value, { stream: true });
      }
      return out;
    },
    cancel: () => reader.cancel(),
  };
}

const watch = (app: ReturnType<typeof setup>["app"], headers: Record<string, string> = {}, query = "") =>
  app.request(`/api/v1/events${query}`, {
    headers: { ...auth(READER), Accept: "text/event-stream", ...headers },
  });

describe("GET /api/v1/events", () => {
  test("read role: 401 without a token, 200 text/event-stream with one; 406 without event-stream; 400 for an unknown type", async () => {
    const { app } = setup();
    const none = await app.request("/api/v1/events");
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: string }).error).toBe("Unauthorized");
    for (const t of [READER, ADMIN]) {
      const res = await watch(app, auth(t));
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(res.headers.get("cache-control")).toBe("no-store");
      await res.body!.cancel();
    }
    const json = await watch(app, { Accept: "application/json" });
    expect(json.status).toBe(406);
    expect(await json.json()).toEqual({
      error: "NotAcceptable",
      message: "this route answers text/event-stream only",
    });
    const bad = await watch(app, {}, "?types=ownership,nope");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('"nope"');
    expect((await app.request("/api/v1/events", { method: "POST", headers: auth(ADMIN) })).status).toBe(405);
    const doc = (await (await app.request("/openapi.json", { headers: auth(READER) })).json()) as {
      paths: Record<string, { get?: { responses: Record<string, { content?: Record<string, unknown> }> } }>;
    };
    expect(Object.keys(doc.paths["/api/v1/events"]?.get?.responses["200"]?.content ?? {})).toEqual([
      "text/event-stream",
    ]);
    expect(doc.paths["/api/v1/audit"]?.get).toBeDefined();
  });

  test("opens with retry and hello (the resume point), then live events with ids and types", async () => {
    const { app, hub } = setup();
    hub.publish("config", { generation: 1 }); // before the watcher: not sent
    const s = sse((await watch(app)).body!);
    const [retry, hello] = await s.next(2);
    expect(retry?.retry).toBe(2000);
    expect(hello).toEqual({ id: "ep1-1", event: "hello", data: { lastId: "ep1-1" } });
    hub.publish("ownership", { vip: "192.168.10.1", from: "n1", to: "n2" });
    hub.publish("bgp-session", { peer: "10.0.0.9", state: "Established" });
    expect(await s.next(2)).toEqual([
      {
        id: "ep1-2",
        event: "ownership",
        data: { time: "2026-01-01T00:00:00.001Z", data: { vip: "192.168.10.1", from: "n1", to: "n2" } },
      },
      {
        id: "ep1-3",
        event: "bgp-session",
        data: { time: "2026-01-01T00:00:00.002Z", data: { peer: "10.0.0.9", state: "Established" } },
      },
    ]);
    await s.cancel();
    expect(hub.stats().listeners).toBe(0);
  });

  test("resume with Last-Event-ID: exactly what was missed, then live", async () => {
    const { app, hub } = setup();
    for (let i = 1; i <= 4; i++) hub.publish("config", { generation: i });
    const s = sse((await watch(app, { "Last-Event-ID": "ep1-2" })).body!);
    const [retry, ...missed] = await s.next(3);
    expect(retry?.retry).toBe(2000);
    expect(missed.map((f) => [f.id, (f.data as { data: { generation: number } }).data.generation])).toEqual([
      ["ep1-3", 3],
      ["ep1-4", 4],
    ]);
    hub.publish("config", { generation: 5 });
    expect((await s.next())[0]?.id).toBe("ep1-5");
    await s.cancel();
  });

  test("a resume point no longer buffered, or of another process, opens with reset", async () => {
    const { app, hub } = setup({ capacity: 4 });
    for (let i = 1; i <= 10; i++) hub.publish("assignment", { n: i });
    const s = sse((await watch(app, { "Last-Event-ID": "ep1-3" })).body!);
    const [, reset] = await s.next(2);
    expect(reset).toEqual({ id: "ep1-10", event: "reset", data: { reason: "evicted", lastId: "ep1-3" } });
    hub.publish("assignment", { n: 11 });
    expect((await s.next())[0]?.id).toBe("ep1-11"); // follows from the reset's id, nothing before
    await s.cancel();
    const other = sse((await watch(app, { "Last-Event-ID": "oldproc-99" })).body!);
    expect((await other.next(2))[1]).toMatchObject({ event: "reset", data: { reason: "unknown-epoch" } });
    await other.cancel();
  });

  test("?types keeps only those types (ids still tell the resume point)", async () => {
    const { app, hub } = setup();
    const s = sse((await watch(app, {}, "?types=ownership,config")).body!);
    await s.next(2);
    hub.publish("assignment", { service: "default/web" });
    hub.publish("ownership", { vip: "192.168.10.1" });
    hub.publish("bfd-session", { peer: "10.0.0.9" });
    hub.publish("config", { generation: 2 });
    expect((await s.next(2)).map((f) => [f.id, f.event])).toEqual([
      ["ep1-2", "ownership"],
      ["ep1-4", "config"],
    ]);
    await s.cancel();
  });

  test("heartbeats are comment lines on the ticker; the ticker stops with the stream", async () => {
    const { app, hub, ticker } = setup();
    const s = sse((await watch(app)).body!);
    await s.next(2);
    expect(ticker.count()).toBe(1);
    ticker.fire();
    expect(await s.next()).toEqual([{ comment: "heartbeat" }]);
    hub.publish("config", { generation: 2 });
    expect((await s.next())[0]?.event).toBe("config");
    ticker.fire();
    ticker.fire();
    expect(await s.next(2)).toEqual([{ comment: "heartbeat" }, { comment: "heartbeat" }]);
    await s.cancel();
    expect(ticker.count()).toBe(0);
  });

  test("at most maxWatchers streams: then 503 Busy with Retry-After; a closed one frees its place", async () => {
    const { app } = setup({ watch: { maxWatchers: 1 } });
    const first = await watch(app);
    expect(first.status).toBe(200);
    const second = await watch(app);
    expect(second.status).toBe(503);
    expect(second.headers.get("retry-after")).toBe("5");
    expect(((await second.json()) as { error: string }).error).toBe("Busy");
    await first.body!.cancel();
    const third = await watch(app);
    expect(third.status).toBe(200);
    await third.body!.cancel();
  });

  test("in process: a watcher that stops reading is cut off when the buffer passes it; the others go on", async () => {
    const { app, hub } = setup({ capacity: 32, watch: { highWaterBytes: 4096 } });
    const slow = (await watch(app)).body!.getReader();
    const fast = sse((await watch(app)).body!);
    await fast.next(2);
    let cut = false;
    for (let i = 1; i <= 400; i++) {
      hub.publish("assignment", { n: i, pad: "x".repeat(200) });
      expect((await fast.next())[0]?.id).toBe(`ep1-${i}`);
      if (hub.stats().listeners === 1) {
        cut = true;
        break;
      }
    }
    expect(cut).toBe(true);
    // The slow reader gets what was queued, then the error that ends its stream.
    let ended = false;
    for (let i = 0; i < 1000 && !ended; i++) await slow.read().catch(() => (ended = true));
    expect(ended).toBe(true);
    const metrics = await (await app.request("/metrics")).text();
    expect(metrics).toContain("vipd_api_watchers_cut_off_total 1");
    expect(metrics).toContain("vipd_api_watchers 1");
    await fast.cancel();
  });
});

describe("a client that stops reading, over a real socket", () => {
  test("is cut off and its connection closed; queued bytes stay bounded; the server keeps serving", async () => {
    const hub = new EventHub({ capacity: 256, epoch: "sock" });
    const limits = { highWaterBytes: 16 * 1024, batch: 16 };
    const watchers = new Watchers(hub, limits);
    const server = serveApi(
      {
        fetch: () =>
          new Response(watchers.open(undefined, null)!, { headers: { "Content-Type": "text/event-stream" } }),
      },
      { listen: "127.0.0.1:0" },
    );
    const sock = connect(server.port, "127.0.0.1");
    let closed = false;
    let received = 0;
    sock.on("close", () => {
      closed = true;
    });
    sock.on("error", () => {});
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once("connect", () => resolve());
        sock.once("error", reject);
      });
      sock.write("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
      await new Promise<void>((resolve) =>
        sock.once("data", (d: Buffer) => {
          received += d.length;
          resolve();
        }),
      );
      sock.pause(); // reads nothing more: the kernel buffers fill, then the server's queue
      const pad = "y".repeat(1000);
      let frameBytes = 0;
      let published = 0;
      // Bounded: at most 100,000 events of ~1 KB (the socket buffers hold a few MB).
      while (watchers.stats().cutOff === 0 && published < 100_000) {
        for (let i = 0; i < 100; i++)
          frameBytes = hub.publish("assignment", { n: ++published, pad }).id.length + 1100;
        await Bun.sleep(1);
      }
      expect(watchers.stats().cutOff).toBe(1);
      expect(watchers.stats().watchers).toBe(0);
      expect(hub.stats().listeners).toBe(0);
      // Memory: the stream never held more than its high-water mark plus one batch.
      expect(watchers.stats().maxQueuedBytes).toBeLessThanOrEqual(
        limits.highWaterBytes + limits.batch * frameBytes,
      );
      // The connection ends: reading again drains what the kernel held, then the close.
      sock.on("data", (d: Buffer) => {
        received += d.length;
      });
      sock.resume();
      for (let i = 0; i < 500 && !closed; i++) await Bun.sleep(10);
      expect(closed).toBe(true);
      expect(received).toBeLessThan(published * 1100); // it did not get everything: it was cut off
      // A new watcher is served as before.
      const res = await fetch(server.url, { headers: { Accept: "text/event-stream" } });
      expect(res.status).toBe(200);
      const s = sse(res.body!);
      expect((await s.next(2))[1]?.event).toBe("hello");
      await s.cancel();
    } finally {
      sock.destroy();
      await server.stop();
    }
  }, 30_000);
});

describe("GET /api/v1/audit", () => {
  test("admin only; changes oldest first, paged; dry runs and reads are not in it", async () => {
    const { app, audit } = setup();
    expect((await app.request("/api/v1/audit", { headers: auth(READER) })).status).toBe(403);
    expect((await app.request("/api/v1/audit")).status).toBe(401);
    for (let i = 0; i < 3; i++)
      audit.record({ token: "ops", role: "admin", method: "PUT", path: "/api/v1/config", status: 200 + i });
    const first = (await (await app.request("/api/v1/audit?limit=2", { headers: auth(ADMIN) })).json()) as {
      items: { seq: number; status: number }[];
      dropped: number;
      metadata?: { continue: string; remainingItemCount: number };
    };
    expect(first.items.map((e) => e.seq)).toEqual([1, 2]);
    expect(first.dropped).toBe(0);
    expect(first.metadata?.remainingItemCount).toBe(1);
    const rest = (await (
      await app.request(`/api/v1/audit?limit=2&continue=${first.metadata!.continue}`, {
        headers: auth(ADMIN),
      })
    ).json()) as { items: { seq: number }[]; metadata?: unknown };
    expect(rest.items.map((e) => e.seq)).toEqual([3]);
    expect(rest.metadata).toBeUndefined();
    expect((await app.request("/api/v1/audit?limit=0", { headers: auth(ADMIN) })).status).toBe(400);
    expect((await app.request("/api/v1/audit?continue=xyz", { headers: auth(ADMIN) })).status).toBe(400);
    // Reading the audit log is not a change: still 3 entries.
    expect(audit.stats().recorded).toBe(3);
  });
});

describe("the idle timeout over a real socket (idleMs 1000)", () => {
  /** Opens `path` on a raw socket; counts what arrives and when the server closes. */
  async function open(port: number, pauseAfterFirst: boolean) {
    const sock = connect(port, "127.0.0.1");
    const seen = { bytes: 0, heartbeats: 0, closed: false, resumed: false };
    sock.on("close", () => {
      seen.closed = true;
    });
    sock.on("error", () => {});
    sock.on("data", (d: Buffer) => {
      seen.bytes += d.length;
      seen.heartbeats += d.toString("latin1").split(": heartbeat").length - 1;
      if (pauseAfterFirst && !seen.resumed) sock.pause();
    });
    await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
    sock.write("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    return { sock, seen };
  }

  test("a quiet watch stream with heartbeats outlives it: writes keep it open", async () => {
    const hub = new EventHub({ capacity: 64, epoch: "idle" });
    const watchers = new Watchers(hub, { heartbeatMs: 300 });
    const server = serveApi(
      {
        fetch: () =>
          new Response(watchers.open(undefined, null)!, { headers: { "Content-Type": "text/event-stream" } }),
      },
      { listen: "127.0.0.1:0", idleMs: 1000 },
    );
    const { sock, seen } = await open(server.port, false);
    try {
      await Bun.sleep(3500);
      expect(seen.closed).toBe(false);
      expect(seen.heartbeats).toBeGreaterThanOrEqual(5);
    } finally {
      sock.destroy();
      await server.stop();
    }
  });

  test("a stream whose client stopped reading is closed once a write has waited idleMs to drain", async () => {
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    let pulls = 0;
    const server = serveApi(
      {
        fetch: () =>
          new Response(
            new ReadableStream<Uint8Array>({
              pull(c) {
                // Bounded: 4,096 × 64 KiB at most; the kernel buffers fill long before.
                if (++pulls > 4096) c.close();
                else c.enqueue(chunk);
              },
            }),
            { headers: { "Content-Type": "text/event-stream" } },
          ),
      },
      { listen: "127.0.0.1:0", idleMs: 1000 },
    );
    const { sock, seen } = await open(server.port, true);
    try {
      // Paused after the first bytes: the kernel buffers fill, a write waits for a drain that does
      // not come, and after 1 s the server closes. Reading again drains what the kernel held, then
      // the close.
      await Bun.sleep(2500);
      const pullsWhenPaused = pulls;
      seen.resumed = true;
      sock.resume();
      for (let i = 0; i < 100 && !seen.closed; i++) await Bun.sleep(100);
      expect(seen.closed).toBe(true);
      expect(pulls).toBe(pullsWhenPaused); // nothing more was made after the cut
      expect(pulls).toBeLessThan(4096); // cut off, not finished
    } finally {
      sock.destroy();
      await server.stop();
    }
  });
});
