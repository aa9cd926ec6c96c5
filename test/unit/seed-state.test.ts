/**
 * The seed's state as vipd sees it (issue #19, "also found"): a broken seed on a fresh node
 * leaves it not ready with the reason and says so truthfully on the console and in node.yaml; a
 * broken seed on a node that kept its configuration is shown but keeps it ready; a fixed seed
 * removes the admin token generated for the broken one. Pure plans, then vipd-seed's program on
 * temp dirs, boot after boot.
 */

import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main as seedMain } from "../../image/seed/main.ts";
import {
  DEFAULT_NODE_FILE,
  FALLBACK_MARK,
  planSeed,
  type SeedInput,
  sha256Hex,
} from "../../image/seed/plan.ts";
import { parseSeedState, readSeedState, seedNotReadyReason } from "../../src/system/seed-state.ts";

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: site, namespace: metallb-system }
spec:
  addresses: [10.0.2.100-10.0.2.109]
`;
const FLEET_HASH = `sha256:${sha256Hex("fleet-token")}`;
const NODE = `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: edge1 }
spec:
  nodeName: edge1
  api:
    listen: 0.0.0.0:7473
    tokens:
      - { name: fleet, role: admin, hash: "${FLEET_HASH}" }
`;
const PROBLEM = "/run/vipd/seed/vipd/pools.yaml:5: IPAddressPool/site: spec.addresses[0]: bad range";
const BYTES = new Uint8Array(32).fill(0xab);

function input(over: Partial<SeedInput>): SeedInput {
  return {
    seed: null,
    appliedDigest: null,
    current: new Map(),
    storedToken: null,
    randomBytes: BYTES,
    validate: () => [],
    ...over,
  };
}

describe("plans", () => {
  const seed = new Map([
    ["pools.yaml", POOL],
    ["node.yaml", NODE],
  ]);

  test("a broken seed on a fresh node: no 'keeping the current configuration', a fallback that says why, not ready", () => {
    const p = planSeed(input({ seed, validate: () => [PROBLEM] }));
    expect(p.notes.join("\n")).not.toContain("keeping the current configuration");
    expect(p.notes.join("\n")).toContain("this node has no configuration yet: vipd starts NOT READY");
    const node = p.write.get(DEFAULT_NODE_FILE) ?? "";
    expect(node).toStartWith(`${FALLBACK_MARK}: the site's seed was rejected`);
    expect(node).not.toContain("supplied no NodeSettings");
    expect(p.state).toMatchObject({
      seed: "rejected",
      problems: [PROBLEM],
      configured: false,
      appliedDigest: null,
    });
    const reason = seedNotReadyReason({ checkedAt: "t", ...p.state });
    expect(reason).toContain("the site's seed was rejected and this node has no configuration: 1 problem(s)");
    expect(reason).toContain(PROBLEM);
  });

  test("a broken seed on a node that kept its configuration: shown, but the node stays ready", () => {
    const p = planSeed(
      input({
        seed,
        appliedDigest: "0".repeat(64),
        current: new Map([["node.yaml", NODE]]),
        validate: () => [PROBLEM],
      }),
    );
    expect(p.notes.join("\n")).toContain("keeping the current configuration in /etc/vipd");
    expect(p.state).toMatchObject({ seed: "rejected", configured: true, appliedDigest: "0".repeat(64) });
    expect(seedNotReadyReason({ checkedAt: "t", ...p.state })).toBeNull();
  });

  test("the same broken seed again, with only the fallback in /etc/vipd: still not configured", () => {
    const first = planSeed(input({ seed, validate: () => [PROBLEM] }));
    const fallback = first.write.get(DEFAULT_NODE_FILE) ?? "";
    const p = planSeed(
      input({
        seed,
        current: new Map([[DEFAULT_NODE_FILE, fallback]]),
        storedToken: "ab".repeat(32),
        validate: () => [PROBLEM],
      }),
    );
    expect(p.state.configured).toBe(false);
    expect(p.write.size).toBe(0);
    expect(p.removeToken).toBe(false);
  });

  test("a fixed seed with its own admin token replaces the fallback and drops the generated token", () => {
    const first = planSeed(input({ seed, validate: () => [PROBLEM] }));
    const p = planSeed(
      input({
        seed,
        current: new Map([[DEFAULT_NODE_FILE, first.write.get(DEFAULT_NODE_FILE) ?? ""]]),
        storedToken: "ab".repeat(32),
      }),
    );
    expect(p.state).toMatchObject({ seed: "applied", configured: true, problems: [] });
    expect(p.write.get("node.yaml")).toBe(NODE);
    expect(p.removeToken).toBe(true);
    expect(p.notes.join("\n")).toContain("removed the admin token generated on an earlier boot");
  });

  test("a generated token the configuration still accepts is kept", () => {
    const token = "cd".repeat(32);
    const withGenerated = NODE.replace(
      "      - { name: fleet",
      `      - { name: admin-firstboot, role: admin, hash: "sha256:${sha256Hex(token)}" }\n      - { name: fleet`,
    );
    const p = planSeed(input({ current: new Map([["node.yaml", withGenerated]]), storedToken: token }));
    expect(p.removeToken).toBe(false);
  });
});

