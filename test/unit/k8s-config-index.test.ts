/**
 * The incremental configuration of Kubernetes mode (src/k8s/config-index.ts) against the full
 * rebuild it replaces (`fullConfigView`): after any sequence of add / update / delete events of
 * Services, Namespaces, pools, advertisements and Secrets — views taken at any points in between —
 * both give the same Config, problems and left-out objects, element for element and in the same
 * order. And the work a view does is proportional to what changed.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { KubeObject } from "../../src/k8s/client.ts";
import { ConfigIndex, fullConfigView } from "../../src/k8s/config-index.ts";
import type { CrObject } from "../../src/k8s/configset.ts";

const NS = "vipd-system";

/** The collections as an informer holds them: a Map keeps a key's place when it is replaced. */
class Model {
  services = new Map<string, KubeObject>();
  namespaces = new Map<string, KubeObject>();
  crs = new Map<string, CrObject>();
  secrets = new Map<string, KubeObject>();
  rv = 0;
  next(): string {
    return String(++this.rv);
  }
  crList(): CrObject[] {
    return [...this.crs.values()];
  }
}

const SERVICE_NAMES = ["a", "b", "c", "d", "e", "f"];
const SERVICE_NS = ["default", "team"];
const POOLS = ["p0", "p1", "p2"];
const POOL_ADDRESSES = [
  ["192.0.2.0/28"],
  ["192.0.2.8/29"],
  ["198.51.100.0/24"],
  ["2001:db8::/120"],
  ["nope"],
];

const serviceArb = fc.record({
  name: fc.constantFrom(...SERVICE_NAMES),
  ns: fc.constantFrom(...SERVICE_NS),
  lb: fc.boolean(),
  pool: fc.option(fc.constantFrom(...POOLS, "missing"), { nil: undefined }),
  ips: fc.option(fc.constantFrom("192.0.2.5", "192.0.2.5,192.0.2.6", "not-an-ip", "2001:db8::5"), {
    nil: undefined,
  }),
  lbIp: fc.option(fc.constantFrom("192.0.2.7", "bad-ip"), { nil: undefined }),
  ingress: fc.option(fc.constantFrom("192.0.2.1", "198.51.100.9"), { nil: undefined }),
  // vipd's own annotation: a change of it alone keeps the earlier validation (src/k8s/config-index.ts).
  own: fc.option(fc.constantFrom("p0", "p1"), { nil: undefined }),
  ports: fc.boolean(),
});

type ServiceShape = typeof serviceArb extends fc.Arbitrary<infer T> ? T : never;

type Ev =
  | { t: "svc"; s: ServiceShape }
  | { t: "svc-del"; name: string; ns: string }
  | { t: "pool"; name: string; addresses: string[]; label: boolean }
  | { t: "pool-del"; name: string }
  | { t: "adv"; name: string; pools: string[] }
  | { t: "adv-del"; name: string }
  | { t: "peer"; secret: boolean }
  | { t: "secret"; present: boolean }
  | { t: "ns"; name: string; label: string }
  | { t: "ns-del"; name: string }
  | { t: "view" };

const evArb: fc.Arbitrary<Ev> = fc.oneof(
  { weight: 6, arbitrary: serviceArb.map((s) => ({ t: "svc" as const, s })) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("svc-del" as const),
      name: fc.constantFrom(...SERVICE_NAMES),
      ns: fc.constantFrom(...SERVICE_NS),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("pool" as const),
      name: fc.constantFrom(...POOLS),
      addresses: fc.constantFrom(...POOL_ADDRESSES),
      label: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("pool-del" as const), name: fc.constantFrom(...POOLS) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("adv" as const),
      name: fc.constantFrom("l2a", "l2b"),
      pools: fc.subarray([...POOLS, "missing"]),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("adv-del" as const), name: fc.constantFrom("l2a", "l2b") }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("peer" as const), secret: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("secret" as const), present: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("ns" as const),
      name: fc.constantFrom(...SERVICE_NS),
      label: fc.constantFrom("x", "y"),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant("ns-del" as const), name: fc.constantFrom(...SERVICE_NS) }),
  },
  { weight: 3, arbitrary: fc.constant({ t: "view" as const }) },
);

