/**
 * Kubernetes Events (events.k8s.io/v1) about Services: UpperCamelCase reasons (IPAllocated,
 * AllocationFailed, IPReleased, NodeAssigned, ...), MicroTime eventTime, and a per-object
 * memory so the same reason and message is not repeated while nothing changes.
 *
 * Events are low priority (they wait until no status write is waiting for the client): after a
 * burst of 10,000 new Services as many Events wait. They wait as data — the few strings an Event
 * is made of, not the object it is about nor a pending request — and at most `concurrency` are
 * sent at once, so the waiting ones cost a few hundred bytes each and pin no old object version.
 */

import { type Kube, type KubeObject, microTime, PATHS } from "./client.ts";

export type EventType = "Normal" | "Warning";

/** One Event waiting to be sent: what its body is made of. */
interface Pending {
  ns: string;
  name: string;
  eventTime: string;
  type: EventType;
  reason: string;
  action: string;
  note: string;
  key: string;
  /** What `last` holds for `key` once this Event is emitted. */
  said: string;
  regarding: { apiVersion: string; kind: string; namespace: string; name: string; uid: string | undefined };
}

export class EventRecorder {
  private readonly last = new Map<string, string>();
  private seq = 0;
  private readonly queue: Pending[] = [];
  /** Index of the next Event of `queue` to send (the queue is compacted as it drains). */
  private head = 0;
  private sending = 0;
  private readonly idleWaiters: (() => void)[] = [];
  /** Events written and events that failed (the API server refused or was unreachable). */
  readonly stats = { written: 0, failed: 0 };

  constructor(
    private readonly kube: Kube,
    private readonly controller: string,
    private readonly instance: string,
    private readonly now: () => number = Date.now,
    /** Events sent at once (the rest wait here, as data). */
    private readonly concurrency = 32,
  ) {}

  /** Events not yet sent (waiting or in flight). */
  get backlog(): number {
    return this.queue.length - this.head + this.sending;
  }

  /** Resolves when every Event emitted so far has been sent (or failed). */
  idle(): Promise<void> {
    return this.backlog === 0 ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  /** Forgets what was said about an object (it was deleted). */
  forget(key: string): void {
    this.last.delete(key);
  }

  /** Emits unless the same reason and message were the last said about `obj`. Never throws. */
  emit(obj: KubeObject, type: EventType, reason: string, action: string, note: string): void {
    const ns = obj.metadata.namespace ?? "default";
    const kind = obj.kind ?? "Service";
    // Services by "ns/name" (as the controller forgets them); other kinds by "Kind/ns/name".
    const key = kind === "Service" ? `${ns}/${obj.metadata.name}` : `${kind}/${ns}/${obj.metadata.name}`;
    const said = `${reason}\n${note}`;
    if (this.last.get(key) === said) return;
    this.last.set(key, said);
    const t = this.now();
    this.queue.push({
      ns,
      name: `${obj.metadata.name}.${t.toString(16)}${(this.seq++ % 4096).toString(16).padStart(3, "0")}`,
      eventTime: microTime(t),
      type,
      reason,
      action,
      note: note.length > 1024 ? note.slice(0, 1024) : note,
      key,
      said,
      regarding: {
        apiVersion: obj.apiVersion ?? "v1",
        kind,
        namespace: ns,
        name: obj.metadata.name,
        uid: obj.metadata.uid,
      },
    });
    this.pump();
  }

  private pump(): void {
    while (this.sending < this.concurrency && this.head < this.queue.length) {
      const e = this.queue[this.head] as Pending;
      this.queue[this.head++] = undefined as unknown as Pending;
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.sending++;
      void this.send(e);
    }
    if (this.backlog === 0) {
      this.queue.length = 0;
      this.head = 0;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async send(e: Pending): Promise<void> {
    try {
      await this.kube.create(
        PATHS.events(e.ns),
        {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: { name: e.name, namespace: e.ns },
          eventTime: e.eventTime,
          reportingController: this.controller,
          reportingInstance: this.instance,
          action: e.action,
          reason: e.reason,
          note: e.note,
          type: e.type,
          regarding: e.regarding,
        },
        "low",
      );
      this.stats.written++;
    } catch {
      this.stats.failed++;
      if (this.last.get(e.key) === e.said) this.last.delete(e.key);
    } finally {
      this.sending--;
      this.pump();
    }
  }
}
