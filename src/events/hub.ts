/**
 * The event hub: what changed on this node, in order, for watchers (the API's Server-Sent Events
 * stream `GET /api/v1/events`). Pure: no timers, no I/O; the clock is injected.
 *
 * It owns a ring buffer of the last `capacity` events, each with an id that grows by one, and a
 * set of listeners called synchronously on `publish`. Ids are `<epoch>-<seq>`: the epoch names
 * this hub (one per process), so an id from an earlier process is never mistaken for one of this
 * process. `replay(lastId)` gives the events after `lastId`, or `reset` when they are no longer
 * all in the buffer (evicted, from another epoch, or not an id at all): the watcher must then
 * re-read the state it cares about. `replay` then `subscribe` in the same synchronous turn miss
 * nothing and repeat nothing (publish runs to completion on the same thread). A watcher that
 * sends at its own pace keeps only a seq and reads with `after(seq, max)` (the API's stream
 * does: one shared buffer, no copy per watcher); null there means it fell too far behind.
 *
 * A burst larger than `capacity` (10,000 Services assigned at start) pushes out events a watcher
 * has not read yet and cuts that watcher off: publish summaries for mass changes (one event per
 * pool with counts), per-object events for the changes after.
 *
 * A listener that throws is removed (and counted), so a broken watcher never breaks a publisher:
 * `publish` never throws. Memory is bounded by `capacity` events; keep `data` small (a few
 * hundred bytes: names, addresses, states — not whole lists).
 *
 * @example
 * const hub = new EventHub({ capacity: 1024, now: Date.now });
 * hub.publish("ownership", { vip: "192.168.10.1", service: "default/web", from: "n1", to: "n2" });
 * const { events } = hub.replay(undefined); // [] — a new watcher starts at "now"
 * const off = hub.subscribe((e) => console.log(e.id, e.type, e.data));
 * hub.publish("config", { generation: 7, etag: "abc" }); // the listener sees it
 * off();
 */

/**
 * What an event says changed. `assignment`: a Service's addresses (data: service, addresses,
 * or reason); `ownership`: a layer-2 VIP's owner (vip, service, from, to, reason);
 * `bgp-session` / `bfd-session`: a session state (peer, state, previous, reason); `config`: a
 * configuration generation applied or rejected (generation, etag, result); `update`: system
 * update progress (phase, percent, message, result).
 */
export const EVENT_TYPES = [
  "assignment",
  "ownership",
  "bgp-session",
  "bfd-session",
  "config",
  "update",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** A JSON value (what an event's data may hold). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface HubEvent {
  /** `<epoch>-<seq>`; seq grows by one per event, from 1. */
  readonly id: string;
  readonly seq: number;
  readonly type: EventType;
  /** Milliseconds since the Unix epoch, from the injected clock. */
  readonly time: number;
  readonly data: { readonly [key: string]: JsonValue };
}

export type Replay =
  | { kind: "events"; events: HubEvent[] }
  | { kind: "reset"; reason: "evicted" | "unknown-epoch" | "malformed" | "ahead"; events: HubEvent[] };

export type Listener = (e: HubEvent) => void;

export interface EventHubOptions {
  /** Events kept for resuming watchers (default 1024). */
  capacity?: number;
  /** Clock in ms since the Unix epoch (default Date.now). */
  now?: () => number;
  /** The id prefix naming this hub (default: the start time in base 36). [a-z0-9]+ */
  epoch?: string;
}

export interface HubStats {
  published: number;
  buffered: number;
  listeners: number;
  /** Listeners removed because they threw. */
  listenerErrors: number;
}

export class EventHub {
  readonly capacity: number;
  readonly epoch: string;
  private readonly now: () => number;
  private readonly ring: (HubEvent | undefined)[];
  private seq = 0;
  private readonly listeners = new Set<Listener>();
  private listenerErrors = 0;

  constructor(opts: EventHubOptions = {}) {
    const capacity = opts.capacity ?? 1024;
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new Error("EventHub: capacity must be a positive integer");
    this.capacity = capacity;
    this.now = opts.now ?? Date.now;
    this.epoch = opts.epoch ?? Math.floor(this.now()).toString(36);
    if (!/^[a-z0-9]+$/.test(this.epoch)) throw new Error("EventHub: epoch must match [a-z0-9]+");
    this.ring = new Array<HubEvent | undefined>(capacity);
  }

  /** Records an event and hands it to every listener; returns it. Never throws. */
  publish(type: EventType, data: { readonly [key: string]: JsonValue }): HubEvent {
    this.seq += 1;
    const e: HubEvent = { id: `${this.epoch}-${this.seq}`, seq: this.seq, type, time: this.now(), data };
    this.ring[this.seq % this.capacity] = e;
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        this.listeners.delete(l);
        this.listenerErrors += 1;
      }
    }
    return e;
  }

  /**
   * The events after `lastId` (a `Last-Event-ID`). Undefined or empty: none (start now). An id
   * whose successors are not all buffered any more, of another epoch, malformed, or beyond the
   * last one published: `reset`, with no events (the watcher re-reads the state, then follows).
   */
  replay(lastId: string | undefined): Replay {
    if (lastId === undefined || lastId === "") return { kind: "events", events: [] };
    const m = /^([a-z0-9]+)-([0-9]{1,15})$/.exec(lastId);
    if (m === null) return { kind: "reset", reason: "malformed", events: [] };
    if (m[1] !== this.epoch) return { kind: "reset", reason: "unknown-epoch", events: [] };
    const after = Number(m[2]);
    if (after > this.seq) return { kind: "reset", reason: "ahead", events: [] };
    const events = this.after(after, this.capacity);
    if (events === null) return { kind: "reset", reason: "evicted", events: [] };
    return { kind: "events", events };
  }

  /**
   * Up to `max` events with seq > `afterSeq`, oldest first; null when the one after `afterSeq`
   * is no longer buffered (a watcher that fell more than `capacity` events behind).
   */
  after(afterSeq: number, max: number): HubEvent[] | null {
    if (afterSeq + 1 < this.oldestSeq) return null;
    const events: HubEvent[] = [];
    for (let s = afterSeq + 1; s <= this.seq && events.length < max; s++)
      events.push(this.ring[s % this.capacity]!);
    return events;
  }

  /** The seq of the last event published (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** The seq of the oldest event still buffered (lastSeq + 1 when none is). */
  get oldestSeq(): number {
    return Math.max(1, this.seq - this.capacity + 1);
  }

  /** Calls `listener` for every event published from now on; returns the unsubscribe. */
  subscribe(listener: Listener): () => void {
    // A wrapper, so the same function subscribed twice is two subscriptions.
    const l: Listener = (e) => listener(e);
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  }

  /** The id of the last event published, or undefined before the first. */
  get lastId(): string | undefined {
    return this.seq === 0 ? undefined : `${this.epoch}-${this.seq}`;
  }

  stats(): HubStats {
    return {
      published: this.seq,
      buffered: Math.min(this.seq, this.capacity),
      listeners: this.listeners.size,
      listenerErrors: this.listenerErrors,
    };
  }
}