function serviceObject(m: Model, s: ServiceShape): KubeObject {
  const annotations: Record<string, string> = {};
  if (s.pool !== undefined) annotations["metallb.io/address-pool"] = s.pool;
  if (s.ips !== undefined) annotations["metallb.io/loadBalancerIPs"] = s.ips;
  if (s.own !== undefined) annotations["metallb.io/ip-allocated-from-pool"] = s.own;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: s.name,
      namespace: s.ns,
      uid: `uid-${s.ns}-${s.name}`,
      resourceVersion: m.next(),
      annotations,
      managedFields: [{ manager: "kubectl" }],
    },
    spec: {
      type: s.lb ? "LoadBalancer" : "ClusterIP",
      ports: s.ports ? [{ port: 80, protocol: "TCP" }] : [{ port: 443, protocol: "TCP", name: "https" }],
      selector: { app: s.name },
      ...(s.lbIp !== undefined ? { loadBalancerIP: s.lbIp } : {}),
      clusterIP: "10.96.0.10",
    },
    status: { loadBalancer: s.ingress !== undefined ? { ingress: [{ ip: s.ingress }] } : {} },
  };
}

const cr = (m: Model, kind: CrObject["kind"], name: string, spec: Record<string, unknown>, labels = {}) => ({
  kind,
  obj: {
    apiVersion: kind === "BGPPeer" ? "metallb.io/v1beta2" : "metallb.io/v1beta1",
    kind,
    metadata: {
      name,
      namespace: NS,
      labels,
      resourceVersion: m.next(),
      creationTimestamp: `2026-01-01T00:00:${String(m.rv % 60).padStart(2, "0")}Z`,
    },
    spec,
  } as KubeObject,
});

/** Applies an event to the model and tells the index, as ClusterState's informer callbacks do. */
function apply(m: Model, index: ConfigIndex, e: Ev): void {
  switch (e.t) {
    case "svc": {
      const o = serviceObject(m, e.s);
      const key = `${e.s.ns}/${e.s.name}`;
      m.services.set(key, o);
      index.service(key, o);
      break;
    }
    case "svc-del": {
      const key = `${e.ns}/${e.name}`;
      if (m.services.delete(key)) index.service(key, undefined);
      break;
    }
    case "pool":
      m.crs.set(
        `pool/${e.name}`,
        cr(m, "IPAddressPool", e.name, { addresses: e.addresses }, e.label ? { tier: "gold" } : {}),
      );
      break;
    case "pool-del":
      m.crs.delete(`pool/${e.name}`);
      break;
    case "adv":
      m.crs.set(`adv/${e.name}`, cr(m, "L2Advertisement", e.name, { ipAddressPools: e.pools }));
      break;
    case "adv-del":
      m.crs.delete(`adv/${e.name}`);
      break;
    case "peer":
      m.crs.set(
        "peer/tor",
        cr(m, "BGPPeer", "tor", {
          myASN: 64500,
          peerASN: 64501,
          peerAddress: "192.0.2.254",
          ...(e.secret ? { passwordSecret: { name: "tor-pw", namespace: NS } } : {}),
        }),
      );
      break;
    case "secret":
      if (e.present)
        m.secrets.set("tor-pw", {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "tor-pw", namespace: NS, resourceVersion: m.next() },
          data: { password: Buffer.from(`pw${m.rv}`).toString("base64") },
        });
      else m.secrets.delete("tor-pw");
      break;
    case "ns": {
      const o: KubeObject = {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: e.name, resourceVersion: m.next(), labels: { team: e.label } },
      };
      m.namespaces.set(e.name, o);
      index.namespaceChanged(e.name, o);
      break;
    }
    case "ns-del":
      if (m.namespaces.delete(e.name)) index.namespaceChanged(e.name, undefined);
      break;
    case "view":
      break;
  }
}

