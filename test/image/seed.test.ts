/**
 * The edge-node image's first-boot configuration (image/seed/plan.ts): which manifests end up in
 * /etc/vipd, when a seed is applied, and that an admin token always exists but only as a hash.
 * Pure: no root, no disk (except the last story, which runs the real program on temp dirs).
 */

import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { main as seedMain } from "../../image/seed/main.ts";
import {
  DEFAULT_NODE_FILE,
  GENERATED_TOKEN_NAME,
  planSeed,
  type SeedInput,
  seedDigest,
  sha256Hex,
} from "../../image/seed/plan.ts";
import { validateFiles } from "../../image/seed/validate.ts";

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: site, namespace: metallb-system }
spec:
  addresses: [10.0.2.100-10.0.2.109]
`;
const NODE_WITH_TOKEN = `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: edge1 }
spec:
  nodeName: edge1
  api:
    listen: 0.0.0.0:7473
    tokens:
      - { name: fleet, role: admin, hash: "sha256:${"a".repeat(64)}" }
`;
const NODE_WITHOUT_TOKEN = `# site settings, with a comment that must survive
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: edge1 }
spec:
  nodeName: edge1
  interfaces: [eth0]
`;

const BYTES = new Uint8Array(32).fill(0xab);
const valid = () => [] as string[];

function input(over: Partial<SeedInput>): SeedInput {
  return {
    seed: null,
    appliedDigest: null,
    current: new Map(),
    storedToken: null,
    randomBytes: BYTES,
    validate: valid,
    ...over,
  };
}

function tokenHashes(text: string): string[] {
  const doc = parse(text) as { spec: { api: { tokens: { hash: string; name: string }[] } } };
  return doc.spec.api.tokens.map((t) => `${t.name}=${t.hash}`);
}

describe("first boot", () => {
  test("a blank node (no seed) gets a NodeSettings with a generated admin token, stored once", () => {
    const p = planSeed(input({}));
    expect(p.newToken).toBe("ab".repeat(32));
    const node = p.write.get(DEFAULT_NODE_FILE);
    expect(node).toBeDefined();
    expect(tokenHashes(node ?? "")).toEqual([`${GENERATED_TOKEN_NAME}=sha256:${sha256Hex("ab".repeat(32))}`]);
    // The token itself is never written into /etc/vipd.
    expect(node).not.toContain("ab".repeat(32));
    expect(p.appliedDigest).toBeNull();
  });

  test("a seed with its own admin token is copied as it is, and no token is generated", () => {
    const seed = new Map([
      ["pools.yaml", POOL],
      ["node.yaml", NODE_WITH_TOKEN],
    ]);
    const p = planSeed(input({ seed }));
    expect(p.newToken).toBeNull();
    expect([...p.write.keys()].sort()).toEqual(["node.yaml", "pools.yaml"]);
    expect(p.write.get("node.yaml")).toBe(NODE_WITH_TOKEN);
    expect(p.appliedDigest).toBe(seedDigest(seed));
  });

  test("a seed whose NodeSettings has no admin token gets one added, comments kept", () => {
    const p = planSeed(input({ seed: new Map([["node.yaml", NODE_WITHOUT_TOKEN]]) }));
    const text = p.write.get("node.yaml") ?? "";
    expect(text).toContain("# site settings, with a comment that must survive");
    expect(text).toContain("interfaces: [ eth0 ]");
    expect(tokenHashes(text)).toEqual([`${GENERATED_TOKEN_NAME}=sha256:${sha256Hex("ab".repeat(32))}`]);
  });

  test("files on the seed that are not manifests are ignored", () => {
    const p = planSeed(input({ seed: new Map([["notes.txt", "hello"]]) }));
    expect(p.notes).toContain("seed partition holds no manifests");
    expect(p.write.has("notes.txt")).toBe(false);
  });
});

describe("later boots", () => {
  const seed = new Map([
    ["pools.yaml", POOL],
    ["node.yaml", NODE_WITH_TOKEN],
  ]);

  test("an unchanged seed leaves /etc/vipd alone, so changes made through the API survive a reboot", () => {
    const edited = new Map([
      ["pools.yaml", `${POOL}# edited through the API\n`],
      ["node.yaml", NODE_WITH_TOKEN],
    ]);
    const p = planSeed(input({ seed, appliedDigest: seedDigest(seed), current: edited }));
    expect(p.write.size).toBe(0);
    expect(p.remove).toEqual([]);
    expect(p.appliedDigest).toBeNull();
  });

  test("a changed seed replaces /etc/vipd: new files written, files it no longer has removed", () => {
    const old = new Map([
      ["old.yaml", POOL.replace("name: site", "name: old")],
      ["node.yaml", NODE_WITH_TOKEN],
    ]);
    const p = planSeed(input({ seed, appliedDigest: "0".repeat(64), current: old }));
    expect([...p.write.keys()]).toEqual(["pools.yaml"]);
    expect(p.remove).toEqual(["old.yaml"]);
    expect(p.appliedDigest).toBe(seedDigest(seed));
  });

  test("an invalid seed changes nothing and says why", () => {
    const current = new Map([["node.yaml", NODE_WITH_TOKEN]]);
    const p = planSeed(
      input({
        seed,
        current,
        validate: () => ["pools.yaml:5: IPAddressPool/site: spec.addresses[0]: bad"],
      }),
    );
    expect(p.write.size).toBe(0);
    expect(p.remove).toEqual([]);
    expect(p.appliedDigest).toBeNull();
    expect(p.rejected).toEqual(["pools.yaml:5: IPAddressPool/site: spec.addresses[0]: bad"]);
  });

  test("the generated token is reused on every boot, never regenerated", () => {
    const p = planSeed(
      input({ seed: new Map([["node.yaml", NODE_WITHOUT_TOKEN]]), storedToken: "cd".repeat(32) }),
    );
    expect(p.newToken).toBeNull();
    expect(tokenHashes(p.write.get("node.yaml") ?? "")).toEqual([
      `${GENERATED_TOKEN_NAME}=sha256:${sha256Hex("cd".repeat(32))}`,
    ]);
  });

  test("the digest does not depend on the order files are listed in", () => {
    const a = new Map([
      ["a.yaml", "x: 1\n"],
      ["b.yaml", "y: 2\n"],
    ]);
    const b = new Map([
      ["b.yaml", "y: 2\n"],
      ["a.yaml", "x: 1\n"],
    ]);
    expect(seedDigest(a)).toBe(seedDigest(b));
    expect(seedDigest(a)).not.toBe(seedDigest(new Map([["a.yaml", "x: 1\ny: 2\n"]])));
  });
});

