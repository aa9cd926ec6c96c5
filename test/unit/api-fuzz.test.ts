/**
 * Random requests against the API (fast-check, bounded runs): whatever the method, path,
 * headers and body, the answer is never a 5xx, every refusal is a JSON `{ error, message }`,
 * and only a 200 to a PUT may change the configuration.
 */

import { expect, test } from "bun:test";
import fc from "fast-check";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { RULES } from "../../src/api/routes/index.ts";
import { ErrorBody } from "../../src/api/schemas.ts";
import { createLogger } from "../../src/util/log.ts";
import { BAD_SYNTAX_YAML, FakeRuntime, INVALID_YAML, VALID_YAML } from "./api-runtime-fake.ts";

const ADMIN = "fuzz-admin";
const READER = "fuzz-reader";

const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});
const pick = <T>(...xs: T[]) => fc.constantFrom(...xs);

const arbRequest = fc.record({
  method: pick("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"),
  path: fc.oneof(
    pick(...RULES.map((r) => r.path)),
    pick(
      "/api/v1",
      "/api/v1/",
      "//",
      "/api/v1/%73tatus",
      "/api/v1/config/",
      "/%E0%A4%A",
      "/api/v1/../v1/status",
    ),
    printable.map((s) => `/${encodeURIComponent(s)}`),
  ),
  auth: fc.option(fc.oneof(pick(`Bearer ${ADMIN}`, `Bearer ${READER}`, "Bearer", "Basic eDp5"), printable), {
    nil: undefined,
  }),
  accept: fc.option(
    fc.oneof(
      pick("application/json", "text/html", "*/*;q=0", "application/yaml", "application/json;q=abc"),
      printable,
    ),
    { nil: undefined },
  ),
  contentType: fc.option(
    fc.oneof(
      pick("application/yaml", "text/yaml; charset=utf-16", "application/json", 'application/yaml; x="'),
      printable,
    ),
    { nil: undefined },
  ),
  ifMatch: fc.option(fc.oneof(pick("*", "CURRENT", 'W/"x"', '""', ","), printable), { nil: undefined }),
  ifNoneMatch: fc.option(fc.oneof(pick("*", "CURRENT"), printable), { nil: undefined }),
  body: fc.oneof(
    pick(
      VALID_YAML.replace("192.168.10.0/24", "192.168.77.0/24"),
      INVALID_YAML,
      BAD_SYNTAX_YAML,
      "",
      "---\n---\n",
    ),
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }),
  ),
});

test("random requests: never 5xx, refusals are JSON, and only an accepted PUT changes the configuration", async () => {
  await fc.assert(
    fc.asyncProperty(arbRequest, async (r) => {
      const rt = new FakeRuntime();
      const app = createApp(rt, {
        tokens: [
          { role: "admin", hash: hashToken(ADMIN) },
          { role: "read", hash: hashToken(READER) },
        ],
        metricsOpen: false,
        bodyLimit: 4096,
        log: createLogger("api", { sink: () => {} }),
      });
      const before = rt.config();
      const current = `"${before.etag}"`;
      const headers: Record<string, string> = {};
      if (r.auth !== undefined) headers["Authorization"] = r.auth;
      if (r.accept !== undefined) headers["Accept"] = r.accept;
      if (r.contentType !== undefined) headers["Content-Type"] = r.contentType;
      if (r.ifMatch !== undefined) headers["If-Match"] = r.ifMatch === "CURRENT" ? current : r.ifMatch;
      if (r.ifNoneMatch !== undefined)
        headers["If-None-Match"] = r.ifNoneMatch === "CURRENT" ? current : r.ifNoneMatch;
      const init: RequestInit = { method: r.method, headers };
      if (r.method !== "GET" && r.method !== "HEAD") init.body = r.body;
      const res = await app.request(`http://vipd.test${r.path}`, init);
      expect(res.status).toBeLessThan(500);
      if (res.status >= 400 && r.method !== "HEAD") {
        expect(res.headers.get("content-type")).toStartWith("application/json");
        ErrorBody.parse(await res.json());
      }
      const changed = rt.config().etag !== before.etag;
      if (changed) {
        expect(r.method).toBe("PUT");
        expect(res.status).toBe(200);
      }
    }),
    { numRuns: 400, seed: 4242 },
  );
}, 60_000);
