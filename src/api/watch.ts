/**
 * The watch stream's engine: Server-Sent Events (WHATWG HTML §9.2, `text/event-stream`) from the
 * event hub (src/events/hub.ts), one stream per watcher, with bounded memory whatever the
 * watchers do.
 *
 * - Every event is a frame `id: <epoch>-<seq>`, `event: <type>`, `data: {"time", "data"}`. The
 *   stream opens with `retry:` and a `hello` event whose id is the hub's last (so a client that
 *   saw nothing still resumes from the right place); a resume (`Last-Event-ID`) the hub can no
 *   longer serve opens with a `reset` event instead ({reason, lastId}): re-read the state, then
 *   follow.
 * - Pull, not push: a watcher is a seq into the hub's shared ring. Frames are made only when the
 *   response stream asks for more (its queue under `highWaterBytes`, i.e. the socket drains), so a
 *   watcher that does not read costs one seq and a queue of at most `highWaterBytes` plus one
 *   batch — no per-watcher copy of the events. When the hub overwrites the next event such a
 *   watcher has not read, it is cut off (the stream errors, the connection closes, counted); on
 *   reconnecting with its Last-Event-ID it gets a `reset`.
 * - Heartbeats: a comment line (`: heartbeat`) every `heartbeatMs`, sent only when the queue has
 *   room, keep proxies and Bun's idle timeout (10 s) from closing a quiet stream.
 * - At most `maxWatchers` at once (then `open` returns null: the route answers 503 Busy).
 */

import type { EventHub, EventType, HubEvent } from "../events/hub.ts";
import type { Logger } from "../util/log.ts";

export interface WatchLimits {
  /** Comment line interval; default 5000 (under Bun's 10 s idle timeout). */
  heartbeatMs: number;
  /** Watchers at once; default 32. */
  maxWatchers: number;
  /** Bytes queued in a stream before it stops pulling events; default 64 KiB. */
  highWaterBytes: number;
  /** Events framed per pull; default 64. */
  batch: number;
  /** The client's reconnect delay (`retry:`), ms; default 2000. */
  retryMs: number;
  /** Starts a periodic timer; returns its stop. Default setInterval (tests inject their own). */
  tick: (fn: () => void, ms: number) => () => void;
}

export const DEFAULT_WATCH: WatchLimits = {
  heartbeatMs: 5000,
  maxWatchers: 32,
  highWaterBytes: 64 * 1024,
  batch: 64,
  retryMs: 2000,
  tick: (fn, ms) => {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
};

export interface WatchStats {
  watchers: number;
  opened: number;
  /** Watchers cut off because they fell more than the hub's capacity behind. */
  cutOff: number;
  /** The most bytes any stream held queued (bounded by highWaterBytes plus one batch). */
  maxQueuedBytes: number;
}

const enc = new TextEncoder();

function frame(id: string, type: string, data: unknown): string {
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class Watchers {
  readonly limits: WatchLimits;
  private open_ = 0;
  private opened = 0;
  private cutOff = 0;
  private maxQueued = 0;
  /** Frames are made once per event, whatever the number of watchers. */
  private readonly frames = new WeakMap<HubEvent, string>();

  constructor(
    private readonly hub: EventHub,
    limits: Partial<WatchLimits> = {},
    private readonly log?: Logger,
  ) {
    this.limits = { ...DEFAULT_WATCH, ...limits };
  }

  private frameOf(e: HubEvent): string {
    let f = this.frames.get(e);
    if (f === undefined) {
      f = frame(e.id, e.type, { time: new Date(e.time).toISOString(), data: e.data });
      this.frames.set(e, f);
    }
    return f;
  }

  /**
   * A new watcher's stream, resuming after `lastEventId` when given, with only the event types
   * in `types` (null: all). Null when `maxWatchers` are open already.
   */
  open(
    lastEventId: string | undefined,
    types: ReadonlySet<EventType> | null,
  ): ReadableStream<Uint8Array> | null {
    if (this.open_ >= this.limits.maxWatchers) return null;
    this.open_ += 1;
    this.opened += 1;
    const { hub, limits } = this;
    let next = hub.lastSeq + 1;
    let closed = false;
    let wake: (() => void) | null = null;
    let unsubscribe = () => {};
    let stopBeat = () => {};
    const close = () => {
      if (closed) return;
      closed = true;
      this.open_ -= 1;
      unsubscribe();
      stopBeat();
      wake?.();
    };
    const send = (c: ReadableStreamDefaultController<Uint8Array>, text: string) => {
      c.enqueue(enc.encode(text));
      this.maxQueued = Math.max(this.maxQueued, limits.highWaterBytes - (c.desiredSize ?? 0));
    };
    const cut = (c: ReadableStreamDefaultController<Uint8Array>) => {
      if (closed) return;
      this.cutOff += 1;
      this.log?.warn("watch stream cut off: the watcher fell behind the event buffer", {
        next: `${hub.epoch}-${next}`,
        oldest: `${hub.epoch}-${hub.oldestSeq}`,
        capacity: hub.capacity,
      });
      close();
      // No reason given: Bun 1.4.5 prints a stream's error reason to stderr (a stack per cut
      // watcher); without one it just closes the connection.
      c.error();
    };
    return new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          const r = hub.replay(lastEventId);
          const current = hub.lastId ?? `${hub.epoch}-0`;
          let head = `retry: ${limits.retryMs}\n\n`;
          if (r.kind === "reset") {
            head += frame(current, "reset", { reason: r.reason, lastId: lastEventId ?? "" });
          } else if (lastEventId === undefined || lastEventId === "") {
            head += frame(current, "hello", { lastId: hub.lastId ?? null });
          } else {
            next = (r.events[0]?.seq ?? hub.lastSeq + 1) as number;
          }
          send(c, head);
          unsubscribe = hub.subscribe(() => {
            if (next < hub.oldestSeq) cut(c);
            else wake?.();
          });
          stopBeat = limits.tick(() => {
            if (!closed && (c.desiredSize ?? 0) > 0) send(c, ": heartbeat\n\n");
          }, limits.heartbeatMs);
        },
        pull: async (c) => {
          while (!closed) {
            const batch = hub.after(next - 1, limits.batch);
            if (batch === null) return cut(c);
            if (batch.length > 0) {
              next = batch[batch.length - 1]!.seq + 1;
              const text = batch
                .filter((e) => types === null || types.has(e.type))
                .map((e) => this.frameOf(e))
                .join("");
              if (text.length > 0) return send(c, text);
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = null;
          }
        },
        cancel: () => close(),
      },
      { highWaterMark: limits.highWaterBytes, size: (chunk) => chunk?.byteLength ?? 0 },
    );
  }

  stats(): WatchStats {
    return { watchers: this.open_, opened: this.opened, cutOff: this.cutOff, maxQueuedBytes: this.maxQueued };
  }
}
