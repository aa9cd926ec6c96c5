/**
 * Property: any schema-valid configuration survives a YAML round trip. fast-check generates whole,
 * consistent sites (pools that do not overlap, advertisements and peers that name existing pools,
 * peers and BFD profiles, aliases that are defined, no list naming a thing twice, one LOCAL_PREF
 * for all advertisements as MetalLB requires), every kind vipd reads, with awkward label and
 * annotation values; each object is written with YAML.stringify, the documents are read back with
 * configFromText, and the result must equal the generated objects with MetalLB's defaults applied
 * (and v1beta1 BGPPeers converted to v1beta2).
 */
import { expect, test } from "bun:test";
import fc from "fast-check";
import YAML from "yaml";
import type { z } from "zod";
import { configFromText, formatProblem } from "../../src/config/index.ts";
import { type Kind, SCHEMAS } from "../../src/config/schemas.ts";
import { requirementKey, selectorKey } from "../../src/config/selector.ts";

type Obj = { apiVersion: string; kind: Kind; metadata: Record<string, unknown>; spec?: unknown };

// ---- building blocks

const dnsName = fc.stringMatching(/^[a-z]([a-z0-9-]{0,8}[a-z0-9])?$/);
const names = (min: number, max: number) => fc.uniqueArray(dnsName, { minLength: min, maxLength: max });
/** Label values a YAML writer must quote to keep them strings. */
const trickyValue = fc.constantFrom(
  "yes",
  "no",
  "true",
  "null",
  "~",
  "1",
  "0x1F",
  "1e3",
  "",
  "a: b",
  "#x",
  "- x",
  "*x",
  "&y",
  "v1.2",
);
/** Selector values may be any string (MetalLB's CRDs do not restrict them)... */
const labelMap = fc.dictionary(
  fc.constantFrom("app", "tier", "zone", "kubernetes.io/os", "metallb-role"),
  trickyValue,
  { maxKeys: 3 },
);
/** ...but the labels of an object follow the API server's rules, so only the valid tricky ones. */
const metaLabels = fc.dictionary(
  fc.constantFrom("app", "tier", "example.com/zone", "kubernetes.io/os"),
  fc.constantFrom("yes", "no", "on", "off", "true", "null", "1", "007", "0x1F", "1e3", "", "v1.2", "gold_2"),
  { maxKeys: 3 },
);
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const requirement = fc.oneof(
  fc.record({
    key: fc.constantFrom("app", "tier", "zone"),
    operator: fc.constantFrom("In", "NotIn"),
    values: fc.uniqueArray(trickyValue, { minLength: 1, maxLength: 2 }),
  }),
  fc.record({ key: fc.constantFrom("app", "tier"), operator: fc.constantFrom("Exists", "DoesNotExist") }),
);
// MetalLB refuses a selector, match expression or value listed twice ("duplicate definition").
const selector = fc.record(
  {
    matchLabels: labelMap,
    matchExpressions: fc.uniqueArray(requirement, { maxLength: 2, selector: requirementKey }),
  },
  { requiredKeys: [] },
);
const selectors = fc.uniqueArray(selector, { maxLength: 2, selector: selectorKey });
const byte = fc.integer({ min: 0, max: 255 });
const hex = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
const subset = (xs: string[]) => fc.subarray(xs);

/** Drops keys whose value is undefined (YAML.stringify would drop them too; zod keeps them absent). */
function clean<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
const meta = (name: string, extra: Record<string, unknown> = {}) => clean({ name, ...extra });

// ---- pools: pool i lives in 10.i.0.0/16 and fd00:i::/32, one distinct subnet per entry

function poolAddresses(i: number) {
  const v4 = (x: number) =>
    fc.oneof(
      fc.integer({ min: 24, max: 32 }).map((len) => `10.${i}.${x}.0/${len}`),
      fc.tuple(byte, byte).map(([a, b]) => `10.${i}.${x}.${Math.min(a, b)}-10.${i}.${x}.${Math.max(a, b)}`),
      byte.map((a) => `10.${i}.${x}.${a}`),
    );
  const v6 = (x: number) =>
    fc.oneof(
      fc.integer({ min: 48, max: 128 }).map((len) => `fd00:${i}:${x.toString(16)}::/${len}`),
      fc.tuple(hex, hex).map(([a, b]) => {
        const [lo, hi] = Number.parseInt(a, 16) <= Number.parseInt(b, 16) ? [a, b] : [b, a];
        return `fd00:${i}:${x.toString(16)}::${lo}-fd00:${i}:${x.toString(16)}::${hi}`;
      }),
      hex.map((a) => `fd00:${i}:${x.toString(16)}::${a}`),
    );
  return fc
    .uniqueArray(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 })
    .chain((subnets) => fc.tuple(...subnets.map((x) => fc.oneof(v4(x), v6(x)))));
}

