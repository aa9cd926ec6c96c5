/**
 * File reloads as deltas (src/appliance/config-delta.ts, file-reload.ts): over random edit
 * sequences of a manifest text (fast-check, fixed seed) — a Service, pool, advertisement or
 * NodeSettings document changed, added, removed or moved, invalid documents coming and going —
 * the file worker's chunked loader gives the problems and Config of a full load, the Config
 * rebuilt from the deltas the worker would send (through JSON, as they cross threads) equals a
 * full reload's, and so do the allocation and the plan made from it; and the real worker answers
 * a one-Service change with a delta of one object.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  applyDelta,
  type ConfigDelta,
  changedServices,
  configSize,
  deltaSize,
  diffConfig,
  serviceChanges,
} from "../../src/appliance/config-delta.ts";
import { ChunkedLoader } from "../../src/appliance/file-load.ts";
import { closeManifestChecker, loadManifests } from "../../src/appliance/store.ts";
import { type Config, configFromText, DocumentCache } from "../../src/config/index.ts";
import { allocate, emptyAllocation } from "../../src/plan/allocate.ts";
import { type NodeInfo, Planner } from "../../src/plan/plan.ts";

const SEED = 20261202;
const SLOW = 120_000;

const pool = (name: string, cidr: string) =>
  `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: { name: ${name}, namespace: metallb-system }\nspec: { addresses: ["${cidr}"] }\n`;
const l2 = (pools: string) =>
  `apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: { name: l2, namespace: metallb-system }\nspec: { ipAddressPools: [${pools}] }\n`;
const service = (name: string, app: string, ip: string | null) =>
  `apiVersion: v1\nkind: Service\nmetadata: { name: ${name}, namespace: ns, labels: { app: ${app} } }\nspec:\n  type: LoadBalancer\n  ports: [{ port: 80 }]\n${ip === null ? "" : `  loadBalancerIP: ${ip}\n`}`;
const settings = (members: string) =>
  `apiVersion: vipd.io/v1alpha1\nkind: NodeSettings\nmetadata: { name: this-node }\nspec:\n  nodeName: n1\n  members: [${members}]\n`;

const fragment = fc.oneof(
  fc
    .record({
      name: fc.constantFrom("a", "b", "c", "d", "e", "f", "g"),
      app: fc.constantFrom("web", "db"),
      ip: fc.option(fc.constantFrom("10.0.0.5", "10.0.0.9", "10.0.1.3"), { nil: null }),
    })
    .map(({ name, app, ip }) => service(name, app, ip)),
  fc.constantFrom(pool("lan", "10.0.0.0/24"), pool("lan", "10.0.0.0/28"), pool("dmz", "10.0.1.0/28")),
  fc.constantFrom(l2("lan"), l2("lan, dmz")),
  fc.constantFrom(
    settings(""),
    settings("{ name: n2, address: 127.0.0.2 }"),
    settings("{ name: n2, address: 127.0.0.2 }, { name: n3, address: 127.0.0.3 }"),
  ),
  // Invalid: a port out of range (a schema problem), a YAML syntax error.
  fc.constant(
    "apiVersion: v1\nkind: Service\nmetadata: { name: x, namespace: ns }\nspec: { ports: [{ port: 99999 }] }\n",
  ),
  fc.constant("a: [1, 2\n"),
);

const edit = fc.oneof(
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), doc: fragment }),
  fc.record({ op: fc.constant("add" as const), at: fc.nat(), doc: fragment }),
  fc.record({ op: fc.constant("remove" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("move" as const), at: fc.nat(), to: fc.nat() }),
);

function applyEdit(docs: string[], e: EditT): void {
  const i = docs.length === 0 ? 0 : e.at % docs.length;
  if (e.op === "add") docs.splice(e.at % (docs.length + 1), 0, e.doc);
  else if (docs.length === 0) return;
  else if (e.op === "set") docs[i] = e.doc;
  else if (e.op === "remove") docs.splice(i, 1);
  else {
    const [d] = docs.splice(i, 1);
    docs.splice(e.to % (docs.length + 1), 0, d as string);
  }
}
type EditT =
  | { op: "set"; at: number; doc: string }
  | { op: "add"; at: number; doc: string }
  | { op: "remove"; at: number }
  | { op: "move"; at: number; to: number };

const NODES: NodeInfo[] = ["n1", "n2", "n3"].map((name) => ({ name, labels: {} }));

describe("config deltas", () => {
  afterAll(() => closeManifestChecker());

  test(
    "random edits applied as deltas give the same Config, allocation and plan as full reloads",
    () => {
      fc.assert(
        fc.property(
          fc.array(fragment, { maxLength: 8 }),
          fc.array(edit, { minLength: 1, maxLength: 12 }),
          (start, edits) => {
            const docs = [pool("lan", "10.0.0.0/24"), l2("lan"), ...start];
            // The worker's side: its loader (cutting chunks after every other document on
            // average), its last valid Config.
            const loader = new ChunkedLoader(1n);
            let workerLast: Config | undefined;
            // The main thread's side: the Config rebuilt from deltas, its allocation and planner.
            let held: Config | undefined;
            let allocD = emptyAllocation();
            let allocF = emptyAllocation();
            let hint: ReturnType<typeof changedServices> | undefined;
            const planner = new Planner();
            for (const e of [undefined, ...edits]) {
              if (e !== undefined) applyEdit(docs, e as EditT);
              const text = docs.map((d) => `---\n${d}`).join("");
              const reused = loader.load(text, "f");
              const full = configFromText(text, "f");
              expect(reused.ok).toBe(full.ok);
              if (!reused.ok && !full.ok) expect(reused.problems).toEqual(full.problems);
              expect(reused.notes).toEqual(full.notes);
              if (!reused.ok || !full.ok) continue;
              if (workerLast === undefined || held === undefined)
                held = JSON.parse(JSON.stringify(reused.config));
              else {
                const delta = JSON.parse(
                  JSON.stringify(diffConfig(workerLast, reused.config)),
                ) as ConfigDelta;
                const base: Config = held;
                held = applyDelta(base, delta);
                // Unchanged lists and objects are the ones held before.
                for (const name of ["pools", "services"] as const)
                  if (delta.lists[name] === undefined) expect(held[name]).toBe(base[name]);
                const { services } = serviceChanges(base, delta);
                hint = changedServices(base, delta);
                expect(new Set(hint.keys())).toEqual(services);
                const changedKeys = new Set(
                  full.config.services
                    .filter(
                      (s) =>
                        JSON.stringify(s) !==
                        JSON.stringify(base.services.find((b) => b.metadata.name === s.metadata.name)),
                    )
                    .map((s) => `ns/${s.metadata.name}`),
                );
                for (const k of changedKeys) expect(services.has(k)).toBe(true);
              }
              workerLast = reused.config;
              const config = held as Config;
              expect(config).toEqual(full.config);
              // The daemon's way: the delta names the Services that may have changed.
              allocD = allocate(config, allocD, {}, { changed: hint });
              hint = undefined;
              allocF = allocate(full.config, allocF, {}, { full: true });
              expect(allocD.assignments).toEqual(allocF.assignments);
              expect(allocD.services).toEqual(allocF.services);
              const plan = planner.plan(config, allocD.assignments, NODES[0] as NodeInfo, NODES, {
                known: NODES,
              });
              const fresh = new Planner().plan(full.config, allocF.assignments, NODES[0] as NodeInfo, NODES, {
                known: NODES,
              });
              expect(plan).toEqual(fresh);
            }
          },
        ),
        { seed: SEED, numRuns: 200 },
      );
    },
    SLOW,
  );

  test("an appended, a changed and a removed Service: one object each, at its place", () => {
    const svcs = Array.from({ length: 50 }, (_, i) => service(`s${i}`, "web", null));
    const text = (xs: string[]) => [pool("lan", "10.0.0.0/24"), ...xs].map((d) => `---\n${d}`).join("");
    const cache = new DocumentCache();
    const a = configFromText(text(svcs), "f", cache);
    const changed = svcs.slice();
    changed[10] = service("s10", "db", null);
    changed.splice(20, 1);
    changed.push(service("s50", "web", null));
    const b = configFromText(text(changed), "f", cache);
    if (!a.ok || !b.ok) throw new Error("invalid");
    const d = diffConfig(a.config, b.config);
    expect(Object.keys(d.lists)).toEqual(["services"]);
    expect(d.lists.services?.map((h) => [h.at, h.remove, h.insert.length])).toEqual([
      [10, 1, 1],
      [20, 1, 0],
      [50, 0, 1],
    ]);
    expect(deltaSize(d)).toBeLessThan(configSize(b.config) / 2);
    expect(applyDelta(a.config, d)).toEqual(b.config);
    expect(
      [...serviceChanges(a.config, d).services].filter(
        (k) => k === "ns/s10" || k === "ns/s20" || k === "ns/s50",
      ),
    ).toHaveLength(3);
  });

  test("the file worker answers a one-Service change with a delta; a new worker with the whole Config", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vipd-delta-"));
    try {
      const svcs = Array.from({ length: 40 }, (_, i) => service(`s${i}`, "web", null));
      writeFileSync(join(dir, "a.yaml"), pool("lan", "10.0.0.0/24"));
      writeFileSync(join(dir, "b.yaml"), svcs.map((d) => `---\n${d}`).join(""));
      const first = await loadManifests([dir]);
      expect(first.problems).toEqual([]);
      expect(first.change).toBeUndefined();
      writeFileSync(
        join(dir, "b.yaml"),
        [...svcs, service("s40", "db", null)].map((d) => `---\n${d}`).join(""),
      );
      const second = await loadManifests([dir]);
      expect(second.change?.base).toBe(first.config as Config);
      expect(
        second.change?.delta.lists.services?.flatMap((h) => h.insert).map((s) => s.metadata.name),
      ).toEqual(["s40"]);
      expect(second.config?.services.map((s) => s.metadata.name)).toEqual([
        ...svcs.map((_, i) => `s${i}`),
        "s40",
      ]);
      // Unchanged Services are the objects held before.
      expect(second.config?.services[0]).toBe(first.config?.services[0] as Config["services"][number]);
      // An invalid set in between keeps the worker's last valid Config: the next delta is from it.
      writeFileSync(
        join(dir, "c.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: { name: x, namespace: ns }\nspec: { ports: [{ port: 99999 }] }\n",
      );
      const bad = await loadManifests([dir]);
      expect(bad.config).toBeUndefined();
      rmSync(join(dir, "c.yaml"));
      writeFileSync(join(dir, "b.yaml"), svcs.map((d) => `---\n${d}`).join(""));
      const third = await loadManifests([dir]);
      expect(third.problems).toEqual([]);
      expect(third.change?.base).toBe(second.config as Config);
      expect(third.config).toEqual(first.config as Config);
      closeManifestChecker();
      const fresh = await loadManifests([dir]);
      expect(fresh.change).toBeUndefined();
      expect(fresh.config).toEqual(first.config as Config);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
