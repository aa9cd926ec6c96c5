/**
 * What the Kubernetes speaker tells the cluster about what this node announces: one
 * ServiceL2Status / ServiceBGPStatus object (metallb.io/v1beta1, in vipd's namespace) per Service
 * this node announces, and a `NodeAssigned` Event on the Service the first time it does. Objects a
 * previous run of this node left behind are adopted, so a restart updates or deletes them.
 * A failed write is counted and retried at the next plan; nothing here changes what is announced.
 */

import { createHash } from "node:crypto";
import type { Plan } from "../plan/plan.ts";
import type { Logger } from "../util/log.ts";
import { type Kube, KubeError, PATHS } from "./client.ts";
import { EventRecorder } from "./events.ts";
import { plainError, RateLimitedLog } from "./outage.ts";
import type { ClusterState } from "./state.ts";

interface StatusObject {
  plural: "servicel2statuses" | "servicebgpstatuses";
  kind: "ServiceL2Status" | "ServiceBGPStatus";
  name: string;
  service: string;
  status: Record<string, unknown>;
}

const short = (s: string): string => createHash("sha256").update(s).digest("hex").slice(0, 10);

const sameList = (a: unknown, b: readonly string[], key?: string): boolean => {
  if (!Array.isArray(a) || a.length !== b.length) return false;
  for (let i = 0; i < b.length; i++) {
    const v = key === undefined ? a[i] : (a[i] as Record<string, unknown> | undefined)?.[key];
    if (v !== b[i] || (key !== undefined && Object.keys(a[i] as object).length !== 1)) return false;
  }
  return true;
};

/**
 * The status object written already says this (what JSON of both would compare, without the
 * text: node, Service, and its interfaces or peers, and nothing else).
 */
function says(
  had: StatusObject,
  plural: StatusObject["plural"],
  svc: string,
  node: string,
  ns: string,
  name: string,
  list: readonly string[],
): boolean {
  const st = had.status;
  if (had.plural !== plural || had.service !== svc) return false;
  if (st.node !== node || st.serviceName !== name || st.serviceNamespace !== ns) return false;
  if (Object.keys(st).length !== 4) return false;
  return plural === "servicel2statuses" ? sameList(st.interfaces, list, "name") : sameList(st.peers, list);
}

export interface StatusPublisherOptions {
  node: string;
  namespace: string;
  log?: Logger | undefined;
  now?: (() => number) | undefined;
}

export class StatusPublisher {
  private readonly statuses = new Map<string, StatusObject>();
  private adopted = false;
  private readonly events: EventRecorder;
  private announced = new Set<string>();
  /** Status object names by Service key (a sha256 each: made once). */
  private names = new Map<string, { l2: string; bgp: string }>();
  /** The plan of the last publish that wrote everything it wanted. */
  private published: Plan | undefined;
  /** API failures, said once a minute while they last. */
  private readonly outage: RateLimitedLog;
  writes = 0;
  errors = 0;

  constructor(
    private readonly kube: Kube,
    private readonly state: ClusterState,
    private readonly opts: StatusPublisherOptions,
  ) {
    this.events = new EventRecorder(kube, "vipd.io/speaker", opts.node, opts.now);
    this.outage = new RateLimitedLog({ log: opts.log, now: opts.now });
  }

  /**
   * Status objects a previous run of this node left behind: adopted (so the diff below updates
   * or deletes them) instead of being orphaned.
   */
  private async adoptLeftovers(): Promise<void> {
    for (const [plural, kind] of [
      ["servicel2statuses", "ServiceL2Status"],
      ["servicebgpstatuses", "ServiceBGPStatus"],
    ] as const) {
      const l = await this.kube.list(
        `${PATHS.metallb(plural, this.opts.namespace)}?labelSelector=${encodeURIComponent(`metallb.io/node=${this.opts.node}`)}`,
      );
      for (const o of l.items) {
        if (this.statuses.has(o.metadata.name)) continue;
        const st = (o.status ?? {}) as Record<string, unknown>;
        // A previous run of this node announced it and said so (NodeAssigned): a restart does
        // not say it again.
        this.announced.add(
          `${plural === "servicel2statuses" ? "layer2" : "bgp"} ${String(st.serviceNamespace)}/${String(st.serviceName)}`,
        );
        this.statuses.set(o.metadata.name, {
          plural,
          kind,
          name: o.metadata.name,
          service: `${String(st.serviceNamespace)}/${String(st.serviceName)}`,
          status: st,
        });
      }
    }
  }