const pool = (name: string, i: number): fc.Arbitrary<Obj> =>
  fc
    .record({
      addresses: poolAddresses(i),
      autoAssign: optional(fc.boolean()),
      avoidBuggyIPs: optional(fc.boolean()),
      serviceAllocation: optional(
        fc.record(
          {
            priority: fc.integer({ min: -100, max: 100 }),
            namespaces: names(0, 2),
            namespaceSelectors: selectors,
            serviceSelectors: selectors,
          },
          { requiredKeys: [] },
        ),
      ),
      labels: optional(metaLabels),
    })
    .map(({ labels, ...spec }) => ({
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: meta(name, { namespace: "metallb-system", labels }),
      spec: clean(spec),
    }));

// ---- the rest, given the names they may refer to

const bfdProfile = (name: string): fc.Arbitrary<Obj> =>
  fc
    .record(
      {
        receiveInterval: fc.integer({ min: 10, max: 60000 }),
        transmitInterval: fc.integer({ min: 10, max: 60000 }),
        detectMultiplier: fc.integer({ min: 2, max: 255 }),
        echoInterval: fc.integer({ min: 10, max: 60000 }),
        // vipd refuses echo mode (and MetalLB refuses it with IPv6 pools); see config-validate.test.ts.
        echoMode: fc.constant(false),
        passiveMode: fc.boolean(),
        minimumTtl: fc.integer({ min: 1, max: 254 }),
      },
      { requiredKeys: [] },
    )
    .map((spec) => ({ apiVersion: "metallb.io/v1beta1", kind: "BFDProfile", metadata: meta(name), spec }));

const HOLD = ["0s", "3s", "90s", "1m30s", "4m"] as const;
const KEEPALIVE: Record<(typeof HOLD)[number], string[]> = {
  "0s": ["0s"],
  "3s": ["1s", "3s"],
  "90s": ["30s", "1m", "90s"],
  "1m30s": ["30s", "500ms"],
  "4m": ["1m20s", "4m"],
};

const peer = (name: string, profiles: string[]): fc.Arbitrary<Obj> =>
  fc
    .record({
      v1beta1: fc.boolean(),
      myASN: fc.integer({ min: 1, max: 4294967295 }),
      asn: fc.oneof(
        fc.integer({ min: 1, max: 4294967295 }).map((peerASN) => ({ peerASN })),
        fc.constantFrom("internal", "external").map((dynamicASN) => ({ dynamicASN })),
      ),
      where: fc.oneof(
        fc.tuple(byte, fc.boolean(), byte).map(([a, withSource, b]) => ({
          peerAddress: `192.168.${a}.1`,
          sourceAddress: withSource ? `192.168.${b}.2` : undefined,
        })),
        hex.map((a) => ({ peerAddress: `fd00:ffff::${a}` })),
        fc.constantFrom("eth1", "bond0.100", "enp3s0f1").map((iface) => ({ interface: iface })),
      ),
      peerPort: optional(fc.integer({ min: 1, max: 16384 })),
      hold: optional(fc.constantFrom(...HOLD)),
      keepalivePick: fc.nat(),
      connectTime: optional(fc.constantFrom("5s", "1m", "1h30m")),
      routerID: optional(fc.tuple(byte, byte).map(([a, b]) => `10.${a}.${b}.1`)),
      nodeSelectors: optional(selectors),
      secret: fc.oneof(
        fc.constant({}),
        fc.string({ maxLength: 80 }).map((password) => ({ password })),
        dnsName.map((n) => ({ passwordSecret: { name: n, namespace: "metallb-system" } })),
      ),
      bfdProfile: profiles.length > 0 ? optional(fc.constantFrom(...profiles)) : fc.constant(undefined),
      enableGracefulRestart: optional(fc.boolean()),
      multiHop: fc.boolean(),
      // A named VRF is refused (no VRF devices in the kernel); "" is the default VRF.
      vrf: optional(fc.constant("")),
      disableMP: optional(fc.boolean()),
      dualStackAddressFamily: optional(fc.boolean()),
    })
    .map(({ v1beta1, asn, where, hold, keepalivePick, secret, multiHop, ...rest }) => {
      const ebgp = "dynamicASN" in asn ? asn.dynamicASN === "external" : asn.peerASN !== rest.myASN;
      const keeps = hold === undefined ? [] : KEEPALIVE[hold];
      return {
        apiVersion: v1beta1 ? "metallb.io/v1beta1" : "metallb.io/v1beta2",
        kind: "BGPPeer",
        metadata: meta(name),
        spec: clean({
          ...rest,
          ...asn,
          ...where,
          ...secret,
          holdTime: hold,
          keepaliveTime: keeps.length > 0 ? keeps[keepalivePick % keeps.length] : undefined,
          ebgpMultiHop: ebgp ? multiHop : undefined,
        }),
      };
    });

