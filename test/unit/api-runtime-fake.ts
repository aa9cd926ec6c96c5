/**
 * An in-memory ApiRuntime for the API's tests. It behaves like the real one where the API can
 * tell: the ETag is the SHA-256 of the YAML text, validation is the real configuration model
 * (src/config: YAML parsing, MetalLB schemas, cross-object checks, file:line problems), apply is
 * all-or-nothing and bumps the generation, and pool usage is computed exactly (bigint) from the
 * applied IPAddressPools and the services' addresses. Driver-fed state (L2, BGP, BFD, XDP,
 * driver health, extra metric families) is whatever the test puts in.
 */

import { createHash } from "node:crypto";
import type {
  ApiRuntime,
  ApplyOutcome,
  BfdSessionView,
  BgpPeerView,
  L2View,
  MetricFamily,
  PoolView,
  Problem,
  ServiceView,
  StatusSummary,
  XdpView,
} from "../../src/api/runtime.ts";
import { configFromText } from "../../src/config/index.ts";
import { type Family, parseIp, parseRange, rangeContains, rangeSize } from "../../src/util/ip.ts";

export const FAKE_FILE = "<request>";

export const VALID_YAML = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: lan
  namespace: metallb-system
spec:
  addresses:
    - 192.168.10.0/24
    - fd00:10::/64
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: lan
  namespace: metallb-system
spec:
  ipAddressPools: [lan]
`;

/** Well-formed YAML the configuration model rejects (an address that is not one). */
export const INVALID_YAML = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: broken
  namespace: metallb-system
spec:
  addresses:
    - 192.168.300.0/24
`;

export const BAD_SYNTAX_YAML = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: x
spec: [
`;

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

interface PoolRanges {
  name: string;
  autoAssign: boolean;
  ranges: ReturnType<typeof parseRange>[];
}

export class FakeRuntime implements ApiRuntime {
  node = "node-a";
  version = "0.1.0-test";
  startedAtMs: number;
  configLoaded = true;
  drivers: StatusSummary["drivers"] = [{ name: "config", healthy: true }];
  serviceList: ServiceView[] = [];
  l2List: L2View[] = [];
  bgpList: BgpPeerView[] = [];
  bfdList: BfdSessionView[] = [];
  xdpState: XdpView = { interfaces: [] };
  metricFamilies: MetricFamily[] = [];
  /** Calls of applyConfig that changed the configuration. */
  applied = 0;
  /** Makes applyConfig slow, to let tests race two writers. */
  applyDelayMs = 0;
  private yaml: string;
  private generation: number;
  private poolRanges: PoolRanges[] = [];

  constructor(
    yaml = VALID_YAML,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAtMs = now();
    const problems = this.check(yaml);
    if (problems.length > 0) throw new Error(`FakeRuntime: initial YAML is invalid: ${problems[0]!.message}`);
    this.yaml = yaml;
    this.generation = 1;
    this.poolRanges = this.poolsOf(yaml);
  }

  private check(yaml: string): Problem[] {
    const r = configFromText(yaml, FAKE_FILE);
    return r.ok ? [] : r.problems;
  }

  private poolsOf(yaml: string): PoolRanges[] {
    const r = configFromText(yaml, FAKE_FILE);
    if (!r.ok) return [];
    return r.config.pools.map((p) => ({
      name: p.metadata.name,
      autoAssign: p.spec.autoAssign,
      ranges: p.spec.addresses.map((a) => parseRange(a)),
    }));
  }

  status(): StatusSummary {
    return {
      node: this.node,
      version: this.version,
      startedAt: new Date(this.startedAtMs).toISOString(),
      uptimeSeconds: Math.max(0, (this.now() - this.startedAtMs) / 1000),
      configGeneration: this.generation,
      ready: this.configLoaded,
      drivers: this.drivers.map((d) => ({ ...d })),
    };
  }

  services(): ServiceView[] {
    return structuredClone(this.serviceList);
  }

  pools(): PoolView[] {
    return this.poolRanges.map((p) => {
      const families: PoolView["families"] = [];
      for (const fam of [4, 6] as Family[]) {
        const ranges = p.ranges.flatMap((r) => (r.ok && r.value.family === fam ? [r.value] : []));
        if (ranges.length === 0) continue;
        const total = ranges.reduce((s, r) => s + rangeSize(r), 0n);
        let assigned = 0n;
        for (const s of this.serviceList) {
          if (s.pool !== p.name) continue;
          for (const ipText of s.ips) {
            const ip = parseIp(ipText);
            if (ip && ranges.some((r) => rangeContains(r, ip))) assigned++;
          }
        }
        families.push({
          family: fam === 4 ? "IPv4" : "IPv6",
          assigned: assigned.toString(),
          available: (total - assigned).toString(),
        });
      }
      return { name: p.name, autoAssign: p.autoAssign, families };
    });
  }

  l2(): L2View[] {
    return structuredClone(this.l2List);
  }
  bgpPeers(): BgpPeerView[] {
    return structuredClone(this.bgpList);
  }
  bfdSessions(): BfdSessionView[] {
    return structuredClone(this.bfdList);
  }
  xdp(): XdpView {
    return structuredClone(this.xdpState);
  }

  config(): { etag: string; yaml: string } {
    return { etag: sha256Hex(this.yaml), yaml: this.yaml };
  }

  validateConfig(yaml: string): Problem[] {
    return this.check(yaml);
  }

  async applyConfig(yaml: string): Promise<ApplyOutcome> {
    const problems = this.check(yaml);
    if (problems.length > 0) return { ok: false, problems };
    if (this.applyDelayMs > 0) await Bun.sleep(this.applyDelayMs);
    if (yaml !== this.yaml) {
      this.yaml = yaml;
      this.generation++;
      this.applied++;
      this.poolRanges = this.poolsOf(yaml);
    }
    return { ok: true, etag: sha256Hex(yaml) };
  }

  metrics(): MetricFamily[] {
    return structuredClone(this.metricFamilies);
  }
}
