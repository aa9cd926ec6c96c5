/**
 * Which manifests vipd accepts and refuses, case by case against MetalLB (issue 17). Each file in
 * test/fixtures/metallb is one case: its first line names the MetalLB source it comes from (a case
 * of internal/config/config_test.go, a rule of config.go, a CRD validation rule), then
 * `# expect: ok`, or one `# expect: LINE: Kind/name: field: message` per problem `vipd validate`
 * must print, and `# note: ...` per note. Nothing else may be reported. The fixtures were written
 * for vipd after MetalLB's cases; MetalLB's own test data is not copied.
 *
 * The rest are the points a fixture cannot show alone: what the accepted objects become, the
 * command line, Kubernetes mode's reading of the same objects, and MetalLB's LOCAL_PREF rule when
 * the nodes are known.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { renderCrds } from "../../src/config/crd.ts";
import { configFromPaths, configFromText, formatProblem } from "../../src/config/index.ts";
import { loadText } from "../../src/config/load.ts";
import { type BGPPeer, SCHEMAS } from "../../src/config/schemas.ts";
import { buildConfig, sessionAsn } from "../../src/config/validate.ts";
import { crManifest, loadObject } from "../../src/k8s/configset.ts";

const ROOT = join(import.meta.dir, "../..");
const DIR = "test/fixtures/metallb";
const fixtures = readdirSync(join(ROOT, DIR))
  .filter((f) => f.endsWith(".yaml"))
  .sort();

interface Case {
  source: string;
  ok: boolean;
  problems: string[];
  notes: string[];
}

function readCase(path: string): Case {
  const lines = readFileSync(join(ROOT, path), "utf8").split("\n");
  const source = lines[0]?.startsWith("# metallb: ") ? lines[0].slice("# metallb: ".length) : "";
  const expects = lines.filter((l) => l.startsWith("# expect: ")).map((l) => l.slice("# expect: ".length));
  const notes = lines
    .filter((l) => l.startsWith("# note: "))
    .map((l) => `${path}:${l.slice("# note: ".length)}`);
  const ok = expects.length === 1 && expects[0] === "ok";
  return { source, ok, problems: ok ? [] : expects.map((e) => `${path}:${e}`), notes };
}

describe("MetalLB's cases, as fixtures", () => {
  test("every fixture names its MetalLB source and says what it expects", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(30);
    for (const f of fixtures) {
      const c = readCase(`${DIR}/${f}`);
      expect({ f, source: c.source.length > 10 }).toEqual({ f, source: true });
      expect({ f, says: c.ok || c.problems.length > 0 }).toEqual({ f, says: true });
    }
  });

  for (const f of fixtures) {
    const path = `${DIR}/${f}`;
    const c = readCase(path);
    test(`${c.source} [${f}]`, () => {
      const r = configFromPaths([join(ROOT, path)]);
      const rel = (s: string) => s.replace(`${ROOT}/`, "");
      expect(r.problems.map((p) => rel(formatProblem(p)))).toEqual(c.problems);
      expect(r.notes.map((p) => rel(formatProblem(p)))).toEqual(c.notes);
      expect(r.ok).toBe(c.ok);
    });
  }
});

const fixture = (f: string) => {
  const r = configFromPaths([join(ROOT, DIR, f)]);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  return r.config;
};

describe("what the accepted objects become", () => {
  test("config.go peerFromCR: passwordSecret: {} (or an empty name) is no secret reference at all", () => {
    const peers = fixture("accept-password-secret-empty.yaml").peers;
    expect(peers.map((p) => [p.metadata.name, p.spec.passwordSecret, p.spec.password])).toEqual([
      ["converted", undefined, undefined],
      ["with-password", undefined, "s3cret"],
    ]);
    expect(peers.every((p) => !("passwordSecret" in p.spec))).toBe(true);
  });

  test("config.go peerFromCR: a named secret is kept, and conflicts with a password as before", () => {
    const peer = (ref: string) =>
      `apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, ${ref}}\n`;
    const named = configFromText(peer("passwordSecret: {name: bgp-auth}"), "m.yaml");
    expect(named.ok && named.config.peers[0]?.spec.passwordSecret).toEqual({ name: "bgp-auth" });
    const both = configFromText(peer("password: x, passwordSecret: {name: bgp-auth}"), "m.yaml");
    expect(both.problems.map(formatProblem)).toEqual([
      "m.yaml:4: BGPPeer/p: spec.passwordSecret: cannot be set together with password",
    ]);
  });

  test('config_test.go "peer with localASN field": localASN reaches the config, and the session presents it', () => {
    const [p] = fixture("accept-local-asn.yaml").peers;
    expect(p?.spec.localASN).toBe(65410);
    expect(p && sessionAsn(p)).toBe(65410);
    const plain = { ...(p as BGPPeer), spec: { ...(p as BGPPeer).spec, localASN: undefined } };
    expect(sessionAsn(plain)).toBe(100);
    expect(sessionAsn({ ...plain, spec: { ...plain.spec, localASN: 0 } })).toBe(100); // 0 = unset
  });

  test("localASN is refused where FRR's local-as (what MetalLB configures from it) is refused", () => {
    const peer = (spec: string) =>
      `apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 100, peerAddress: 192.0.2.1, ${spec}}\n`;
    const lines = (spec: string) => configFromText(peer(spec), "m.yaml").problems.map(formatProblem);
    expect(lines("peerASN: 100, localASN: 65410")).toEqual([
      "m.yaml:4: BGPPeer/p: spec.localASN: applies to eBGP peers only (FRR's local-as, which MetalLB configures from it, refuses iBGP peers)",
    ]);
    expect(lines("dynamicASN: internal, localASN: 65410")).toHaveLength(1);
    expect(lines("peerASN: 200, localASN: 100")).toEqual([
      "m.yaml:4: BGPPeer/p: spec.localASN: must differ from myASN (it replaces myASN on this session; leave it out to use myASN)",
    ]);
    expect(lines("peerASN: 200, localASN: 200")).toEqual([
      "m.yaml:4: BGPPeer/p: spec.localASN: must differ from peerASN: the peer would see an iBGP session where this side runs eBGP",
    ]);
    expect(lines("dynamicASN: external, localASN: 65410")).toEqual([]);
  });

  test("a dump with MetalLB's status kinds yields the configuration in it", () => {
    const c = fixture("status-kinds-skipped.yaml");
    expect(c.pools.map((p) => p.metadata.name)).toEqual(["dumped"]);
  });
});

describe("one problem per mistake", () => {
  test('config.go communitiesFromCrs refuses the Community itself: its aliases are not also "not defined"', () => {
    const text = `apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: site}
spec:
  communities:
    - {name: no-export-site, value: "65535:99999"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv}
spec: {communities: [no-export-site]}
`;
    expect(configFromText(text, "m.yaml").problems.map(formatProblem)).toEqual([
      'm.yaml:6: Community/site: spec.communities[0].value: must be "a:b" (16-bit values) or "large:a:b:c" (32-bit values)',
    ]);
  });

  test("a refused IPAddressPool or BFDProfile is not also reported missing where it is named", () => {
    const text = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [10.0.0.0/33]}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {detectMultiplier: 1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor}
spec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, bfdProfile: fast}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec: {ipAddressPools: [lan]}
`;
    expect(configFromText(text, "m.yaml").problems.map((p) => `${p.kind}/${p.name}: ${p.field}`)).toEqual([
      "IPAddressPool/lan: spec.addresses[0]",
      "BFDProfile/fast: spec.detectMultiplier",
    ]);
  });
});

describe("the generated CRDs carry MetalLB's CEL rules", () => {
  const crds = renderCrds();
  test("BGPPeer.spec.connectTime: 1 to 65535 seconds, whole seconds", () => {
    const t = crds.get("metallb.io_bgppeers.yaml") ?? "";
    expect(t).toContain("rule: duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535");
    expect(t).toContain("rule: duration(self).getMilliseconds() % 1000 == 0");
  });
  test("BGPAdvertisement.spec: serviceSelectors only with aggregation lengths 32 and 128", () => {
    expect(crds.get("metallb.io_bgpadvertisements.yaml") ?? "").toContain(
      "(!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128)",
    );
  });
});

describe("vipd validate prints the notes and still succeeds", () => {
  test("status objects in a dump: three note lines, then the summary, exit 0", () => {
    const p = Bun.spawnSync(
      [process.execPath, "src/main.ts", "validate", `${DIR}/status-kinds-skipped.yaml`],
      {
        cwd: ROOT,
        stdout: "pipe",
        stderr: "pipe",
      },
    );
    const out = p.stdout.toString().trimEnd().split("\n");
    expect(out.slice(0, 3)).toEqual(readCase(`${DIR}/status-kinds-skipped.yaml`).notes);
    expect(out[3]).toStartWith("ok: 1 IPAddressPool,");
    expect(out).toHaveLength(4);
    expect(p.exitCode).toBe(0);
  }, 30_000);
});

describe("Kubernetes mode reads the same objects the same way", () => {
  test('passwordSecret: {} is not looked up as a Secret named "" (config.go: only a non-empty name)', () => {
    const obj = {
      apiVersion: "metallb.io/v1beta2",
      kind: "BGPPeer",
      metadata: { name: "converted", namespace: "metallb-system" },
      spec: { myASN: 64512, peerASN: 64513, peerAddress: "192.0.2.1", passwordSecret: {} },
    };
    const m = crManifest({ kind: "BGPPeer", obj }, new Map(), "metallb-system");
    expect("apiVersion" in m).toBe(true);
    const l = loadObject("BGPPeer", m as Record<string, unknown>, "BGPPeer/metallb-system/converted");
    expect(Array.isArray(l)).toBe(false);
    expect(!Array.isArray(l) && (l.obj as BGPPeer).spec.passwordSecret).toBeUndefined();
  });

  test("the duplicate and CEL rules are the schemas', so the API-server path refuses them too", () => {
    const adv = {
      apiVersion: "metallb.io/v1beta1",
      kind: "BGPAdvertisement",
      metadata: { name: "a" },
      spec: { peers: ["tor", "tor"], aggregationLength: 24, serviceSelectors: [{}] },
    };
    const r = SCHEMAS.BGPAdvertisement.safeParse(adv);
    expect(r.success ? [] : r.error.issues.map((i) => i.path.join("."))).toEqual([
      "spec.peers.1",
      "spec.aggregationLength",
    ]);
  });
});

describe('config.go BGPAdvertisementsHaveCompatibleLocalPref with the nodes known ("different local pref" cases)', () => {
  // Two advertisements of one pool, to all peers, with different LOCAL_PREFs, selecting nodes by
  // different labels. Without a node list vipd takes different selectors for different nodes;
  // with one (Kubernetes mode) it compares the nodes selected, as MetalLB does.
  const text = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool1}
spec: {addresses: [10.20.30.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: by-zone}
spec: {localPref: 100, nodeSelectors: [{matchLabels: {zone: a}}]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: by-rack}
spec: {localPref: 200, nodeSelectors: [{matchLabels: {rack: r1}}]}
`;
  const withNodes = (nodes?: { name: string; labels: Record<string, string> }[]) =>
    buildConfig(loadText(text, "m.yaml").objects, { nodes }).problems.map(formatProblem);

  test('"same peers & different nodes": no node selected by both, no collision', () => {
    expect(withNodes()).toEqual([]);
    expect(
      withNodes([
        { name: "n1", labels: { zone: "a" } },
        { name: "n2", labels: { rack: "r1" } },
      ]),
    ).toEqual([]);
    expect(withNodes([])).toEqual([]); // MetalLB with no nodes: nothing collides
  });

  test('"same peers and nodes": a node both select makes them collide', () => {
    expect(withNodes([{ name: "n1", labels: { zone: "a", rack: "r1" } }])).toEqual([
      'm.yaml:14: BGPAdvertisement/by-rack: spec.localPref: localPref 200 conflicts with localPref 100 of BGPAdvertisement "by-zone": both announce pool "pool1" with the same aggregation length to the same peers from the same nodes, and a route carries one LOCAL_PREF; make them equal, or give them different peers or nodeSelectors',
    ]);
  });
});
