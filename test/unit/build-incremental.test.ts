/**
 * src/config/build-incremental.ts: over random edit sequences (Services added, changed, removed,
 * moved, duplicated, naming pools that exist or not, with good and bad addresses; pools and
 * advertisements changed; schema errors), every build equals `buildConfig`'s on the same objects
 * — Config and problems — and the incremental path is taken when only Services changed.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { IncrementalBuild } from "../../src/config/build-incremental.ts";
import { DocumentCache, loadTextReusing } from "../../src/config/load-reuse.ts";
import { buildConfig } from "../../src/config/validate.ts";

const pool = (name: string, cidr: string) =>
  `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: { name: ${name} }\nspec: { addresses: ["${cidr}"] }\n`;
const l2 = (pools: string) =>
  `apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: { name: l2 }\nspec: { ipAddressPools: [${pools}] }\n`;
const service = (name: string, ns: string, pool: string | null, ips: string | null, lbip: string | null) =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n${
    pool === null && ips === null
      ? ""
      : `  annotations:\n${pool === null ? "" : `    metallb.io/address-pool: ${pool}\n`}${ips === null ? "" : `    metallb.io/loadBalancerIPs: "${ips}"\n`}`
  }spec:\n  type: LoadBalancer\n  ports: [{ port: 80 }]\n${lbip === null ? "" : `  loadBalancerIP: ${lbip}\n`}`;

// Mostly valid (so that runs of valid sets are long), sometimes not: a pool that does not exist,
// addresses that are not addresses or disagree with spec.loadBalancerIP.
const rare = <T>(common: T, ...odd: T[]) =>
  fc.oneof({ weight: 12, arbitrary: fc.constant(common) }, { weight: 1, arbitrary: fc.constantFrom(...odd) });
const svc = fc
  .record({
    name: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz".split("")),
    ns: fc.constantFrom("x", "y"),
    pool: fc.oneof(fc.constantFrom<string | null>(null, "lan", "dmz"), rare<string | null>(null, "nope")),
    ips: rare<string | null>(null, "10.0.0.5", "10.0.0.5,fd00::5", "10.0.0.5,10.0.0.6", "bad"),
    lbip: rare<string | null>(null, "10.0.0.5", "10.0.0.9"),
  })
  .map(({ name, ns, pool, ips, lbip }) => service(name, ns, pool, ips, lbip));
const fragment = fc.oneof(
  { weight: 30, arbitrary: svc },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      pool("lan", "10.0.0.0/24"),
      pool("dmz", "10.0.1.0/28"),
      pool("lan", "10.0.0.0/28"),
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(l2("lan"), l2("lan, dmz"), l2("gone")) },
  {
    weight: 1,
    arbitrary: fc.constant(
      "apiVersion: v1\nkind: Service\nmetadata: { name: z, namespace: x }\nspec: { ports: [{ port: 99999 }] }\n",
    ),
  },
);
const edit = fc.oneof(
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), doc: fragment }),
  fc.record({ op: fc.constant("add" as const), at: fc.nat(), doc: fragment }),
  fc.record({ op: fc.constant("remove" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("move" as const), at: fc.nat(), to: fc.nat() }),
);
type EditT =
  | { op: "set"; at: number; doc: string }
  | { op: "add"; at: number; doc: string }
  | { op: "remove"; at: number }
  | { op: "move"; at: number; to: number };

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

describe("incremental cross-object checks", () => {
  test("every build equals buildConfig's, over random edit sequences", () => {
    const kinds = { full: 0, incremental: 0 };
    fc.assert(
      fc.property(
        fc.array(svc, { maxLength: 10 }),
        fc.array(edit, { minLength: 1, maxLength: 16 }),
        (start, edits) => {
          const docs = [pool("lan", "10.0.0.0/24"), pool("dmz", "10.0.1.0/28"), l2("lan, dmz"), ...start];
          const cache = new DocumentCache();
          const inc = new IncrementalBuild();
          for (const e of [undefined, ...edits]) {
            if (e !== undefined) applyEdit(docs, e as EditT);
            const text = docs.map((d) => `---\n${d}`).join("");
            // Unchanged documents give the same objects (as the file worker's loader).
            const loaded = loadTextReusing(text, "f", cache);
            const got = inc.build(loaded.objects, { invalid: loaded.problems });
            const want = buildConfig(loaded.objects, { invalid: loaded.problems });
            expect(got.problems).toEqual(want.problems);
            expect(got.config).toEqual(want.config);
            kinds[inc.lastKind ?? "full"]++;
          }
        },
      ),
      { seed: 20261203, numRuns: 150 },
    );
    // Both paths were taken, many times.
    expect(kinds.incremental).toBeGreaterThan(100);
    expect(kinds.full).toBeGreaterThan(100);
  }, 120_000);

  test("one Service added to 2,000: checked alone, the other lists are the same arrays", () => {
    const docs = [pool("lan", "10.0.0.0/16"), l2("lan")];
    for (let i = 0; i < 2000; i++) docs.push(service(`s${i}`, "x", null, null, null));
    const cache = new DocumentCache();
    const inc = new IncrementalBuild();
    const text = docs.map((d) => `---\n${d}`).join("");
    const first = inc.build(loadTextReusing(text, "f", cache).objects);
    expect(inc.lastKind).toBe("full");
    const more = `${text}---\n${service("new", "x", "lan", null, null)}`;
    const second = inc.build(loadTextReusing(more, "f", cache).objects);
    expect(inc.lastKind).toBe("incremental");
    expect(second.problems).toEqual([]);
    expect(second.config.services).toHaveLength(2001);
    expect(second.config.pools).toBe(first.config.pools);
    // A duplicate of an existing key: the whole build reports it.
    const dup = `${more}---\n${service("s7", "x", null, null, null)}`;
    const third = inc.build(loadTextReusing(dup, "f", cache).objects);
    expect(inc.lastKind).toBe("full");
    expect(third.problems.map((p) => p.message)).toEqual([expect.stringContaining('duplicate Service "s7"')]);
  });
});