describe("validation is vipd's own", () => {
  test("a valid site passes, a broken one is reported with file and line", () => {
    expect(validateFiles(new Map([["pools.yaml", POOL]]), "/seed/vipd")).toEqual([]);
    const bad = validateFiles(
      new Map([["pools.yaml", POOL.replace("10.0.2.109", "10.0.2.999")]]),
      "/seed/vipd",
    );
    expect(bad.length).toBe(1);
    expect(bad[0]).toMatch(/^\/seed\/vipd\/pools\.yaml:\d+: IPAddressPool\/site: spec\.addresses/);
  });
});

describe("the program on real directories", () => {
  test("first boot applies the seed and keeps the token root-only; a second boot changes nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), `vipd-seed-${process.pid}-`));
    try {
      const seedRoot = join(dir, "seed");
      const etc = join(dir, "etc");
      const state = join(dir, "state");
      const net = join(dir, "net");
      mkdirSync(join(seedRoot, "vipd"), { recursive: true });
      mkdirSync(join(seedRoot, "network"), { recursive: true });
      writeFileSync(join(seedRoot, "vipd", "pools.yaml"), POOL);
      writeFileSync(join(seedRoot, "vipd", "node.yaml"), NODE_WITHOUT_TOKEN);
      writeFileSync(join(seedRoot, "network", "10-eth0.network"), "[Match]\nName=eth0\n");
      const args = ["--seed", seedRoot, "--etc", etc, "--state", state, "--network-dir", net];
      const log = console.log;
      console.log = () => {};
      try {
        expect(await seedMain(args)).toBe(0);
      } finally {
        console.log = log;
      }
      const token = readFileSync(join(state, "admin-token"), "utf8").trim();
      expect(token).toMatch(/^[0-9a-f]{64}$/);
      expect(statSync(join(state, "admin-token")).mode & 0o777).toBe(0o600);
      const node = readFileSync(join(etc, "node.yaml"), "utf8");
      expect(node).toContain(`sha256:${sha256Hex(token)}`);
      expect(node).not.toContain(token);
      expect(readFileSync(join(etc, "pools.yaml"), "utf8")).toBe(POOL);
      expect(readFileSync(join(net, "10-eth0.network"), "utf8")).toContain("Name=eth0");
      expect(validateFiles(new Map([["node.yaml", node]]), etc)).toEqual([]);

      // Second boot: same seed, same token, same files.
      console.log = () => {};
      try {
        expect(await seedMain(args)).toBe(0);
      } finally {
        console.log = log;
      }
      expect(readFileSync(join(state, "admin-token"), "utf8").trim()).toBe(token);
      expect(readFileSync(join(etc, "node.yaml"), "utf8")).toBe(node);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
