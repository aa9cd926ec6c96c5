/**
 * A broken seed on a fresh edge node, seen from the fleet manager's side (issue #19): vipd-seed
 * (image/seed/main.ts) rejects the seed and writes only its fallback NodeSettings; the real
 * `vipd run` on that /etc/vipd and state directory then answers /readyz 503 with the seed's
 * problem, and GET /api/v1/system/seed shows the rejected seed with its file:line problems. The
 * fix is the seed's (the API cannot replace /etc/vipd, a directory): with the fixed seed applied
 * at the next boot, vipd is ready, the generated admin token is gone and no longer opens the API.
 * Harness: run-harness.ts (a real process, its API on a free loopback port).
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main as seedMain } from "../../image/seed/main.ts";
import { until } from "../support/until.ts";
import { ADMIN, cleanup, DEADLINE_MS, POOL, SETTINGS, SVC, tempDir, Vipd, YAML } from "./run-harness.ts";

setDefaultTimeout(60_000);
afterAll(cleanup);

test("fresh node, rejected seed: not ready with the reason and the seed state over the API; the fixed seed makes it ready", async () => {
  const d = tempDir();
  const seedDir = join(d, "seed", "vipd");
  const etc = join(d, "etc");
  const state = join(d, "state");
  mkdirSync(seedDir, { recursive: true });
  const args = ["--seed", join(d, "seed"), "--etc", etc, "--state", state, "--network-dir", join(d, "n")];
  // 10.9.8.300 is no address: a real validation problem with file and line.
  writeFileSync(join(seedDir, "pools.yaml"), POOL(["10.9.8.10-10.9.8.300"]));
  const quiet = console.log;
  console.log = () => {};
  try {
    expect(
      await seedMain([
        "--seed",
        join(d, "seed"),
        "--etc",
        etc,
        "--state",
        state,
        "--network-dir",
        join(d, "n"),
      ]),
    ).toBe(0);
  } finally {
    console.log = quiet;
  }
  const token = readFileSync(join(state, "admin-token"), "utf8").trim();
  const v = await Vipd.ready(["--config", etc, "--state-dir", state], { token });

  const r = await v.api("/readyz");
  expect(r.status).toBe(503);
  const body = (await r.json()) as { ready: boolean; reasons: string[] };
  expect(body.ready).toBe(false);
  const reason = body.reasons.find((x) => x.includes("seed was rejected")) ?? "";
  expect(reason).toMatch(/pools\.yaml:\d+: IPAddressPool\/lan: spec\.addresses/);
  expect(v.logs.some((l) => l.message === "not ready: the site's seed was rejected")).toBe(true);

  const seed = await v.json<{ seed: string; configured: boolean; problems: string[]; files: string[] }>(
    "/api/v1/system/seed",
  );
  expect(seed).toMatchObject({ seed: "rejected", configured: false, files: ["pools.yaml"] });
  expect(seed.problems[0]).toMatch(/pools\.yaml:\d+: IPAddressPool\/lan: spec\.addresses\[0\]/);
  // Read role at least: without a token the seed state is not shown.
  expect((await v.api("/api/v1/system/seed", { headers: { authorization: "" } })).status).toBe(401);

  // /etc/vipd is a directory on the image, so the API cannot replace it (400): the fix is the
  // seed's, then a reboot — vipd-seed again, then vipd again.
  const got = await v.api("/api/v1/config", { headers: { accept: "application/yaml" } });
  const refused = await v.api("/api/v1/config", {
    method: "PUT",
    headers: { ...YAML, "if-match": got.headers.get("etag") as string },
    body: `${await got.text()}---\n${POOL(["10.9.8.10-10.9.8.20"])}`,
  });
  expect(refused.status).toBe(400);
  expect(await refused.text()).toContain("is a directory; the API can replace only a single file");
  expect(await v.stop()).toBe(0);
  writeFileSync(join(seedDir, "pools.yaml"), POOL(["10.9.8.10-10.9.8.20"]) + SETTINGS + SVC("shop", "web"));
  console.log = () => {};
  try {
    expect(await seedMain(args)).toBe(0);
  } finally {
    console.log = quiet;
  }
  // The site's NodeSettings brings its own admin token: the generated one is gone.
  expect(existsSync(join(state, "admin-token"))).toBe(false);
  const fixed = await Vipd.ready(["--config", etc, "--state-dir", state], { token: ADMIN });
  await until("vipd to be ready", async () => (await fixed.api("/readyz")).status === 200, DEADLINE_MS);
  expect(await fixed.json<{ seed: string; configured: boolean }>("/api/v1/system/seed")).toMatchObject({
    seed: "applied",
    configured: true,
  });
  // The old token no longer opens anything.
  expect((await fixed.api("/api/v1/status", { headers: { authorization: `Bearer ${token}` } })).status).toBe(
    401,
  );
});