const community = (aliases: string[]): fc.Arbitrary<Obj> =>
  fc
    .tuple(
      ...aliases.map((n) =>
        fc.oneof(
          fc.tuple(fc.nat(65535), fc.nat(65535)).map(([a, b]) => ({ name: n, value: `${a}:${b}` })),
          fc
            .tuple(fc.nat(), fc.nat(), fc.nat())
            .map(([a, b, c]) => ({ name: n, value: `large:${a}:${b}:${c}` })),
        ),
      ),
    )
    .map((communities) => ({
      apiVersion: "metallb.io/v1beta1",
      kind: "Community",
      metadata: meta("site-communities"),
      spec: { communities },
    }));

const l2Advertisement = (name: string, pools: string[]): fc.Arbitrary<Obj> =>
  fc
    .record(
      {
        ipAddressPools: subset(pools),
        ipAddressPoolSelectors: selectors,
        nodeSelectors: selectors,
        interfaces: fc.uniqueArray(fc.constantFrom("eth0", "eth1", "bond0", "vlan.100"), { maxLength: 2 }),
        serviceSelectors: selectors,
        preferredNodeSelectors: fc.array(
          fc.record({ weight: fc.integer({ min: 1, max: 100 }), preference: selector }),
          {
            maxLength: 2,
          },
        ),
      },
      { requiredKeys: [] },
    )
    .map((spec) => ({
      apiVersion: "metallb.io/v1beta1",
      kind: "L2Advertisement",
      metadata: meta(name),
      spec,
    }));

const bgpAdvertisement = (
  name: string,
  pools: string[],
  peers: string[],
  aliases: string[],
  localPref: number | undefined,
): fc.Arbitrary<Obj> =>
  fc
    .record(
      {
        // 32 and 128 cover any pool; shorter lengths are the cross-check tests' business.
        aggregationLength: fc.constant(32),
        aggregationLengthV6: fc.constant(128),
        // Different LOCAL_PREFs for one pool, peer and node are refused (MetalLB's rule).
        localPref: fc.constant(localPref),
        communities: fc.uniqueArray(
          fc.oneof(
            fc.tuple(fc.nat(65535), fc.nat(65535)).map(([a, b]) => `${a}:${b}`),
            fc.tuple(fc.nat(), fc.nat(), fc.nat()).map(([a, b, c]) => `large:${a}:${b}:${c}`),
            ...(aliases.length > 0 ? [fc.constantFrom(...aliases)] : []),
          ),
          { maxLength: 3 },
        ),
        ipAddressPools: subset(pools),
        ipAddressPoolSelectors: selectors,
        nodeSelectors: selectors,
        peers: subset(peers),
        serviceSelectors: selectors,
      },
      { requiredKeys: [] },
    )
    .map((spec) => ({
      apiVersion: "metallb.io/v1beta1",
      kind: "BGPAdvertisement",
      metadata: meta(name),
      spec,
    }));

const service = (name: string, pools: string[]): fc.Arbitrary<Obj> =>
  fc
    .record({
      namespace: optional(fc.constantFrom("default", "shop", "kube-system")),
      ip: optional(fc.tuple(byte, byte).map(([a, b]) => `10.200.${a}.${b}`)),
      alsoSpec: fc.boolean(),
      legacyPrefix: fc.boolean(),
      pool: pools.length > 0 ? optional(fc.constantFrom(...pools)) : fc.constant(undefined),
      sharing: optional(fc.string({ maxLength: 12 })),
      note: optional(fc.string({ maxLength: 20 })),
      type: optional(fc.constantFrom("LoadBalancer", "ClusterIP", "NodePort")),
      externalTrafficPolicy: optional(fc.constantFrom("Cluster", "Local")),
      ports: optional(
        fc.array(
          fc.record(
            {
              name: dnsName,
              port: fc.integer({ min: 1, max: 65535 }),
              protocol: fc.constantFrom("TCP", "UDP", "SCTP"),
              targetPort: fc.oneof(fc.integer({ min: 1, max: 65535 }), dnsName),
            },
            { requiredKeys: ["port"] },
          ),
          { maxLength: 3 },
        ),
      ),
      selector: optional(labelMap),
    })
    .map(({ namespace, ip, alsoSpec, legacyPrefix, pool, sharing, note, ...spec }) => {
      const prefix = legacyPrefix ? "metallb.universe.tf/" : "metallb.io/";
      const annotations = clean({
        [`${prefix}loadBalancerIPs`]: ip,
        [`${prefix}address-pool`]: pool,
        [`${prefix}allow-shared-ip`]: sharing,
        "example.com/note": note,
      });
      return {
        apiVersion: "v1",
        kind: "Service",
        metadata: meta(name, {
          namespace,
          annotations: Object.keys(annotations).length > 0 ? annotations : undefined,
        }),
        spec: clean({ ...spec, loadBalancerIP: alsoSpec ? ip : undefined }),
      };
    });

