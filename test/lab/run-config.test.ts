/**
 * PUT /api/v1/config on a running `vipd run` (harness in run-harness.ts): admin token and If-Match
 * required, the file replaced atomically and applied; and SIGKILL at every stage of a PUT leaves
 * exactly the old or the new file on disk.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configFromText } from "../../src/config/index.ts";
import { until } from "../support/until.ts";
import { ADMIN, cleanup, POOL, READER, SETTINGS, SVC, tempDir, Vipd, YAML } from "./run-harness.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

describe("vipd run: PUT /api/v1/config", () => {
  test("with the admin token and If-Match: replaces the file atomically and applies it; otherwise 401/403/428/412/400 change nothing", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const first = `${POOL(["10.9.7.10-10.9.7.20"])}${SETTINGS}${SVC("shop", "web")}`;
    writeFileSync(f, first);
    const v = await Vipd.ready(["--config", f, "--state-dir", join(d, "state")], { token: ADMIN });
    try {
      const got = await v.api("/api/v1/config", { headers: { accept: "application/yaml" } });
      expect(got.status).toBe(200);
      expect(await got.text()).toBe(first);
      const etag = got.headers.get("etag") as string;
      expect(etag).toMatch(/^"[0-9a-f]{32}"$/);

      const second = first + SVC("shop", "api");
      const put = (body: string, headers: Record<string, string>) =>
        v.api("/api/v1/config", { method: "PUT", body, headers: { ...YAML, ...headers } });
      const unchanged = async () => {
        expect(readFileSync(f, "utf8")).toBe(first);
        expect(await v.generation()).toBe(1);
      };

      expect((await put(second, { "if-match": etag, authorization: "" })).status).toBe(401);
      await unchanged();
      expect((await put(second, { "if-match": etag, authorization: `Bearer ${READER}` })).status).toBe(403);
      await unchanged();
      expect((await put(second, {})).status).toBe(428);
      await unchanged();
      const stale = await put(second, { "if-match": '"0123456789abcdef0123456789abcdef"' });
      expect(stale.status).toBe(412);
      expect(stale.headers.get("etag")).toBe(etag);
      await unchanged();
      const invalid = await put(second.replace("10.9.7.10-10.9.7.20", "10.9.7.10-10.9.7.300"), {
        "if-match": etag,
      });
      expect(invalid.status).toBe(400);
      const body = (await invalid.json()) as { error: string; problems: { line: number; field: string }[] };
      expect(body.error).toBe("InvalidConfig");
      // One problem: the advertisement naming the refused pool is not reported again as "does not
      // exist" (as MetalLB reports only the pool's own error).
      expect(body.problems.map((p) => [p.line, p.field])).toEqual([[5, "spec.addresses[0]"]]);
      await unchanged();

      const unchangedBefore = await v.reloads("unchanged");
      const ok = await put(second, { "if-match": etag });
      expect(ok.status).toBe(200);
      const newTag = ok.headers.get("etag") as string;
      expect(newTag).not.toBe(etag);
      expect(readFileSync(f, "utf8")).toBe(second);
      expect(await v.generation()).toBe(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.7.10"], "shop/api": ["10.9.7.11"] });
      // The file watcher sees the API's own write and finds nothing new: still generation 2.
      await until("the watcher's reload", async () => (await v.reloads("unchanged")) > unchangedBefore);
      expect(await v.generation()).toBe(2);
      // GET now shows the new text and its tag; the old tag is stale.
      const again = await v.api("/api/v1/config");
      expect(again.headers.get("etag")).toBe(newTag);
      expect(((await again.json()) as { yaml: string }).yaml).toBe(second);
      expect((await put(first, { "if-match": etag })).status).toBe(412);
      expect(readFileSync(f, "utf8")).toBe(second);
      // The read token reads state, but not the configuration (it may hold BGP passwords).
      expect(
        (await v.api("/api/v1/services", { headers: { authorization: `Bearer ${READER}` } })).status,
      ).toBe(200);
      expect((await v.api("/api/v1/config", { headers: { authorization: `Bearer ${READER}` } })).status).toBe(
        403,
      );
      expect(await v.stop()).toBe(0);
    } finally {
      await v.kill();
    }
  });

  test("a directory config cannot be replaced through the API: 400 with the reason, nothing written", async () => {
    const d = tempDir();
    const conf = join(d, "conf");
    mkdirSync(conf);
    const text = POOL(["10.9.8.10-10.9.8.20"]) + SETTINGS + SVC("shop", "web");
    writeFileSync(join(conf, "all.yaml"), text);
    const v = await Vipd.ready(["--config", conf, "--state-dir", ""], { token: ADMIN });
    try {
      const etag = (await v.api("/api/v1/config")).headers.get("etag") as string;
      const r = await v.api("/api/v1/config", {
        method: "PUT",
        body: text + SVC("shop", "api"),
        headers: { ...YAML, "if-match": etag },
      });
      expect(r.status).toBe(400);
      expect(JSON.stringify(await r.json())).toContain(
        "is a directory; the API can replace only a single file",
      );
      expect(readFileSync(join(conf, "all.yaml"), "utf8")).toBe(text);
      expect(await v.generation()).toBe(1);
    } finally {
      await v.kill();
    }
  });

  test("SIGKILL during PUT, 20 rounds with a large config: the file is exactly the old or the new text, and it parses", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const state = join(d, "state");
    // Two different valid sets of 600 Services each (~80 KB): validating, writing and applying
    // each takes a moment, so kills land at different stages of the PUT.
    const big = (tag: string) =>
      POOL(["10.10.0.0/20"]) +
      SETTINGS +
      Array.from({ length: 600 }, (_, i) => SVC(`ns-${tag}`, `s${i}`)).join("");
    const texts = [big("a"), big("b")] as const;
    writeFileSync(f, texts[0]);
    let v: Vipd | undefined;
    const outcomes = { old: 0, new: 0 };
    const start = async () => {
      v = await Vipd.ready(["--config", f, "--state-dir", state], { token: ADMIN });
      return v;
    };
    const putNext = async (w: Vipd) => {
      const before = readFileSync(f, "utf8");
      const next = before === texts[0] ? texts[1] : texts[0];
      const etag = (await w.api("/api/v1/config")).headers.get("etag") as string;
      const t0 = performance.now();
      const done = w
        .api("/api/v1/config", { method: "PUT", body: next, headers: { ...YAML, "if-match": etag } })
        .then((r) => ({ status: r.status, ms: performance.now() - t0 }))
        .catch(() => ({ status: 0, ms: performance.now() - t0 }));
      return { before, next, done };
    };
    try {
      // How long one PUT takes on this machine now, to spread the kills over it.
      const w0 = await start();
      const first = await putNext(w0);
      const took = await first.done;
      expect(took.status).toBe(200);
      expect(readFileSync(f, "utf8")).toBe(first.next);
      await w0.kill();
      for (let round = 0; round < 20; round++) {
        const w = await start();
        const { before, next, done } = await putNext(w);
        // From right away to a little after the PUT would have finished.
        await Bun.sleep((took.ms * 1.2 * round) / 19);
        w.proc.kill("SIGKILL");
        await w.kill();
        await done;
        const now = readFileSync(f, "utf8");
        expect(now === before || now === next).toBe(true);
        outcomes[now === before ? "old" : "new"]++;
        expect(configFromText(now, f).ok).toBe(true);
        // The state file is written atomically too: absent, or valid JSON.
        let held = "{}";
        try {
          held = readFileSync(join(state, "assignments.json"), "utf8");
        } catch {}
        expect(() => JSON.parse(held)).not.toThrow();
      }
      console.log(
        `SIGKILL during PUT (one PUT took ${took.ms.toFixed(0)} ms): old text ${outcomes.old} times, new text ${outcomes.new} times`,
      );
    } finally {
      await v?.kill();
    }
  }, 240_000);
});
