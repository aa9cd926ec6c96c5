/**
 * Layer-2 visibility and forced failover, without root:
 * - the HTTP routes (`GET /api/v1/l2/elections`, `POST /api/v1/l2/failover`) through
 *   `app.request()`: the gate (401/403/415/413/400), refusals passed through as JSON, the
 *   OpenAPI document;
 * - the Daemon behind them (src/appliance/daemon.ts) with real manifests in a temp directory and an
 *   in-memory membership: only the owner may decline, the decline moves the VIP in the plan, the
 *   ownership-change counter counts it, cancel brings it back.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import type { FailoverRequest } from "../../src/api/runtime.ts";
import { ErrorBody, FailoverResult, L2ElectionList } from "../../src/api/schemas.ts";
import { Daemon, type MembershipView } from "../../src/appliance/daemon.ts";
import type { Decline } from "../../src/cluster/heartbeat.ts";
import type { Config } from "../../src/config/index.ts";
import type { Driver } from "../../src/drivers/driver.ts";
import { EXCLUDE_LABEL, electionHash } from "../../src/plan/election.ts";
import { computePlan, type NodeInfo, type Plan } from "../../src/plan/plan.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const ADMIN = "admin-0123456789abcdef";
const READER = "read-0123456789abcdef";
const TOKENS = [
  { name: "ops", role: "admin" as const, hash: hashToken(ADMIN) },
  { name: "grafana", role: "read" as const, hash: hashToken(READER) },
];
const quiet = () => createLogger("api", { sink: () => {} });
const auth = (t: string) => ({ Authorization: `Bearer ${t}` });
const JSON_CT = { "Content-Type": "application/json" };

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A runtime with the two layer-2 methods, recording the failover requests it gets. */
class L2Runtime extends FakeRuntime {
  readonly requests: FailoverRequest[] = [];
  l2Elections() {
    return [
      {
        ip: "10.0.0.5",
        services: ["shop/web"],
        owner: "node-a",
        candidates: ["node-a", "node-b"],
        notOwner: [
          { node: "node-b", reason: "LowerInOrder" as const, message: "lower in the election order (#2)" },
        ],
      },
    ];
  }
  l2Failover(req: FailoverRequest) {
    this.requests.push(req);
    if (req.ip !== "10.0.0.5")
      return { ok: false as const, status: 404 as const, error: "UnknownVip" as const, message: "not a VIP" };
    return { ok: true as const, ip: req.ip, from: "node-a", to: "node-b", declined: [req.ip] };
  }
}

