/**
 * Token rotation on a running `vipd run`: the admin replaces the node's API tokens through
 * PUT /api/v1/config; from the next request on the old token is refused and the new one works,
 * without a restart.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { hashToken } from "../../src/api/auth.ts";
import { ADMIN, cleanup, POOL, SETTINGS, SVC, tempDir, Vipd, YAML } from "./run-harness.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

test("PUT config with new tokens rotates them at once: the old admin token gets 401, the new one works", async () => {
  const d = tempDir();
  const f = join(d, "vipd.yaml");
  const first = `${POOL(["10.9.8.10-10.9.8.20"])}${SETTINGS}${SVC("shop", "web")}`;
  writeFileSync(f, first);
  const v = await Vipd.ready(["--config", f, "--state-dir", join(d, "state")], { token: ADMIN });
  try {
    const NEW = "the-rotated-admin-token";
    const got = await v.api("/api/v1/config", { headers: { accept: "application/yaml" } });
    const etag = got.headers.get("etag") as string;
    const rotated = first.replace(hashToken(ADMIN), hashToken(NEW));
    const put = await v.api("/api/v1/config", {
      method: "PUT",
      headers: { ...YAML, "if-match": etag },
      body: rotated,
    });
    expect(put.status).toBe(200);
    const old = await v.api("/api/v1/status");
    expect(old.status).toBe(401);
    const fresh = await v.api("/api/v1/status", { headers: { authorization: `Bearer ${NEW}` } });
    expect(fresh.status).toBe(200);
    expect(((await fresh.json()) as { configGeneration: number }).configGeneration).toBe(2);
  } finally {
    await v.stop();
  }
});
