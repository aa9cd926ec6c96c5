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
    const want = new Map<string, StatusObject>();
    const now = new Set<string>();
    for (const e of plan.l2) {
      for (const svc of e.services) {
        const [ns, name] = svc.split("/") as [string, string];
        const o: StatusObject = {
          plural: "servicel2statuses",
          kind: "ServiceL2Status",
          name: `l2-${short(`${node}/${svc}`)}`,
          service: svc,
          status: {
            node,
            serviceName: name,
            serviceNamespace: ns,
            interfaces: e.interfaces.map((i) => ({ name: i })),
          },
        };
        want.set(o.name, o);
        now.add(`layer2 ${svc}`);
      }
    }
    const bgp = new Map<string, Set<string>>();
    for (const r of plan.routes)
      for (const svc of r.services) bgp.set(svc, (bgp.get(svc) ?? new Set()).add(r.peer));
    for (const [svc, peers] of bgp) {
      const [ns, name] = svc.split("/") as [string, string];
      const o: StatusObject = {
        plural: "servicebgpstatuses",
        kind: "ServiceBGPStatus",
        name: `bgp-${short(`${node}/${svc}`)}`,
        service: svc,
        status: { node, serviceName: name, serviceNamespace: ns, peers: [...peers].sort() },
      };
      want.set(o.name, o);
      now.add(`bgp ${svc}`);
    }
    for (const [name, o] of want) {
      const had = this.statuses.get(name);
      if (had !== undefined && JSON.stringify(had) === JSON.stringify(o)) continue;
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
  }
}
