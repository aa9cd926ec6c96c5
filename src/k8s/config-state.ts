/**
 * What the operator sees when metallb.io objects got in that vipd cannot use (the webhook was
 * off or down): written by the active controller after each configuration pass.
 *
 * - a Warning Event `InvalidConfiguration` on each object left out, saying which field and why
 *   (said once per problem, again only when the problem changes);
 * - a `ConfigurationState` object named `controller` in vipd's namespace (MetalLB's kind,
 *   metallb.io/v1beta1): `status.result` Valid or Invalid, `status.errorSummary` with every
 *   problem, and a `Valid` condition;
 * - one log line when an object is left out, and one when it is back in force.
 *
 * The stale gauge (`vipd_config_stale`) is ClusterState's `stale`, so every pod exports it.
 */

import type { Logger } from "../util/log.ts";
import { type Kube, KubeError, type KubeObject, kubeTime, PATHS } from "./client.ts";
import { describeProblems, type Rejected } from "./configset.ts";
import type { EventRecorder } from "./events.ts";
import { plainError, RateLimitedLog } from "./outage.ts";

export const CONFIG_STATE_PLURAL = "configurationstates";

export interface ConfigStateStatus {
  result: "Valid" | "Invalid";
  errorSummary: string;
}

/** The ConfigurationState status for a set of left-out objects (pure). */
export function configStateStatus(rejected: readonly Rejected[]): ConfigStateStatus {
  if (rejected.length === 0) return { result: "Valid", errorSummary: "" };
  const lines = rejected.map((r) => `${r.kind}/${r.name} is not in force: ${describeProblems(r.problems)}`);
  return { result: "Invalid", errorSummary: lines.join("\n").slice(0, 8192) };
}

const regarding = (r: Rejected): KubeObject => ({
  apiVersion: r.kind === "BGPPeer" ? "metallb.io/v1beta2" : "metallb.io/v1beta1",
  kind: r.kind,
  metadata: { name: r.name, namespace: r.namespace, ...(r.uid !== undefined ? { uid: r.uid } : {}) },
});

export interface ConfigReporterOptions {
  namespace: string;
  /** The ConfigurationState's name (default "controller", as MetalLB's controller names its own). */
  name?: string;
  events: EventRecorder;
  log?: Logger | undefined;
  now?: () => number;
}

export class ConfigReporter {
  /** Object key → what was said about it. */
  private said = new Map<string, string>();
  private written: string | undefined;
  private inFlight: string | undefined;
  private readonly name: string;
  private readonly outage: RateLimitedLog;
  readonly stats = { writes: 0, writeErrors: 0 };

  constructor(
    private readonly kube: Kube,
    private readonly opts: ConfigReporterOptions,
  ) {
    this.name = opts.name ?? "controller";
    this.outage = new RateLimitedLog({ log: opts.log, now: opts.now });
  }

  /** Resolves once what an earlier controller wrote has been read (see `reset`). */
  private resumed: Promise<void> = Promise.resolve();

  /** The objects left out now (the whole list; what changed is worked out here). */
  report(rejected: readonly Rejected[]): void {
    const list = [...rejected];
    void this.resumed.then(() => this.apply(list));
  }

  private apply(rejected: readonly Rejected[]): void {
    const now = new Map<string, Rejected>();
    for (const r of rejected) now.set(`${r.kind}/${r.namespace}/${r.name}`, r);
    for (const [key, r] of now) {
      const text = describeProblems(r.problems);
      if (this.said.get(key) === text) continue;
      this.said.set(key, text);
      this.opts.log?.warn("configuration: object not in force", { object: key, problems: text });
      this.opts.events.emit(
        regarding(r),
        "Warning",
        "InvalidConfiguration",
        "Validate",
        `not in force (the last valid configuration stays): ${text}`,
      );
    }
    for (const key of [...this.said.keys()]) {
      if (now.has(key)) continue;
      this.said.delete(key);
      this.opts.events.forget(key);
      this.opts.log?.info("configuration: object in force again (or deleted)", { object: key });
    }
    void this.write(configStateStatus(rejected));
  }

  private path(): string {
    return `${PATHS.metallb(CONFIG_STATE_PLURAL, this.opts.namespace)}/${this.name}`;
  }

  private async write(st: ConfigStateStatus): Promise<void> {
    const body = JSON.stringify(st);
    if (body === this.written || body === this.inFlight) return;
    this.inFlight = body;
    try {
      const t = kubeTime((this.opts.now ?? Date.now)());
      // An empty text is left out (null removes it in a merge patch): kube-apiserver 1.20 refuses
      // an empty string in a CRD's status here ("Invalid value: null ... must be of type string").
      const status = {
        result: st.result,
        errorSummary: st.errorSummary === "" ? null : st.errorSummary,
        conditions: [
          {
            type: "Valid",
            status: st.result === "Valid" ? "True" : "False",
            reason: st.result === "Valid" ? "ConfigurationValid" : "InvalidConfiguration",
            ...(st.errorSummary === "" ? {} : { message: st.errorSummary.slice(0, 1024) }),
            lastTransitionTime: t,
          },
        ],
      };
      try {
        await this.kube.mergePatch(`${this.path()}/status`, { status });
      } catch (e) {
        if (!(e instanceof KubeError && e.status === 404)) throw e;
        try {
          await this.kube.create(PATHS.metallb(CONFIG_STATE_PLURAL, this.opts.namespace), {
            apiVersion: "metallb.io/v1beta1",
            kind: "ConfigurationState",
            metadata: {
              name: this.name,
              namespace: this.opts.namespace,
              labels: { "metallb.io/component-type": "controller" },
            },
          });
        } catch (e2) {
          if (!(e2 instanceof KubeError && e2.status === 409)) throw e2;
        }
        await this.kube.mergePatch(`${this.path()}/status`, { status });
      }
      this.written = body;
      this.stats.writes++;
      this.outage.ok("write", "configuration: the ConfigurationState is written again");
    } catch (e) {
      this.stats.writeErrors++;
      this.outage.warn(
        "write",
        "configuration: cannot write the ConfigurationState; retrying at the next pass",
        {
          error: plainError(e, this.kube.server),
        },
      );
    } finally {
      if (this.inFlight === body) this.inFlight = undefined;
    }
  }

  /**
   * A new term as leader: forget what was written, and read what the previous controller (this
   * pod before a restart, or another) said in the ConfigurationState, so problems it already
   * reported with an Event are not reported again.
   */
  reset(): void {
    this.written = undefined;
    this.said = new Map();
    this.resumed = this.load().catch(() => {});
  }

  private async load(): Promise<void> {
    let cur: KubeObject;
    try {
      cur = await this.kube.get(this.path());
    } catch {
      return;
    }
    const st = (cur.status ?? {}) as { errorSummary?: unknown };
    if (typeof st.errorSummary !== "string") return;
    for (const line of st.errorSummary.split("\n")) {
      const m = /^([A-Za-z]+)\/([^ ]+) is not in force: (.*)$/.exec(line);
      if (m !== null) this.said.set(`${m[1]}/${this.opts.namespace}/${m[2]}`, m[3] as string);
    }
  }
}
