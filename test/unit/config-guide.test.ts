/**
 * Users come from MetalLB with the manifests of its guide (shared/reference/metallb-guide.txt).
 * Every complete manifest from the guide is in test/fixtures/guide, byte for byte; each of its two
 * set-ups must validate as a whole, and read back the values the guide wrote (defaults filled in).
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type Config, configFromPaths, configFromText, formatProblem } from "../../src/config/index.ts";

const GUIDE = join(import.meta.dir, "../fixtures/guide");

function valid(paths: string[]): Config {
  const r = configFromPaths(paths);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  return r.config;
}

describe("the MetalLB guide's manifests", () => {
  test("single pool: one range, one CIDR and a single address, advertised by L2 and BGP", () => {
    const c = valid([join(GUIDE, "single-pool")]);
    expect(c.pools.map((p) => p.metadata.name)).toEqual(["production-pool"]);
    expect(c.pools[0]?.spec).toEqual({
      addresses: ["192.168.1.200-192.168.1.250", "192.168.2.0/24", "10.0.0.100/32"],
      autoAssign: true,
      avoidBuggyIPs: false,
    });
    expect(c.l2Advertisements[0]?.spec).toEqual({});
    expect(c.peers[0]?.apiVersion).toBe("metallb.io/v1beta2");
    expect(c.peers[0]?.spec).toEqual({
      myASN: 64500,
      peerASN: 64501,
      peerAddress: "192.168.1.1",
      peerPort: 179,
      keepaliveTime: "30s",
      holdTime: "90s",
      nodeSelectors: [{ matchLabels: { "metallb-role": "bgp-speaker" } }],
    });
    expect(c.bgpAdvertisements[0]?.spec).toEqual({
      ipAddressPools: ["production-pool"],
      communities: ["64500:100"],
      localPref: 100,
      aggregationLength: 32,
      aggregationLengthV6: 128,
    });
    const svc = c.services[0];
    expect(svc?.metadata).toEqual({ name: "my-app", namespace: "production" });
    expect(svc?.spec.type).toBe("LoadBalancer");
    expect(svc?.spec.externalTrafficPolicy).toBe("Cluster");
    expect(svc?.spec.ports?.map((p) => [p.port, p.protocol, p.targetPort])).toEqual([
      [80, "TCP", 8080],
      [443, "TCP", 8443],
    ]);
  });

  test("multiple pools: ingress-pool for the ingress controller, advertised on eth0 of Linux nodes", () => {
    const c = valid([join(GUIDE, "multi-pool")]);
    expect(c.pools.map((p) => [p.metadata.name, p.spec.addresses, p.spec.autoAssign])).toEqual([
      ["ingress-pool", ["192.168.1.200-192.168.1.210"], true],
      ["internal-services-pool", ["192.168.1.220-192.168.1.250"], true],
    ]);
    expect(c.pools[0]?.metadata.labels).toEqual({ tier: "ingress" });
    expect(c.l2Advertisements.map((l) => l.metadata.name)).toEqual(["l2-advert", "l2-advert-ingress"]);
    expect(c.l2Advertisements[1]?.spec).toEqual({
      ipAddressPools: ["ingress-pool"],
      interfaces: ["eth0"],
      nodeSelectors: [{ matchLabels: { "kubernetes.io/os": "linux" } }],
    });
    const nginx = c.services[0];
    expect(nginx?.metadata.annotations).toEqual({
      "metallb.universe.tf/address-pool": "ingress-pool",
      "metallb.universe.tf/loadBalancerIPs": "192.168.1.200",
    });
    expect(nginx?.spec.externalTrafficPolicy).toBe("Local");
    expect(nginx?.spec.ports?.map((p) => p.targetPort)).toEqual(["http", "https"]);
  });

  test("the two set-ups really are alternatives: together, their pools overlap", () => {
    const r = configFromPaths([join(GUIDE, "single-pool"), join(GUIDE, "multi-pool")]);
    expect(r.ok).toBe(false);
    const messages = r.problems.map((p) => `${p.kind}/${p.name}: ${p.field}: ${p.message}`);
    expect(messages).toContain(
      'IPAddressPool/ingress-pool: spec.addresses[0]: 192.168.1.200-192.168.1.210 overlaps 192.168.1.200-192.168.1.250 of pool "production-pool"; pools must not share addresses',
    );
    expect(messages).toContain(
      'IPAddressPool/internal-services-pool: spec.addresses[0]: 192.168.1.220-192.168.1.250 overlaps 192.168.1.200-192.168.1.250 of pool "production-pool"; pools must not share addresses',
    );
    // Both sets hold an L2Advertisement called l2-advert.
    expect(
      messages.some((m) =>
        m.startsWith('L2Advertisement/l2-advert: metadata.name: duplicate L2Advertisement "l2-advert"'),
      ),
    ).toBe(true);
  });

  test("shared IP: the guide's two Service fragments, completed with apiVersion, kind and name", () => {
    // The guide shows only metadata.annotations and spec; everything else here is the minimum
    // a real manifest needs, plus a pool for the address to come from.
    const text = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: production-pool
spec:
  addresses:
    - 192.168.1.200-192.168.1.250
---
# Service A
apiVersion: v1
kind: Service
metadata:
  name: service-a
  annotations:
    metallb.universe.tf/allow-shared-ip: "shared-key-1"
    metallb.universe.tf/loadBalancerIPs: 192.168.1.201
spec:
  type: LoadBalancer
  ports:
    - port: 80
---
# Service B (shares same IP, different port)
apiVersion: v1
kind: Service
metadata:
  name: service-b
  annotations:
    metallb.universe.tf/allow-shared-ip: "shared-key-1"
    metallb.universe.tf/loadBalancerIPs: 192.168.1.201
spec:
  type: LoadBalancer
  ports:
    - port: 443
`;
    const r = configFromText(text, "shared-ip.yaml");
    expect(r.problems.map(formatProblem)).toEqual([]);
    if (!r.ok) return;
    expect(
      r.config.services.map((s) => [s.metadata.name, s.spec.ports?.[0]?.port, s.spec.ports?.[0]?.protocol]),
    ).toEqual([
      ["service-a", 80, "TCP"],
      ["service-b", 443, "TCP"],
    ]);
    for (const s of r.config.services)
      expect(s.metadata.annotations?.["metallb.universe.tf/allow-shared-ip"]).toBe("shared-key-1");
  });
});