describe("ConfigIndex", () => {
  test("equals the full rebuild after any sequence of changes (views at any points)", () => {
    fc.assert(
      fc.property(fc.array(evArb, { maxLength: 60 }), (events) => {
        const m = new Model();
        const index = new ConfigIndex(NS);
        const oracle = { inForce: new Set<string>() as ReadonlySet<string> };
        const compare = () => {
          const got = index.view(m.crList(), m.secrets);
          const want = fullConfigView(
            {
              crs: m.crList(),
              secrets: m.secrets,
              namespaces: [...m.namespaces.values()],
              services: [...m.services.values()],
            },
            NS,
            oracle,
          );
          expect(got).toEqual(want);
          // What the controller reads per Service agrees with the lists.
          for (const s of want.config?.services ?? [])
            expect(index.valid(`${s.metadata.namespace}/${s.metadata.name}`)).toEqual(s);
          const bad = new Set(want.problems.filter((p) => p.kind === "Service").map((p) => p.file));
          for (const key of m.services.keys()) expect(index.invalid(key)).toBe(bad.has(`Service/${key}`));
        };
        for (const e of events) {
          apply(m, index, e);
          if (e.t === "view") compare();
        }
        compare();
      }),
      { numRuns: 300 },
    );
  });

  test("a feed names every Service changed since it was emptied", () => {
    const m = new Model();
    const index = new ConfigIndex(NS);
    const feed = index.feed();
    const s = { name: "a", ns: "default", lb: true, ports: true } as const;
    apply(m, index, {
      t: "svc",
      s: { ...s, pool: undefined, ips: undefined, lbIp: undefined, ingress: undefined, own: undefined },
    });
    index.view(m.crList(), m.secrets);
    expect([...feed]).toEqual(["default/a"]);
    feed.clear();
    index.view(m.crList(), m.secrets);
    expect([...feed]).toEqual([]);
    apply(m, index, { t: "svc-del", name: "a", ns: "default" });
    index.view(m.crList(), m.secrets);
    expect([...feed]).toEqual(["default/a"]);
  });

  test("a view validates only the Services changed since the last one", () => {
    const m = new Model();
    const index = new ConfigIndex(NS);
    apply(m, index, { t: "pool", name: "p0", addresses: ["192.0.2.0/24"], label: false });
    const base = {
      pool: undefined,
      ips: undefined,
      lbIp: undefined,
      ingress: undefined,
      own: undefined,
      ports: true,
    };
    for (let i = 0; i < 1000; i++)
      apply(m, index, { t: "svc", s: { ...base, name: `s${i}`, ns: "default", lb: true } as never });
    const first = index.view(m.crList(), m.secrets);
    expect(first.config?.services.length).toBe(1000);
    expect(index.stats.validated).toBe(1000);
    apply(m, index, {
      t: "svc",
      s: { ...base, name: "s7", ns: "default", lb: true, ingress: "192.0.2.1" } as never,
    });
    const gen7 = index.generation("default/s7");
    const second = index.view(m.crList(), m.secrets);
    expect(index.stats.validated).toBe(1001);
    // Only the status changed (what vipd writes): not checked again, the same generation.
    expect(index.stats.checked).toBe(1000);
    expect(index.generation("default/s7")).toBe(gen7);
    expect(second.config?.services[7]?.status?.loadBalancer?.ingress?.[0]?.ip).toBe("192.0.2.1");
    // Nothing changed: nothing validated, the same lists.
    const third = index.view(m.crList(), m.secrets);
    expect(index.stats.validated).toBe(1001);
    expect(third.config?.services).toBe(second.config?.services);
    // A real change (the pool it asks for) goes through the schema and the checks again.
    apply(m, index, {
      t: "svc",
      s: { ...base, name: "s7", ns: "default", lb: true, ingress: "192.0.2.1", pool: "p0" } as never,
    });
    const fourth = index.view(m.crList(), m.secrets);
    expect(index.stats.checked).toBe(1001);
    expect(index.generation("default/s7")).not.toBe(gen7);
    expect(fourth.config?.services[7]?.metadata.annotations?.["metallb.io/address-pool"]).toBe("p0");
  });
});