const nodeSettings: fc.Arbitrary<Obj> = fc
  .record(
    {
      nodeName: dnsName,
      labels: labelMap,
      interfaces: fc.uniqueArray(fc.constantFrom("eth0", "eth1", "wlan0"), { maxLength: 2 }),
      localDelivery: fc.boolean(),
      loadBalancerClass: fc.constantFrom("vipd.io/lb", "example.com/edge"),
      api: fc.record(
        {
          listen: fc.constantFrom("127.0.0.1:7473", "[::]:8443", "0.0.0.0:80"),
          metricsOpen: fc.boolean(),
          tokens: fc.array(
            fc.record({
              name: dnsName,
              role: fc.constantFrom("admin", "read"),
              hash: fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`),
            }),
            { maxLength: 2 },
          ),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: [] },
  )
  .map((spec) => ({
    apiVersion: "vipd.io/v1alpha1",
    kind: "NodeSettings",
    metadata: meta("this-node"),
    spec,
  }));

// ---- a whole site

const site: fc.Arbitrary<Obj[]> = fc
  .record({
    pools: names(0, 4),
    l2: names(0, 2),
    bgp: names(0, 2),
    peers: names(0, 3),
    profiles: names(0, 2),
    aliases: names(0, 3),
    services: names(0, 3),
    withNode: fc.boolean(),
    localPref: optional(fc.nat()),
  })
  .chain((n) =>
    fc.tuple(...n.pools.map((p, i) => pool(p, i + 1))).chain((pools) => {
      return fc
        .tuple(
          fc.tuple(...n.profiles.map((p) => bfdProfile(p))),
          fc.tuple(...n.peers.map((p) => peer(p, n.profiles))),
          n.aliases.length > 0 ? community(n.aliases).map((c) => [c]) : fc.constant([]),
          fc.tuple(...n.l2.map((a) => l2Advertisement(a, n.pools))),
          fc.tuple(...n.bgp.map((a) => bgpAdvertisement(a, n.pools, n.peers, n.aliases, n.localPref))),
          fc.tuple(...n.services.map((s) => service(s, n.pools))),
          n.withNode ? nodeSettings.map((x) => [x]) : fc.constant([]),
          fc.constant([
            {
              apiVersion: "v1",
              kind: "Namespace" as Kind,
              metadata: { name: "shop", labels: { team: "web" } },
            },
          ]),
        )
        .map((groups) => [...pools, ...groups.flat()]);
    }),
  );

/** What the loader must produce for a generated object: defaults applied, v1beta1 peers converted. */
function expected(o: Obj): unknown {
  const parsed = (SCHEMAS[o.kind] as z.ZodType).parse(o) as Obj;
  return o.kind === "BGPPeer" ? { ...parsed, apiVersion: "metallb.io/v1beta2" } : parsed;
}

test("every schema-valid configuration survives YAML.stringify → configFromText, defaults applied", () => {
  fc.assert(
    fc.property(site, (objects) => {
      // Services of one name in one namespace would be duplicates; the generator names them uniquely.
      const text = objects.map((o) => YAML.stringify(o)).join("---\n");
      const r = configFromText(text, "site.yaml");
      if (!r.ok) throw new Error(`${r.problems.map(formatProblem).join("\n")}\n---\n${text}`);
      const c = r.config;
      const loaded = [
        ...c.pools,
        ...c.bfdProfiles,
        ...c.peers,
        ...c.communities,
        ...c.l2Advertisements,
        ...c.bgpAdvertisements,
        ...c.services,
        ...(c.nodeSettings ? [c.nodeSettings] : []),
        ...c.namespaces,
      ];
      expect(loaded as unknown[]).toEqual(objects.map(expected));
    }),
    { seed: 42, numRuns: 200 },
  );
}, 60_000);