describe("the layer-2 routes", () => {
  const rt = new L2Runtime();
  const app = createApp(rt, { tokens: TOKENS, metricsOpen: false, log: quiet() });
  const post = (body: string, headers: Record<string, string> = { ...auth(ADMIN), ...JSON_CT }) =>
    app.request("/api/v1/l2/failover", { method: "POST", headers, body });

  test("GET /api/v1/l2/elections lists owner, candidates and reasons (read token)", async () => {
    const res = await app.request("/api/v1/l2/elections", { headers: auth(READER) });
    expect(res.status).toBe(200);
    const body = L2ElectionList.parse(await res.json());
    expect(body.items[0]?.owner).toBe("node-a");
    expect((await app.request("/api/v1/l2/elections")).status).toBe(401);
  });

  test("a runtime without elections lists none", async () => {
    const plain = createApp(new FakeRuntime(), { tokens: TOKENS, metricsOpen: false, log: quiet() });
    const res = await plain.request("/api/v1/l2/elections", { headers: auth(READER) });
    expect(await res.json()).toEqual({ items: [] });
    const f = await plain.request("/api/v1/l2/failover", {
      method: "POST",
      headers: { ...auth(ADMIN), ...JSON_CT },
      body: JSON.stringify({ ip: "10.0.0.5" }),
    });
    expect(f.status).toBe(409);
    expect(ErrorBody.parse(await f.json()).error).toBe("NoCluster");
  });

  test("POST /api/v1/l2/failover needs admin; refusals change nothing", async () => {
    const body = JSON.stringify({ ip: "10.0.0.5" });
    expect((await post(body, JSON_CT)).status).toBe(401);
    expect((await post(body, { ...auth(READER), ...JSON_CT })).status).toBe(403);
    expect((await post(body, { ...auth(ADMIN), "Content-Type": "application/yaml" })).status).toBe(415);
    expect((await post("{", undefined)).status).toBe(400);
    expect((await post(JSON.stringify({ ip: "10.0.0.5", extra: 1 }))).status).toBe(400);
    expect((await post(JSON.stringify({ node: "b" }))).status).toBe(400);
    expect(rt.requests).toEqual([]);
    const big = createApp(rt, { tokens: TOKENS, metricsOpen: false, log: quiet(), bodyLimit: 64 });
    const r413 = await big.request("/api/v1/l2/failover", {
      method: "POST",
      headers: { ...auth(ADMIN), ...JSON_CT },
      body: JSON.stringify({ ip: "10.0.0.5", node: "x".repeat(100) }),
    });
    expect(r413.status).toBe(413);
    expect(rt.requests).toEqual([]);
  });

  test("an accepted request reaches the runtime; its refusals come back as JSON errors", async () => {
    const ok = await post(JSON.stringify({ ip: "10.0.0.5", node: "node-b" }));
    expect(ok.status).toBe(200);
    expect(FailoverResult.parse(await ok.json())).toEqual({
      ip: "10.0.0.5",
      from: "node-a",
      to: "node-b",
      declined: ["10.0.0.5"],
    });
    expect(rt.requests.at(-1)).toEqual({ ip: "10.0.0.5", node: "node-b" });
    const nf = await post(JSON.stringify({ ip: "10.9.9.9" }));
    expect(nf.status).toBe(404);
    expect(ErrorBody.parse(await nf.json()).error).toBe("UnknownVip");
  });

  test("both routes are in the OpenAPI document, the failover body schema included", async () => {
    const doc = (await (await app.request("/openapi.json", { headers: auth(READER) })).json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown; security?: unknown }>>;
    };
    expect(doc.paths["/api/v1/l2/elections"]?.["get"]).toBeDefined();
    const f = doc.paths["/api/v1/l2/failover"]?.["post"];
    expect(JSON.stringify(f?.requestBody)).toContain("FailoverRequest");
    expect(f?.security).toEqual([{ bearerAuth: [] }]);
  });
});

// ---- the Daemon behind the routes ------------------------------------------------------------

/** A membership in memory: everyone alive and ready; declines as set. */
class FakeMembership implements MembershipView {
  private own: Decline[] = [];
  readonly sent: Decline[][] = [];
  constructor(
    private readonly self: string,
    private readonly names: string[],
    readonly peerDeclines = new Map<string, Decline[]>(),
  ) {}
  alive() {
    return this.names;
  }
  ready() {
    return true;
  }
  holdReason() {
    return "start" as const;
  }
  declines() {
    const m = new Map<string, readonly Decline[]>(this.peerDeclines);
    if (this.own.length > 0) m.set(this.self, this.own);
    return m;
  }
  setDeclines(d: readonly Decline[]) {
    this.own = [...d];
    this.sent.push(this.own);
  }
}

const VIP = "10.0.0.5";
const NODES = ["a", "b", "c"];
const ORDER = [...NODES].sort((x, y) => (electionHash(x, VIP) < electionHash(y, VIP) ? -1 : 1));
const [FIRST, SECOND, THIRD] = ORDER as [string, string, string];

