/**
 * Loading manifests: files and directories of multi-document YAML (and JSON), every problem one
 * line that points at the key or value to fix, unknown kinds and fields reported, never ignored.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configFromPaths, configFromText, formatProblem } from "../../src/config/index.ts";
import { fieldPath, jsonPointer, loadText } from "../../src/config/load.ts";

const lines = (text: string, file = "m.yaml") => configFromText(text, file).problems.map(formatProblem);

const POOL = (name: string, cidr: string) => `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: ${name}
spec:
  addresses:
    - ${cidr}
`;

describe("a directory of manifests", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `vipd-config-${process.pid}-`));
    writeFileSync(join(dir, "10-pools.yaml"), `${POOL("a", "10.1.0.0/24")}---\n${POOL("b", "10.2.0.0/24")}`);
    writeFileSync(
      join(dir, "20-l2.yml"),
      "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n",
    );
    writeFileSync(
      join(dir, "30-peer.json"),
      JSON.stringify({
        apiVersion: "metallb.io/v1beta2",
        kind: "BGPPeer",
        metadata: { name: "r1" },
        spec: { myASN: 64500, peerASN: 64501, peerAddress: "10.1.0.1" },
      }),
    );
    mkdirSync(join(dir, "more"));
    writeFileSync(join(dir, "more", "pool-c.yaml"), POOL("c", "fd00:3::/64"));
    // Not manifests: skipped inside a directory.
    writeFileSync(join(dir, "README.md"), "not: [yaml\n");
    writeFileSync(join(dir, ".hidden.yaml"), "this: [is not read");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("reads every .yaml, .yml and .json file, subdirectories too, and nothing else", () => {
    const r = configFromPaths([dir]);
    expect(r.problems.map(formatProblem)).toEqual([]);
    if (!r.ok) return;
    expect(r.config.pools.map((p) => p.metadata.name)).toEqual(["a", "b", "c"]);
    expect(r.config.l2Advertisements.map((l) => l.metadata.name)).toEqual(["l2"]);
    expect(r.config.peers.map((p) => p.spec.peerPort)).toEqual([179]);
  });

  test("a file named explicitly is read whatever its extension", () => {
    const r = configFromPaths([join(dir, "README.md")]);
    expect(r.ok).toBe(false);
    expect(r.problems[0]?.file).toBe(join(dir, "README.md"));
    expect(r.problems[0]?.message).toStartWith("YAML syntax:");
  });

  test("problems in different files name their own file; objects across files are cross-checked", () => {
    const bad = join(dir, "more", "overlap.yaml");
    writeFileSync(bad, POOL("d", "10.1.0.128/25"));
    try {
      expect(configFromPaths([dir]).problems.map(formatProblem)).toEqual([
        `${bad}:7: IPAddressPool/d: spec.addresses[0]: 10.1.0.128/25 overlaps 10.1.0.0/24 of pool "a"; pools must not share addresses`,
      ]);
    } finally {
      rmSync(bad);
    }
  });

  test("a path that does not exist is reported, and the paths that exist are still read", () => {
    const missing = join(dir, "nope.yaml");
    const r = configFromPaths([missing, join(dir, "20-l2.yml")]);
    expect(r.problems.map(formatProblem)).toEqual([`${missing}:0: -: no such file or directory`]);
  });

  test("a file named twice, or inside a directory also named, is read once", () => {
    const r = configFromPaths([dir, join(dir, "10-pools.yaml"), `${dir}/./10-pools.yaml`]);
    expect(r.problems.map(formatProblem)).toEqual([]);
    if (r.ok) expect(r.config.pools.map((p) => p.metadata.name)).toEqual(["a", "b", "c"]);
  });

  test("a symbolic link back to a parent directory does not loop", () => {
    const link = join(dir, "more", "loop");
    symlinkSync(dir, link);
    try {
      const r = configFromPaths([dir]);
      expect(r.problems.map(formatProblem)).toEqual([]);
      if (r.ok) expect(r.config.pools.map((p) => p.metadata.name)).toEqual(["a", "b", "c"]);
    } finally {
      rmSync(link);
    }
  });

  test("an empty directory is an empty, valid configuration", () => {
    const empty = join(dir, "empty");
    mkdirSync(empty);
    const r = configFromPaths([empty]);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.pools).toEqual([]);
  });
});

describe("multi-document YAML", () => {
  test("leading, trailing and empty documents are fine", () => {
    const r = configFromText(
      `---\n${POOL("a", "10.0.0.0/24")}---\n---\n# only a comment\n---\n${POOL("b", "10.0.1.0/24")}---\n`,
    );
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.pools.map((p) => p.metadata.name)).toEqual(["a", "b"]);
  });

  test("each problem carries its document's index and a JSON pointer to the field", () => {
    const r = loadText(`${POOL("a", "10.0.0.0/24")}---\n${POOL("b", "10.0.1.0/33")}`, "m.yaml");
    expect(r.objects.map((o) => o.line)).toEqual([1]);
    expect(r.problems).toEqual([
      {
        file: "m.yaml",
        line: 15,
        kind: "IPAddressPool",
        name: "b",
        field: "spec.addresses[0]",
        message: '"/33" is not a valid prefix length for IPv4',
        pointer: "/spec/addresses/0",
        doc: 1,
      },
    ]);
  });

  test("a YAML syntax error loses only its own document, and names its line", () => {
    const text = `${POOL("a", "10.0.0.0/24")}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web: x\n---\n${POOL("b", "10.0.1.0/24")}`;
    const r = configFromText(text);
    expect(r.problems.map(formatProblem)).toEqual([
      "<input>:12: -: YAML syntax: Nested mappings are not allowed in compact mappings",
    ]);
    const loaded = loadText(text, "m.yaml");
    expect(loaded.objects.map((o) => o.obj.metadata.name)).toEqual(["a", "b"]);
  });

  test("problems come out sorted by line, whatever order they were found in", () => {
    // The schema problem (line 23) is found while loading, the overlap (line 15) later, by cross-checking.
    const text = `${POOL("a", "10.0.0.0/24")}---\n${POOL("b", "10.0.0.0/24")}---\n${POOL("c", "banana")}`;
    expect(lines(text).map((l) => l.split(":")[1])).toEqual(["15", "23"]);
  });
});

describe("YAML features Kubernetes accepts", () => {
  test("anchors, aliases and << merge keys (anchors live within one document)", () => {
    const r = configFromText(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: a
  labels: &site {site: lab}
  annotations: *site
spec:
  addresses: [10.0.0.0/24]
  <<: {autoAssign: false}
`);
    expect(r.problems).toEqual([]);
    if (!r.ok) return;
    expect(r.config.pools[0]?.spec.autoAssign).toBe(false);
    expect(r.config.pools[0]?.metadata.annotations).toEqual({ site: "lab" });
  });

  test("a field with nothing after it is absent, as the API server prunes nulls before defaulting", () => {
    const r = configFromText(`apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  name: fast
  labels:
spec:
  receiveInterval:
  transmitInterval: 100
`);
    expect(r.problems).toEqual([]);
    if (!r.ok) return;
    expect(r.config.bfdProfiles[0]?.metadata).toEqual({ name: "fast" });
    expect(r.config.bfdProfiles[0]?.spec.receiveInterval).toBe(300);
    expect(r.config.bfdProfiles[0]?.spec.transmitInterval).toBe(100);
    expect(
      lines("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec:\n"),
    ).toEqual(["m.yaml:4: IPAddressPool/a: spec: is required"]);
  });

  test("a List, as `kubectl get -o yaml` writes it: its items are the objects, problems point into them", () => {
    const text = `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
  - apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata:
      name: a
    spec:
      addresses: [10.0.0.0/24]
  - apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata:
      name: b
    spec:
      addresses: [10.0.0.128/25]
      autoAsign: false
`;
    const r = loadText(text, "m.yaml");
    expect(r.objects.map((o) => [o.obj.metadata.name, o.line, o.lineOf(["spec", "addresses", 0])])).toEqual([
      ["a", 6, 11],
    ]);
    expect(r.problems).toEqual([
      {
        file: "m.yaml",
        line: 18,
        kind: "IPAddressPool",
        name: "b",
        field: "spec.autoAsign",
        message: 'unknown field; did you mean "autoAssign"?',
        pointer: "/items/1/spec/autoAsign",
        doc: 0,
      },
    ]);
    const fixed = text.replace("      autoAsign: false\n", "");
    expect(configFromText(fixed).problems.map((p) => p.pointer)).toEqual(["/items/1/spec/addresses/0"]);
    expect(lines(fixed)).toEqual([
      'm.yaml:17: IPAddressPool/b: spec.addresses[0]: 10.0.0.128/25 overlaps 10.0.0.0/24 of pool "a"; pools must not share addresses',
    ]);
    expect(lines("apiVersion: v1\nkind: List\nitems: {}\n")).toEqual(["m.yaml:3: items: must be a list"]);
  });

  test("an alias bomb is refused, not expanded", () => {
    let text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (let i = 0, prev = "a"; i < 8; i++, prev = `b${i - 1}`)
      text += `b${i}: &b${i} [${Array(10).fill(`*${prev}`).join(", ")}]\n`;
    expect(lines(text)).toEqual([
      "m.yaml:1: -: YAML: Excessive alias count indicates a resource exhaustion attack",
    ]);
  });

  test("an alias to an anchor that was never set", () => {
    expect(lines("apiVersion: v1\nkind: Namespace\nmetadata: *meta\n")).toEqual([
      "m.yaml:1: -: YAML: Unresolved alias (the anchor must be set before the alias): meta",
    ]);
  });

  test("JSON manifests get line numbers too", () => {
    const json = `{
  "apiVersion": "metallb.io/v1beta1",
  "kind": "BFDProfile",
  "metadata": {"name": "fast"},
  "spec": {
    "receiveInterval": "300ms"
  }
}`;
    expect(lines(json, "p.json")).toEqual([
      'p.json:6: BFDProfile/fast: spec.receiveInterval: must be a number of milliseconds, not string "300ms"',
    ]);
  });
});

describe("what a manifest must be", () => {
  test("a mapping", () => {
    expect(lines('"just a string"\n')).toEqual([
      'm.yaml:1: -: a manifest must be a mapping with apiVersion and kind, not string "just a string"',
    ]);
  });

  test("with an apiVersion", () => {
    expect(lines("kind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [10.0.0.0/24]}\n")).toEqual([
      'm.yaml:1: IPAddressPool/a: apiVersion: is required ("metallb.io/v1beta1")',
    ]);
    expect(
      lines("kind: BGPPeer\nmetadata: {name: r}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1}\n"),
    ).toEqual([
      'm.yaml:1: BGPPeer/r: apiVersion: is required ("metallb.io/v1beta2" or "metallb.io/v1beta1")',
    ]);
  });

  test("with a kind that is a string", () => {
    expect(lines("apiVersion: v1\nkind: [Service]\nmetadata: {name: a}\n")[0]).toStartWith(
      "m.yaml:2: kind: must be a string, not a list (vipd reads IPAddressPool,",
    );
  });

  test("of a kind vipd reads; a near miss or an old MetalLB kind says what to write instead", () => {
    const kindOf = (kind: string, rest = "") =>
      lines(`apiVersion: v1\nkind: ${kind}\nmetadata: {name: x}\n${rest}`)[0]?.replace(
        / \(vipd reads .*\)$/,
        "",
      );
    expect(kindOf("BgpPeer")).toBe(
      'm.yaml:2: BgpPeer/x: kind: unknown kind "BgpPeer"; did you mean "BGPPeer"?',
    );
    expect(kindOf("L2Advertisment")).toBe(
      'm.yaml:2: L2Advertisment/x: kind: unknown kind "L2Advertisment"; did you mean "L2Advertisement"?',
    );
    expect(kindOf("Deployment")).toBe('m.yaml:2: Deployment/x: kind: unknown kind "Deployment"');
    expect(kindOf("ConfigMap", "data:\n  config: |\n    address-pools: []\n")).toBe(
      'm.yaml:2: ConfigMap/x: kind: unknown kind "ConfigMap": MetalLB v0.13 replaced its ConfigMap with custom resources; convert it with MetalLB\'s configmaptocrs tool',
    );
    expect(kindOf("ConfigMap", "data:\n  app.conf: x\n")).toBe(
      'm.yaml:2: ConfigMap/x: kind: unknown kind "ConfigMap"',
    );
  });

  test("a problem is one line even when the input smuggles in line breaks", () => {
    expect(lines('apiVersion: v1\nkind: "Pool\\nm.yaml:1: all good"\nmetadata: {name: x}\n')).toEqual([
      'm.yaml:2: Pool\\nm.yaml:1: all good/x: kind: unknown kind "Pool\\nm.yaml:1: all good" (vipd reads IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile, Community, Service, Namespace, NodeSettings)',
    ]);
  });

  test("unknown fields at any depth are reported at the line of their key", () => {
    const text = `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: r1
  lables:
    a: b
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 10.0.0.1
  nodeSelectors:
    - matchLabels: {a: b}
      matchExpresions: []
  bfd:
    profile: fast
`;
    expect(lines(text)).toEqual([
      'm.yaml:5: BGPPeer/r1: metadata.lables: unknown field; did you mean "labels"?',
      'm.yaml:13: BGPPeer/r1: spec.nodeSelectors[0].matchExpresions: unknown field; did you mean "matchExpressions"?',
      "m.yaml:14: BGPPeer/r1: spec.bfd: unknown field (spec takes myASN, peerASN, dynamicASN, peerAddress, interface, sourceAddress, peerPort, holdTime, keepaliveTime, connectTime, routerID, nodeSelectors, password, passwordSecret, bfdProfile, enableGracefulRestart, ebgpMultiHop, vrf, disableMP, dualStackAddressFamily, localASN)",
    ]);
  });

  test("a numeric key is found at its line too", () => {
    expect(lines(`${POOL("a", "10.0.0.0/24")}  8: x\n`)).toEqual([
      'm.yaml:8: IPAddressPool/a: spec["8"]: unknown field (spec takes addresses, autoAssign, avoidBuggyIPs, serviceAllocation)',
    ]);
  });

  test("a missing field is reported at the line of the mapping that should hold it", () => {
    expect(
      lines("apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata:\n  labels: {a: b}\nspec: {}\n"),
    ).toEqual(["m.yaml:3: Community/<unnamed>: metadata.name: is required"]);
  });

  test("fields objects exported with kubectl carry are accepted: status, uid, managedFields", () => {
    const r = configFromText(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: a
  namespace: metallb-system
  uid: 4b2b0a8e-4f3e-4a6c-9d1e-3f0b6f1c2a11
  resourceVersion: "1234"
  generation: 1
  creationTimestamp: "2026-01-01T00:00:00Z"
  managedFields: [{manager: kubectl}]
spec:
  addresses: [10.0.0.0/24]
status:
  assignedIPv4: 3
`);
    expect(r.problems).toEqual([]);
  });
});

describe("field paths", () => {
  test("dotted names, list indexes, and bracketed keys that are not identifiers", () => {
    expect(fieldPath([])).toBe("-");
    expect(fieldPath(["spec", "addresses", 2])).toBe("spec.addresses[2]");
    expect(fieldPath(["metadata", "annotations", "metallb.io/loadBalancerIPs"])).toBe(
      'metadata.annotations["metallb.io/loadBalancerIPs"]',
    );
    expect(jsonPointer(["metadata", "annotations", "metallb.io/x~y"])).toBe(
      "/metadata/annotations/metallb.io~1x~0y",
    );
  });
});
