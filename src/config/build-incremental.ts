/**
 * `buildConfig` (validate.ts) for a sequence of object sets that mostly differ in a few Services:
 * the file worker's reloads (src/appliance/file-load.ts). Its result always equals
 * `buildConfig(objects, opts)`'s (test/unit/build-incremental.test.ts compares them on random
 * edits); only its cost depends on what changed.
 *
 * The cross-object checks a Service takes part in are: its key is unique among the Services, and
 * its own annotations name an existing pool and agree with `spec.loadBalancerIP`. No check of
 * another kind reads a Service. So when the last build was valid (no problem, no schema problem),
 * and every object but the Services is the same object in the same order (a document whose text
 * did not change gives the same object), the next build is valid exactly when the Services added
 * or changed pass their own checks and their keys are not taken: only they are checked, the other
 * lists are the last Config's (the same arrays). Anything else — another kind changed, a problem,
 * a duplicate — runs the whole `buildConfig`, which gives the problems in its own order.
 */

import type { Loaded, Problem } from "./load.ts";
import type { Service } from "./schemas.ts";
import { type BuildOptions, buildConfig, type Config, checker, checkServices } from "./validate.ts";

/**
 * The Services by key (namespace, then name): no key string per Service (10,000 Services:
 * 10,000 strings fewer), and no set of them by identity — a Service is one of them when its key
 * gives that very Service.
 */
class ServiceKeys {
  private byNamespace = new Map<string, Map<string, Service>>();

  get(s: Service): Service | undefined {
    return this.byNamespace.get(s.metadata.namespace ?? "default")?.get(s.metadata.name);
  }

  has(s: Service): boolean {
    return this.get(s) === s;
  }

  set(s: Service): void {
    const ns = s.metadata.namespace ?? "default";
    let names = this.byNamespace.get(ns);
    if (names === undefined) {
      names = new Map();
      this.byNamespace.set(ns, names);
    }
    names.set(s.metadata.name, s);
  }

  delete(s: Service): void {
    const ns = s.metadata.namespace ?? "default";
    const names = this.byNamespace.get(ns);
    names?.delete(s.metadata.name);
    if (names?.size === 0) this.byNamespace.delete(ns);
  }
}

interface Valid {
  /** The objects of every other kind, in order. */
  others: unknown[];
  /** The Services (also config.services), by key. */
  keys: ServiceKeys;
  poolNames: Set<string>;
  config: Config;
}

export class IncrementalBuild {
  private last: Valid | undefined;
  /** How the last build was made (tests). */
  lastKind: "full" | "incremental" | undefined;

  build(objects: readonly Loaded[], opts: BuildOptions = {}): { config: Config; problems: Problem[] } {
    const quick = this.tryIncremental(objects, opts);
    if (quick !== undefined) {
      this.lastKind = "incremental";
      return quick;
    }
    this.lastKind = "full";
    const r = buildConfig(objects, opts);
    this.last = undefined;
    if (r.problems.length === 0 && (opts.invalid ?? []).length === 0 && opts.nodes === undefined) {
      const keys = new ServiceKeys();
      for (const s of r.config.services) keys.set(s);
      const others: unknown[] = [];
      for (const l of objects) if (l.kind !== "Service") others.push(l.obj);
      this.last = {
        others,
        keys,
        poolNames: new Set(r.config.pools.map((p) => p.metadata.name)),
        config: r.config,
      };
    }
    return r;
  }

  private tryIncremental(
    objects: readonly Loaded[],
    opts: BuildOptions,
  ): { config: Config; problems: Problem[] } | undefined {
    const last = this.last;
    if (last === undefined || (opts.invalid ?? []).length > 0 || opts.nodes !== undefined) return undefined;
    // Every other object the same, in the same order; the Services in order.
    const services: Service[] = [];
    const added: Loaded<Service>[] = [];
    let k = 0;
    for (const l of objects) {
      if (l.kind === "Service") {
        const s = l.obj as Service;
        services.push(s);
        if (!last.keys.has(s)) added.push(l as Loaded<Service>);
      } else if (last.others[k++] !== l.obj) return undefined;
    }
    if (k !== last.others.length) return undefined;
    // The same Service object twice (the same document text twice): a duplicate, for buildConfig.
    const now = new Set(services);
    if (now.size !== services.length) return undefined;
    const problems: Problem[] = [];
    checkServices(added, last.poolNames, checker(problems, []));
    if (problems.length > 0) return undefined;
    // Keys: the removed ones leave, the added ones must be free (and distinct).
    const removed: Service[] = [];
    if (now.size - added.length !== last.config.services.length)
      for (const s of last.config.services) if (!now.has(s)) removed.push(s);
    // Changed in place: a bail-out below is followed by a whole build, which starts afresh.
    const keys = last.keys;
    for (const s of removed) keys.delete(s);
    for (const l of added) {
      if (keys.get(l.obj) !== undefined) {
        this.last = undefined;
        return undefined;
      }
      keys.set(l.obj);
    }
    return this.keep(last, services);
  }

  private keep(last: Valid, services: Service[]): { config: Config; problems: Problem[] } {
    const config: Config = { ...last.config, services };
    this.last = { ...last, config };
    return { config, problems: [] };
  }
}