async function daemonAs(self: string, membership?: FakeMembership) {
  const d = mkdtempSync(join(tmpdir(), `vipd-l2api-${process.pid}-`));
  dirs.push(d);
  writeFileSync(
    join(d, "vipd.yaml"),
    `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: ${self} }
spec:
  nodeName: ${self}
  members: [${NODES.map((n) => `{ name: ${n} }`).join(", ")}]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: ["${VIP}/32"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`,
  );
  const daemon = new Daemon({
    configPaths: [d],
    version: "test",
    log: createLogger("daemon", { sink: () => {} }),
  });
  const plans: Plan[] = [];
  const rec: Driver = {
    name: "rec",
    apply: async (p) => {
      plans.push(p);
    },
    health: () => ({ name: "rec", healthy: true }),
    close: async () => {},
  };
  daemon.addDriver(rec);
  if (membership) daemon.setMembership(membership);
  expect((await daemon.reload("start")).ok).toBe(true);
  return { daemon, plans };
}

const changes = (d: Daemon, change: string) =>
  d
    .metrics()
    .find((f) => f.name === "vipd_l2_ownership_changes_total")
    ?.samples.find((s) => s.labels?.["change"] === change)?.value;

describe("Daemon: forced failover", () => {
  test("without live membership there is nobody to fail over to", async () => {
    const { daemon } = await daemonAs(FIRST);
    expect(await daemon.l2Failover({ ip: VIP })).toMatchObject({
      ok: false,
      status: 409,
      error: "NoCluster",
    });
  });

  test("started with a cluster key, before live membership starts: no owner, itself not ready, the others not alive", async () => {
    const { daemon: starting } = await daemonAs(FIRST);
    starting.expectMembership();
    await starting.replan("test");
    const [e] = starting.l2Elections();
    expect(e?.owner).toBeUndefined();
    expect(e?.candidates).toEqual([]);
    expect(Object.fromEntries((e?.notOwner ?? []).map((x) => [x.node, x.reason]))).toEqual({
      [FIRST]: "NotReady",
      [SECOND]: "NotAlive",
      [THIRD]: "NotAlive",
    });
    // Membership starts: the live view replaces it.
    starting.setMembership(new FakeMembership(FIRST, NODES));
    await starting.replan("membership");
    expect(starting.l2Elections()[0]).toMatchObject({ owner: FIRST, candidates: ORDER });
  });

  test("only the owner may decline; unknown VIPs and ineligible targets are refused; nothing changes", async () => {
    const m = new FakeMembership(SECOND, NODES);
    const { daemon } = await daemonAs(SECOND, m);
    expect(daemon.l2Elections()[0]?.owner).toBe(FIRST);
    expect(await daemon.l2Failover({ ip: VIP })).toMatchObject({ ok: false, status: 409, error: "NotOwner" });
    expect(await daemon.l2Failover({ ip: "10.9.9.9" })).toMatchObject({ ok: false, status: 404 });
    expect(m.sent).toEqual([]);
    const owner = await daemonAs(FIRST, new FakeMembership(FIRST, NODES));
    expect(await owner.daemon.l2Failover({ ip: VIP, node: "nobody" })).toMatchObject({
      status: 422,
      error: "NotEligible",
    });
    expect(await owner.daemon.l2Failover({ ip: VIP, node: FIRST })).toMatchObject({ status: 422 });
  });

  test("the owner declines: its plan drops the VIP at once, the decline goes out, the counter counts it", async () => {
    const m = new FakeMembership(FIRST, NODES);
    const { daemon, plans } = await daemonAs(FIRST, m);
    expect(plans.at(-1)?.l2.map((e) => e.ip)).toEqual([VIP]);
    const r = await daemon.l2Failover({ ip: VIP, node: THIRD });
    expect(r).toEqual({ ok: true, ip: VIP, from: FIRST, to: THIRD, declined: [VIP] });
    expect(m.sent).toEqual([[{ ip: VIP, to: THIRD }]]);
    expect(plans.at(-1)?.l2).toEqual([]);
    expect(daemon.l2Elections()[0]?.notOwner.find((x) => x.node === FIRST)?.reason).toBe("Declined");
    expect(changes(daemon, "released")).toBe(1);

    // Withdrawn: the VIP comes back here.
    expect(await daemon.l2Failover({ ip: VIP, cancel: true })).toEqual({
      ok: true,
      ip: VIP,
      cancelled: true,
      declined: [],
    });
    expect(plans.at(-1)?.l2.map((e) => e.ip)).toEqual([VIP]);
    expect(changes(daemon, "acquired")).toBe(1);
    expect(await daemon.l2Failover({ ip: VIP, cancel: true })).toMatchObject({ cancelled: false });
  });

  test("the next candidate takes the VIP when it hears the owner's decline", async () => {
    const m = new FakeMembership(SECOND, NODES);
    const { daemon, plans } = await daemonAs(SECOND, m);
    expect(plans.at(-1)?.l2).toEqual([]);
    m.peerDeclines.set(FIRST, [{ ip: VIP }]);
    await daemon.replan(`member ${FIRST} declines`);
    expect(plans.at(-1)?.l2.map((e) => e.ip)).toEqual([VIP]);
    expect(changes(daemon, "acquired")).toBe(1);
  });
});