describe("the state file", () => {
  test("parsed back; a torn or foreign file is none", () => {
    const s = {
      checkedAt: "2026-12-02T15:00:00.000Z",
      seed: "rejected",
      digest: "a".repeat(64),
      appliedDigest: null,
      files: ["pools.yaml"],
      problems: [PROBLEM],
      configured: false,
    };
    expect(parseSeedState(JSON.stringify(s))).toEqual(s as never);
    expect(parseSeedState('{"checkedAt":')).toBeNull();
    expect(parseSeedState(JSON.stringify({ ...s, seed: "maybe" }))).toBeNull();
    expect(parseSeedState(null)).toBeNull();
  });

  test("a long list of problems is quoted in part; the API has them all", () => {
    const problems = Array.from({ length: 7 }, (_, i) => `f.yaml:${i + 1}: x: bad`);
    const r = seedNotReadyReason({
      checkedAt: "t",
      seed: "rejected",
      digest: null,
      appliedDigest: null,
      files: [],
      problems,
      configured: false,
    });
    expect(r).toContain("7 problem(s)");
    expect(r).toContain("(and 4 more)");
    expect(r).toContain("GET /api/v1/system/seed");
  });
});

describe("vipd-seed boot after boot", () => {
  test("broken seed on a fresh node, then the fixed seed: state, node.yaml and admin-token follow", async () => {
    const dir = mkdtempSync(join(tmpdir(), `vipd-seed-state-${process.pid}-`));
    const quiet = console.log;
    const said: string[] = [];
    console.log = (s: string) => said.push(s);
    try {
      const seedDir = join(dir, "seed", "vipd");
      const etc = join(dir, "etc");
      const state = join(dir, "state");
      mkdirSync(seedDir, { recursive: true });
      const args = [
        "--seed",
        join(dir, "seed"),
        "--etc",
        etc,
        "--state",
        state,
        "--network-dir",
        join(dir, "net"),
      ];
      // Boot 1: the pool's range is broken (a real validation, with file and line).
      writeFileSync(join(seedDir, "pools.yaml"), POOL.replace("10.0.2.109", "10.0.2.999"));
      writeFileSync(join(seedDir, "node.yaml"), NODE);
      expect(await seedMain(args)).toBe(0);
      const s1 = readSeedState(state);
      expect(s1?.seed).toBe("rejected");
      expect(s1?.configured).toBe(false);
      expect(s1?.problems[0]).toMatch(/pools\.yaml:\d+: IPAddressPool\/site: spec\.addresses/);
      expect(seedNotReadyReason(s1)).toContain("pools.yaml");
      expect(said.join("\n")).toContain("vipd starts NOT READY");
      expect(readFileSync(join(etc, "node.yaml"), "utf8")).toStartWith(FALLBACK_MARK);
      const generated = readFileSync(join(state, "admin-token"), "utf8").trim();
      expect(readFileSync(join(etc, "node.yaml"), "utf8")).toContain(sha256Hex(generated));

      // Boot 2: the seed is fixed; its NodeSettings brings the fleet's token.
      said.length = 0;
      writeFileSync(join(seedDir, "pools.yaml"), POOL);
      expect(await seedMain(args)).toBe(0);
      const s2 = readSeedState(state);
      expect(s2).toMatchObject({ seed: "applied", configured: true, problems: [] });
      expect(seedNotReadyReason(s2)).toBeNull();
      expect(readFileSync(join(etc, "node.yaml"), "utf8")).toBe(NODE);
      // The generated token no longer works: its file is gone, and the console says so.
      expect(existsSync(join(state, "admin-token"))).toBe(false);
      expect(said.join("\n")).toContain("removed the admin token generated on an earlier boot");

      // Boot 3: broken again — the node keeps its configuration and stays ready.
      writeFileSync(join(seedDir, "pools.yaml"), POOL.replace("10.0.2.109", "10.0.2.999"));
      expect(await seedMain(args)).toBe(0);
      const s3 = readSeedState(state);
      expect(s3).toMatchObject({ seed: "rejected", configured: true });
      expect(s3?.appliedDigest).toBe(s2?.appliedDigest as string);
      expect(seedNotReadyReason(s3)).toBeNull();
      expect(readFileSync(join(etc, "pools.yaml"), "utf8")).toBe(POOL);
    } finally {
      console.log = quiet;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