  /** ServiceL2Status / ServiceBGPStatus objects and NodeAssigned events for what this node announces. */
  async publish(plan: Plan): Promise<void> {
    // The plan every object was written for already (the speaker keeps the plan's object while
    // it does not change).
    if (plan === this.published) return;
    this.published = undefined;
    const errors = this.errors;
    const node = this.opts.node;
    if (!this.adopted) {
      try {
        await this.adoptLeftovers();
        this.adopted = true;
      } catch (e) {
        this.outage.warn("leftovers", "speaker: cannot list earlier status objects", {
          error: plainError(e, this.kube.server),
        });
      }
    }
    // Per Service announced, its object's name; an object is made (and written) only when the
    // one written does not say the same already.
    const want = new Map<string, StatusObject | undefined>();
    const now = new Set<string>();
    const nameOf = (svc: string) => {
      let n = this.names.get(svc);
      if (n === undefined) {
        const h = short(`${node}/${svc}`);
        n = { l2: `l2-${h}`, bgp: `bgp-${h}` };
        this.names.set(svc, n);
      }
      return n;
    };
    const wanted = (plural: StatusObject["plural"], svc: string, list: readonly string[]) => {
      const n = nameOf(svc);
      const l2 = plural === "servicel2statuses";
      const objName = l2 ? n.l2 : n.bgp;
      const slash = svc.indexOf("/");
      const ns = svc.slice(0, slash);
      const name = svc.slice(slash + 1);
      const had = this.statuses.get(objName);
      if (had !== undefined && says(had, plural, svc, node, ns, name, list)) want.set(objName, undefined);
      else
        want.set(objName, {
          plural,
          kind: l2 ? "ServiceL2Status" : "ServiceBGPStatus",
          name: objName,
          service: svc,
          status: l2
            ? { node, serviceName: name, serviceNamespace: ns, interfaces: list.map((i) => ({ name: i })) }
            : { node, serviceName: name, serviceNamespace: ns, peers: [...list] },
        });
      now.add(`${l2 ? "layer2" : "bgp"} ${svc}`);
    };
    for (const e of plan.l2) for (const svc of e.services) wanted("servicel2statuses", svc, e.interfaces);
    const bgp = new Map<string, Set<string>>();
    for (const r of plan.routes)
      for (const svc of r.services) bgp.set(svc, (bgp.get(svc) ?? new Set()).add(r.peer));
    for (const [svc, peers] of bgp) wanted("servicebgpstatuses", svc, [...peers].sort());
    if (this.names.size > 2 * now.size + 1024) this.names = new Map();
    for (const [name, o] of want) {
      if (o === undefined) continue;
      const had = this.statuses.get(name);
      try {
        const path = PATHS.metallb(o.plural, this.opts.namespace);
        if (had === undefined) {
          try {
            await this.kube.create(path, {
              apiVersion: "metallb.io/v1beta1",
              kind: o.kind,
              metadata: {
                name,
                namespace: this.opts.namespace,
                labels: {
                  "metallb.io/node": node,
                  "metallb.io/service-name": o.status.serviceName as string,
                  "metallb.io/service-namespace": o.status.serviceNamespace as string,
                },
              },
              spec: {},
            });
          } catch (e) {
            if (!(e instanceof KubeError && e.status === 409)) throw e;
          }
        }
        await this.kube.mergePatch(`${path}/${name}/status`, { status: o.status });
        this.statuses.set(name, o);
        this.writes++;
      } catch (e) {
        this.errors++;
        this.outage.warn("status", "speaker: a status write failed; retrying at the next change", {
          name,
          error: plainError(e, this.kube.server),
        });
      }
    }
    for (const [name, o] of [...this.statuses]) {
      if (want.has(name)) continue;
      try {
        await this.kube.delete(`${PATHS.metallb(o.plural, this.opts.namespace)}/${name}`);
        this.statuses.delete(name);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) this.statuses.delete(name);
        else this.errors++;
      }
    }
    for (const what of now) {
      if (this.announced.has(what)) continue;
      const [proto, svc] = what.split(" ") as [string, string];
      const obj = this.state.service(svc);
      if (obj !== undefined)
        this.events.emit(
          obj,
          "Normal",
          "NodeAssigned",
          "Announce",
          `announcing from node "${node}" with protocol "${proto}"`,
        );
    }
    this.announced = now;
    if (this.adopted && this.errors === errors) this.published = plan;
  }
}