describe("the Kubernetes view feeds the election (computePlan as the k8s speaker calls it)", () => {
  test("node labels, NetworkUnavailable and local endpoints from the cluster replace NodeSettings members", async () => {
    const { daemon } = await daemonAs(SECOND);
    // Appliance view: the natural owner is FIRST.
    expect(daemon.l2Elections()[0]?.owner).toBe(FIRST);
    const config = daemon.currentConfig as Config;
    const assignments = [{ key: "shop/web", pool: "lan", ips: [VIP] }];
    // The speaker's call (src/k8s/speaker.ts): every Node as known, the Ready ones as members.
    const view = (nodes: NodeInfo[], networkUnavailable?: Set<string>) => {
      const self = nodes.find((n) => n.name === SECOND) ?? { name: SECOND, labels: {} };
      return computePlan(config, assignments, self, nodes, { known: nodes, networkUnavailable });
    };
    const labelled = (n: string): Record<string, string> => (n === FIRST ? { [EXCLUDE_LABEL]: "" } : {});
    let plan = view(NODES.map((n) => ({ name: n, labels: labelled(n) })));
    expect(plan.elections?.[0]?.owner).toBe(SECOND);
    expect(plan.elections?.[0]?.notOwner.find((x) => x.node === FIRST)?.reason).toBe("ExcludedByLabel");
    expect(plan.l2.map((e) => e.ip)).toEqual([VIP]);
    plan = view(
      NODES.map((n) => ({ name: n, labels: labelled(n) })),
      new Set([SECOND]),
    );
    expect(plan.elections?.[0]?.owner).toBe(THIRD);
    expect(plan.l2).toEqual([]);
    // A node the cluster does not list is not a member any more.
    plan = view([{ name: SECOND, labels: {} }]);
    expect(plan.elections?.[0]?.candidates).toEqual([SECOND]);
  });
});

describe("Daemon: a driver that failed gets the plan again", () => {
  test("after a failed apply the plan is retried (0.5 s backoff) until the driver takes it", async () => {
    const { daemon } = await daemonAs(FIRST);
    let fails = 1;
    const got: Plan[] = [];
    daemon.addDriver({
      name: "flaky",
      apply: async (p) => {
        if (fails-- > 0) throw new Error("link is down");
        got.push(p);
      },
      health: () => ({ name: "flaky", healthy: true }),
      close: async () => {},
    });
    await daemon.replan("driver added");
    expect(got).toEqual([]);
    const end = Date.now() + 5000;
    while (got.length === 0 && Date.now() < end) await Bun.sleep(50);
    expect(got.at(-1)?.l2.map((e) => e.ip)).toEqual([VIP]);
    await daemon.close();
  });
});
