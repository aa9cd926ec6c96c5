/**
 * startOnlyChanges (src/appliance/restart.ts): which edits a running vipd applies only after a
 * restart, so that a reload can say so. Configs are real manifests through the validator.
 */
import { describe, expect, test } from "bun:test";
import { startOnlyChanges } from "../../src/appliance/restart.ts";
import { type Config, configFromText, formatProblem } from "../../src/config/index.ts";

function config(yaml: string): Config {
  const r = configFromText(yaml, "c.yaml");
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  return r.config;
}

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: [10.0.0.0/24] }
`;
const settings = (spec: string) => `---
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: n }
spec:
${spec}`;
const peer = (name: string, extra = "") => `---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: ${name} }
spec: { myASN: 64500, peerASN: 64501, peerAddress: 10.1.0.1${extra} }
`;

describe("startOnlyChanges", () => {
  test("nothing start-only changed: empty, whatever else did", () => {
    const a = config(POOL + settings("  labels: { rack: r1 }\n") + peer("tor"));
    const b = config(
      POOL.replace("10.0.0.0/24", "10.0.0.0/23") +
        settings("  labels: { rack: r2 }\n  members: [{ name: other }]\n") +
        peer("tor", ", holdTime: 9s"),
    );
    expect(startOnlyChanges(a, b)).toEqual([]);
  });

  test("each start-only NodeSettings field is named", () => {
    const a = config(POOL + settings("  labels: {}\n"));
    const b = config(
      POOL +
        settings(`  nodeName: n9
  interfaces: [eth1]
  xdp: { mode: native }
  api: { listen: "0.0.0.0:7473" }
  localDelivery: true
  loadBalancerClass: x.io/lb
  cluster: { keyFile: /etc/vipd/key }
  bgp: { gracefulRestartSeconds: 600 }
`),
    );
    expect(startOnlyChanges(a, b)).toEqual([
      "NodeSettings.spec.nodeName",
      "NodeSettings.spec.interfaces",
      "NodeSettings.spec.xdp",
      "NodeSettings.spec.localDelivery",
      "NodeSettings.spec.loadBalancerClass",
      "NodeSettings.spec.cluster",
      "NodeSettings.spec.bgp",
      "NodeSettings.spec.api.listen",
    ]);
  });

  test("API tokens are not start-only: a reload rotates them", () => {
    const tok = (h: string) =>
      `  api: { tokens: [{ name: ops, role: admin, hash: "sha256:${h.repeat(64)}" }] }\n`;
    expect(startOnlyChanges(config(POOL + settings(tok("a"))), config(POOL + settings(tok("b"))))).toEqual(
      [],
    );
  });

  test("members matter only with live membership (a cluster key)", () => {
    const withKey = (members: string) =>
      config(POOL + settings(`  cluster: { keyFile: /k }\n  members: ${members}\n`));
    expect(startOnlyChanges(withKey("[]"), withKey("[{ name: b, address: 10.1.0.2 }]"))).toEqual([
      "NodeSettings.spec.members (with cluster: heartbeat destinations)",
    ]);
  });

  test("BGP: peers come and go live (the first one and the first BFD profile too); a new router ID waits", () => {
    const none = config(POOL);
    const one = config(POOL + peer("tor"));
    const two = config(POOL + peer("tor") + peer("tor2").replace("10.1.0.1", "10.1.0.2"));
    expect(startOnlyChanges(none, one)).toEqual([]);
    expect(startOnlyChanges(one, two)).toEqual([]);
    expect(startOnlyChanges(two, none)).toEqual([]);
    const withBfd = config(
      `${POOL}${peer("tor", ", bfdProfile: fast")}---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: { name: fast }
`,
    );
    expect(startOnlyChanges(one, withBfd)).toEqual([]);
    expect(startOnlyChanges(none, withBfd)).toEqual([]);
    expect(startOnlyChanges(one, config(POOL + peer("tor", ", routerID: 10.1.0.9")))).toEqual([
      "BGPPeer.spec.routerID",
    ]);
  });
});
