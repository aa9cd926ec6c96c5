/**
 * Kubernetes Events (events.k8s.io/v1) about Services: UpperCamelCase reasons (IPAllocated,
 * AllocationFailed, IPReleased, NodeAssigned, ...), MicroTime eventTime, and a per-object
 * memory so the same reason and message is not repeated while nothing changes.
 */

import { type Kube, type KubeObject, microTime, PATHS } from "./client.ts";

export type EventType = "Normal" | "Warning";

export class EventRecorder {
  private readonly last = new Map<string, string>();
  private seq = 0;
  /** Events written and events that failed (the API server refused or was unreachable). */
  readonly stats = { written: 0, failed: 0 };

  constructor(
    private readonly kube: Kube,
    private readonly controller: string,
    private readonly instance: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Forgets what was said about an object (it was deleted). */
  forget(key: string): void {
    this.last.delete(key);
  }

  /** Emits unless the same reason and message were the last said about `obj`. Never throws. */
  async emit(obj: KubeObject, type: EventType, reason: string, action: string, note: string): Promise<void> {
    const ns = obj.metadata.namespace ?? "default";
    const kind = obj.kind ?? "Service";
    // Services by "ns/name" (as the controller forgets them); other kinds by "Kind/ns/name".
    const key = kind === "Service" ? `${ns}/${obj.metadata.name}` : `${kind}/${ns}/${obj.metadata.name}`;
    const said = `${reason}\n${note}`;
    if (this.last.get(key) === said) return;
    this.last.set(key, said);
    const t = this.now();
    try {
      await this.kube.create(
        PATHS.events(ns),
        {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: {
            name: `${obj.metadata.name}.${t.toString(16)}${(this.seq++ % 4096).toString(16).padStart(3, "0")}`,
            namespace: ns,
          },
          eventTime: microTime(t),
          reportingController: this.controller,
          reportingInstance: this.instance,
          action,
          reason,
          note: note.slice(0, 1024),
          type,
          regarding: {
            apiVersion: obj.apiVersion ?? "v1",
            kind: obj.kind ?? "Service",
            namespace: ns,
            name: obj.metadata.name,
            uid: obj.metadata.uid,
          },
        },
        "low",
      );
      this.stats.written++;
    } catch {
      this.stats.failed++;
      this.last.delete(key);
    }
  }
}
