/**
 * The site inside `vipd run` (src/site/runtime.ts, src/site/allocate.ts, src/site/routes.ts):
 * the site objects of a manifest text (NodeSettings stay per node); the allocation is a function
 * of (configuration, previous table) alone, and adopting a table reproduces it row for row; a
 * PUT that carries NodeSettings is refused; `GET /api/v1/site` answers the view (read token) or
 * 404 on a node without a site.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { createApp } from "../../src/api/app.ts";
import { AuditLog } from "../../src/api/audit.ts";
import { hashToken } from "../../src/api/auth.ts";
import { configFromText } from "../../src/config/index.ts";
import { emptyAllocation } from "../../src/plan/allocate.ts";
import { allocateTable } from "../../src/site/allocate.ts";
import { siteRoutes } from "../../src/site/routes.ts";
import { adoptTable, siteEtag, siteText } from "../../src/site/runtime.ts";
import { createSite, type SiteOptions } from "../../src/site/state.ts";
import { nextSnapshot, type SiteAssignment, tableDigest } from "../../src/site/table.ts";
import { siteView } from "../../src/site/view.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const NODE = `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: n1 }
spec: { nodeName: n1 }
`;
const POOL = `# the site's pool
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: [198.51.100.10-198.51.100.20, "fd00::10-fd00::20"] }
`;
function svc(name: string, dual = false): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { type: LoadBalancer, ${dual ? "ipFamilyPolicy: RequireDualStack, " : ""}ports: [{ port: 80 }] }
`;
}

function config(text: string) {
  const r = configFromText(text);
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join("; "));
  return r.config;
}

describe("site text", () => {
  test("NodeSettings are left out, everything else kept in order with its comments; idempotent", () => {
    const text = [NODE, POOL, svc("a")].join("---\n");
    const s = siteText(text);
    expect(s).not.toContain("NodeSettings");
    expect(s).toContain("# the site's pool");
    expect(s.indexOf("IPAddressPool")).toBeLessThan(s.indexOf("kind: Service"));
    expect(siteText(s)).toBe(s);
    const c = config(s);
    expect(c.nodeSettings).toBeUndefined();
    expect(c.services.map((x) => x.metadata.name)).toEqual(["a"]);
    expect(c.pools.map((p) => p.metadata.name)).toEqual(["lan"]);
  });

  test("the ETag names the generation", () => {
    const snap = nextSnapshot(undefined, "n1", POOL, []);
    expect(siteEtag(snap)).toMatch(/^site-1-[0-9a-f]{16}$/);
    expect(siteEtag(nextSnapshot(snap, "n1", POOL, []))).toMatch(/^site-2-/);
    expect(siteEtag(undefined)).toBe("site-none");
  });
});

describe("the site allocation is a function of (configuration, previous table)", () => {
  const names = "abcdefgh".split("");
  const arbSet = fc.subarray(names, { minLength: 0 }).map((xs) => xs.map((n) => ({ n, dual: n === "c" })));

  const parsed = new Map<string, ReturnType<typeof config>>();
  const memo = (set: { n: string; dual: boolean }[]) => {
    const key = set.map((s) => s.n).join("");
    let c = parsed.get(key);
    if (c === undefined) {
      c = config([POOL, ...set.map((s) => svc(s.n, s.dual))].join("---\n"));
      parsed.set(key, c);
    }
    return c;
  };

  test("adopting the table the allocator made reproduces it exactly, and allocating again changes nothing", () => {
    fc.assert(
      fc.property(arbSet, arbSet, (before, after) => {
        const c1 = memo(before);
        const c2 = memo(after);
        const t1 = allocateTable(c1, undefined);
        const t2 = allocateTable(c2, t1);
        // A follower adopting t2 for c2 holds exactly t2.
        const adopted = adoptTable(c2, emptyAllocation(), t2).assignments as SiteAssignment[];
        expect(tableDigest(adopted)).toBe(tableDigest(t2));
        // Idempotent: allocating c2 from t2 gives t2 (a new allocator continues, re-addressing nothing).
        expect(tableDigest(allocateTable(c2, t2))).toBe(tableDigest(t2));
        // Continuation: a Service in both keeps its addresses.
        for (const r of t1) {
          const next = t2.find((x) => x.key === r.key);
          if (next) expect(next.ips).toEqual(r.ips);
        }
      }),
      { numRuns: 100 },
    );
  }, 60_000);

  test("the history scenario: from the same table two members get the same answer", () => {
    const ab = config([POOL, svc("a"), svc("b")].join("---\n"));
    const bc = config([POOL, svc("b"), svc("c")].join("---\n"));
    const withHistory = allocateTable(bc, allocateTable(ab, undefined));
    const fresh = allocateTable(bc, undefined);
    // Alone they disagree (the story) ...
    expect(tableDigest(withHistory)).not.toBe(tableDigest(fresh));
    // ... adopting the allocator's table they cannot.
    expect(tableDigest(adoptTable(bc, emptyAllocation(), withHistory).assignments)).toBe(
      tableDigest(withHistory),
    );
  });
});

describe("GET /api/v1/site", () => {
  const READER = "site-read-token";
  const tokens = [{ name: "dash", role: "read" as const, hash: hashToken(READER) }];
  const o: SiteOptions = {
    self: "n1",
    members: ["n1", "n2"],
    statusMs: 100,
    deadMs: 400,
    startupMs: 1000,
    requestMs: 200,
    proposeTimeoutMs: 1000,
    allocate: () => ({ ok: true, table: [] }),
  };
  const app = (site: boolean) => {
    const rt = Object.assign(new FakeRuntime(), {
      site: site
        ? () => siteView(createSite(0, nextSnapshot(undefined, "n1", POOL, []), POOL), o)
        : undefined,
    });
    return createApp(rt, {
      tokens,
      metricsOpen: false,
      modules: [siteRoutes],
      audit: new AuditLog(),
      log: createLogger("api", { level: "error", sink: () => {} }),
    });
  };

  test("a read token sees the site; without a token 401", async () => {
    const res = await app(true).request("/api/v1/site", { headers: { Authorization: `Bearer ${READER}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { generation: number; members: { name: string }[]; phase: string };
    expect(body.generation).toBe(1);
    expect(body.phase).toBe("starting");
    expect(body.members.map((m) => m.name)).toEqual(["n1", "n2"]);
    expect((await app(true).request("/api/v1/site")).status).toBe(401);
  });

  test("a node without a site: 404 with a JSON error saying why", async () => {
    const res = await app(false).request("/api/v1/site", { headers: { Authorization: `Bearer ${READER}` } });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({
      error: "NotFound",
      message: expect.stringContaining("not part of a site"),
    });
  });
});
