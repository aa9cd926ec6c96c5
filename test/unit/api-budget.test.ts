/**
 * Untrusted work has a budget (issue 14): manifest bodies are pre-scanned and parsed in a Bun
 * Worker, one at a time, within size, depth, document, node and time budgets, with bounded
 * output; the worst bodies found by probing the API are refused with JSON, and `/livez` answers
 * while a validation runs. The lockout guards (empty set, no admin token), duplicate tokens, 202
 * for settings that wait for a restart, and the failover body's checks — against the real Daemon
 * where the runtime decides.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { hashToken, type TokenConfig } from "../../src/api/auth.ts";
import { BodyChecker } from "../../src/api/body-check.ts";
import { Daemon } from "../../src/appliance/daemon.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime, VALID_YAML } from "./api-runtime-fake.ts";

const ADMIN = "admin-token-for-budget-tests";
const READER = "read-token-for-budget-tests";
const TOKENS = [
  { name: "ops", role: "admin" as const, hash: hashToken(ADMIN) },
  { name: "dash", role: "read" as const, hash: hashToken(READER) },
];
const auth = (t: string) => ({ Authorization: `Bearer ${t}` });
const yamlHeaders = (t: string) => ({ ...auth(t), "Content-Type": "application/yaml" });

type Json = Record<string, unknown> & {
  error?: string;
  message?: string;
  problems?: { message: string; line: number }[];
};

const checkers: BodyChecker[] = [];
afterAll(() => {
  for (const c of checkers) c.close();
});

function fakeApp(opts: { checker?: BodyChecker } = {}) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("api", { level: "debug", sink: (l) => lines.push(JSON.parse(l)) });
  const checker = opts.checker ?? new BodyChecker();
  checkers.push(checker);
  const rt = new FakeRuntime();
  const app = createApp(rt, { tokens: TOKENS, metricsOpen: true, log, bodyCheck: checker });
  const validate = (body: string, query = "") =>
    app.request(`/api/v1/config/validate${query}`, { method: "POST", headers: yamlHeaders(READER), body });
  return { app, rt, lines, validate, checker };
}

describe("the worst bodies from the issue are refused before the parser runs, with JSON", () => {
  const { validate } = fakeApp();
  const cases: [string, string, string, RegExp][] = [
    ["1 MiB of [", "[".repeat(1 << 20), "TooDeep", /^<request>:1: nesting deeper than 64 levels at line 1$/],
    [
      "--- {} × 149k",
      "--- {}\n".repeat(149_000),
      "TooManyDocuments",
      /more than 20000 YAML documents at line 20001/,
    ],
    [
      "--- × 260k",
      "---\n".repeat(260_000),
      "TooManyDocuments",
      /more than 20000 YAML documents at line 20001/,
    ],
    ["- a × 260k", "- a\n".repeat(260_000), "TooManyNodes", /more than \d+ YAML nodes/],
  ];
  for (const [name, body, error, message] of cases) {
    test(`${name}: 422 ${error}, one problem with its line`, async () => {
      expect(body.length).toBeLessThanOrEqual(1 << 20);
      const res = await validate(body);
      expect(res.status).toBe(422);
      expect(res.headers.get("content-type")).toContain("application/json");
      const j = (await res.json()) as Json;
      expect(j.error).toBe(error);
      expect(j.message).toMatch(message);
      expect(j.problems).toHaveLength(1);
    });
  }
});

describe("output is bounded", () => {
  test("1,000 invalid documents: 200 problems, then one saying how many more", async () => {
    const { validate } = fakeApp();
    const res = await validate("--- {}\n".repeat(1000));
    expect(res.status).toBe(200);
    const j = (await res.json()) as Json & { valid: boolean; omitted: number };
    expect(j.valid).toBe(false);
    expect(j.problems).toHaveLength(201);
    expect(j.omitted).toBe(800);
    expect(j.problems?.[200]?.message).toBe("and 800 more problems");
  });
});

describe("the main thread stays free while a body is validated", () => {
  test("/livez answers while a large validation is still running in the worker", async () => {
    const { app, validate } = fakeApp();
    // Within every budget but slow to parse: 8,000 documents (a second or more on this machine).
    let validated = false;
    const running = Promise.resolve(validate("--- {}\n".repeat(8_000))).then((r) => {
      validated = true;
      return r;
    });
    await Bun.sleep(50); // the body is read and handed to the worker
    for (let i = 0; i < 3; i++) {
      const live = await app.request("/livez");
      expect(live.status).toBe(200);
      expect(await live.json()).toEqual({ status: "ok" });
    }
    expect(validated).toBe(false);
    const res = await running;
    expect(res.status).toBe(200);
    expect(((await res.json()) as Json).problems).toHaveLength(201);
  }, 60_000);
});

describe("time and queue budgets", () => {
  test("a job over its time budget terminates its worker; the next job gets a fresh one", async () => {
    const checker = new BodyChecker();
    checkers.push(checker);
    const slow = await checker.check("--- {}\n".repeat(19_000), { timeoutMs: 1 });
    expect(slow.kind).toBe("timeout");
    const next = await checker.check(VALID_YAML);
    expect(next.kind).toBe("valid");
    expect(checker.counts).toMatchObject({ timeout: 1, valid: 1 });
  }, 60_000);

  test("through the API: 422 ValidationTimeout, nothing changed", async () => {
    const checker = new BodyChecker({ timeoutMs: 1 });
    const { app, rt } = fakeApp({ checker });
    const before = rt.applied;
    const res = await app.request("/api/v1/config", {
      method: "PUT",
      headers: { ...yamlHeaders(ADMIN), "If-Match": "*" },
      body: VALID_YAML,
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as Json).error).toBe("ValidationTimeout");
    expect(rt.applied).toBe(before);
  });

  test("one validation at a time, a short queue, then 503 Busy with Retry-After", async () => {
    const checker = new BodyChecker({ maxWaiting: 1 });
    const { validate } = fakeApp({ checker });
    const slow = "--- {}\n".repeat(2_000);
    const all = await Promise.all([validate(slow), validate(slow), validate(slow)]);
    const statuses = all.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 503]);
    const busy = all.find((r) => r.status === 503)!;
    expect(busy.headers.get("retry-after")).toBe("1");
    expect(((await busy.json()) as Json).error).toBe("Busy");
  }, 60_000);
});

describe("every refusal is JSON, logged and counted", () => {
  test("a body over the limit: 413 JSON, Connection: close, counted by reason", async () => {
    const { app, lines } = fakeApp();
    const res = await app.request("/api/v1/config/validate", {
      method: "POST",
      headers: yamlHeaders(READER),
      body: "a".repeat(1024 * 1024 + 1),
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("connection")).toBe("close");
    expect(((await res.json()) as Json).error).toBe("PayloadTooLarge");
    expect(lines.some((l) => l["message"] === "request refused" && l["error"] === "PayloadTooLarge")).toBe(
      true,
    );
    const metrics = await (await app.request("/metrics")).text();
    expect(metrics).toContain('vipd_api_refusals_total{reason="PayloadTooLarge"} 1');
  });

  test("a flag that is not true or false is a 400", async () => {
    const { validate } = fakeApp();
    const res = await validate(VALID_YAML, "?allowEmpty=yes");
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json).error).toBe("BadRequest");
  });

  test("POST /l2/failover checks that ip is an address and node a node name (400 JSON)", async () => {
    const { app } = fakeApp();
    const post = (body: unknown) =>
      app.request("/api/v1/l2/failover", {
        method: "POST",
        headers: { ...auth(ADMIN), "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    let res = await post({ ip: "not-an-ip" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json).message).toBe("ip: must be an IPv4 or IPv6 address");
    res = await post({ ip: "10.0.0.1", node: "Bad_Name" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Json).message).toMatch(/^node: must be a node name/);
    // A well-formed request reaches the runtime (the fake has no layer-2 election: 409).
    res = await post({ ip: "fd00::1", node: "n2" });
    expect(res.status).toBe(409);
  });
});

// ---- Against the real Daemon ----------------------------------------------------------------

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const settings = (tokens: string, extra = "") => `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata:
  name: n1
spec:
  nodeName: n1${extra}
  api:
    tokens:${tokens}
`;
const adminToken = `
      - name: ops
        role: admin
        hash: ${hashToken(ADMIN)}`;
const readToken = `
      - name: dash
        role: read
        hash: ${hashToken(READER)}`;
const POOL = `---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [10.9.0.0/24]
`;

async function daemonApp(text: string) {
  const d = mkdtempSync(join(tmpdir(), `vipd-api-budget-${process.pid}-`));
  dirs.push(d);
  const file = join(d, "vipd.yaml");
  writeFileSync(file, text);
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("api", { level: "debug", sink: (l) => lines.push(JSON.parse(l)) });
  const daemon = new Daemon({ configPaths: [file], version: "test", log });
  expect((await daemon.reload("start")).ok).toBe(true);
  const tokens = (): TokenConfig[] =>
    (daemon.currentConfig?.nodeSettings?.spec.api.tokens ?? []).map((t) => ({
      name: t.name,
      role: t.role,
      hash: t.hash,
    }));
  const checker = new BodyChecker();
  checkers.push(checker);
  const app = createApp(daemon, { tokens, metricsOpen: true, log, bodyCheck: checker });
  const put = (body: string, query = "") =>
    app.request(`/api/v1/config${query}`, {
      method: "PUT",
      headers: { ...yamlHeaders(ADMIN), "If-Match": "*" },
      body,
    });
  return { app, daemon, file, lines, put };
}

describe("no self-inflicted lockout", () => {
  for (const [name, body] of [
    ["an empty body", ""],
    ["whitespace", "  \n\n"],
    ["comments only", "# nothing here\n"],
    ["a lone ---", "---\n"],
    ["null", "null\n"],
  ] as const) {
    test(`${name}: 422 EmptyConfig, the running set untouched`, async () => {
      const { put, file, daemon } = await daemonApp(settings(adminToken) + POOL);
      const before = readFileSync(file, "utf8");
      const res = await put(body);
      expect(res.status).toBe(422);
      const j = (await res.json()) as Json;
      expect(j.error).toBe("EmptyConfig");
      expect(j.message).toContain("?allowEmpty=true");
      expect(readFileSync(file, "utf8")).toBe(before);
      expect(daemon.services()).toEqual([]);
      expect(daemon.currentConfig?.pools).toHaveLength(1);
    });
  }

  test("with ?allowEmpty=true an empty set still needs ?allowNoAdmin=true, and then applies", async () => {
    const { put, daemon } = await daemonApp(settings(adminToken) + POOL);
    let res = await put("", "?allowEmpty=true");
    expect(res.status).toBe(422);
    expect(((await res.json()) as Json).error).toBe("NoAdminToken");
    res = await put("", "?allowEmpty=true&allowNoAdmin=true");
    // Applied; the node name it started with came from the NodeSettings now gone: 202.
    expect(res.status).toBe(202);
    expect(((await res.json()) as { pendingRestart: string[] }).pendingRestart).toContain(
      "NodeSettings.spec.nodeName",
    );
    expect(daemon.currentConfig?.pools).toEqual([]);
  });

  test("a set that drops the last admin token: 422 NoAdminToken unless ?allowNoAdmin=true", async () => {
    const { put, app } = await daemonApp(settings(adminToken + readToken) + POOL);
    const readOnly = settings(readToken) + POOL;
    let res = await put(readOnly);
    expect(res.status).toBe(422);
    expect(((await res.json()) as Json).error).toBe("NoAdminToken");
    // The dry run predicts it.
    const dry = await app.request("/api/v1/config/validate", {
      method: "POST",
      headers: yamlHeaders(READER),
      body: readOnly,
    });
    const dj = (await dry.json()) as Json & { valid: boolean };
    expect(dj.valid).toBe(false);
    expect(dj.problems?.[0]?.message).toContain("?allowNoAdmin=true");
    res = await put(readOnly, "?allowNoAdmin=true");
    expect(res.status).toBe(200);
  });

  test("a node that never had an admin token may push a set without one", async () => {
    const { app } = await daemonApp(settings(readToken) + POOL);
    // Only a read token is configured, so nobody can PUT at all; validate says the set is fine.
    const res = await app.request("/api/v1/config/validate", {
      method: "POST",
      headers: yamlHeaders(READER),
      body: settings(readToken) + POOL,
    });
    expect(await res.json()).toEqual({ valid: true, problems: [] });
  });
});

describe("duplicate token hashes", () => {
  test("are a validation problem at the duplicate's line; PUT refuses them and changes nothing", async () => {
    const { put, app, daemon } = await daemonApp(settings(adminToken) + POOL);
    const dup = settings(`${adminToken}${adminToken.replace("name: ops", "name: ops2")}`) + POOL;
    const res = await put(dup);
    expect(res.status).toBe(400);
    const j = (await res.json()) as Json;
    expect(j.error).toBe("InvalidConfig");
    const hashLine = dup.split("\n").lastIndexOf(`        hash: ${hashToken(ADMIN)}`) + 1;
    expect(j.problems).toEqual([
      expect.objectContaining({
        line: hashLine,
        field: "spec.api.tokens[1].hash",
        message: "the same token as api.tokens[0] (ops); each token must be listed once",
      }),
    ]);
    expect(daemon.configAdminTokens()).toBe(1);
    // Protected routes keep answering.
    expect((await app.request("/api/v1/status", { headers: auth(ADMIN) })).status).toBe(200);
  });

  test("a token list that holds one anyway (built by hand) is read leniently: no 500, logged once", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger("api", { sink: (l) => lines.push(JSON.parse(l)) });
    const list = [...TOKENS, { name: "again", role: "read" as const, hash: TOKENS[0]!.hash }];
    const app = createApp(new FakeRuntime(), { tokens: () => list, metricsOpen: true, log });
    for (let i = 0; i < 3; i++) {
      const res = await app.request("/api/v1/status", { headers: auth(ADMIN) });
      expect(res.status).toBe(200);
    }
    expect(lines.filter((l) => l["message"] === "API token ignored")).toHaveLength(1);
  });
});

describe("settings that wait for a restart", () => {
  test("PUT answers 202 with pendingRestart, and GET /status lists them", async () => {
    const { put, app } = await daemonApp(settings(adminToken) + POOL);
    let res = await put(settings(adminToken) + POOL.replace("10.9.0.0/24", "10.9.1.0/24"));
    expect(res.status).toBe(200);
    expect(await res.json()).not.toHaveProperty("pendingRestart");
    res = await put(settings(adminToken, "\n  localDelivery: true") + POOL);
    expect(res.status).toBe(202);
    const j = (await res.json()) as { etag: string; pendingRestart: string[] };
    expect(j.pendingRestart).toEqual(["NodeSettings.spec.localDelivery"]);
    expect(res.headers.get("etag")).toBe(`"${j.etag}"`);
    const st = (await (await app.request("/api/v1/status", { headers: auth(ADMIN) })).json()) as {
      pendingRestart: string[];
    };
    expect(st.pendingRestart).toEqual(["NodeSettings.spec.localDelivery"]);
    // Back to what the process started with: nothing waits any more.
    res = await put(settings(adminToken) + POOL);
    expect(res.status).toBe(200);
  });
});

describe("the file reload path gets the same pre-scan", () => {
  test("a file edited to nest too deep is refused with its line; the running set is kept", async () => {
    const { daemon, file } = await daemonApp(settings(adminToken) + POOL);
    const generation = daemon.status().configGeneration;
    const text = `${settings(adminToken)}${POOL}---\nx: ${"[".repeat(100)}\n`;
    writeFileSync(file, text);
    const line = text.split("\n").findIndex((l) => l.startsWith("x: ")) + 1;
    const r = await daemon.reload("SIGHUP");
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      expect.objectContaining({ file, line, message: `nesting deeper than 64 levels at line ${line}` }),
    ]);
    expect(daemon.status().configGeneration).toBe(generation);
    expect(daemon.currentConfig?.pools).toHaveLength(1);
  });
});

describe("the OpenAPI document says all this", () => {
  test("PUT lists 202 and 422 and both flags; validate lists 422 and 503; status has pendingRestart", async () => {
    const { app } = fakeApp();
    const doc = (await (await app.request("/openapi.json", { headers: auth(READER) })).json()) as {
      paths: Record<
        string,
        Record<string, { parameters?: { name: string; in: string }[]; responses: object }>
      >;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    const put = doc.paths["/api/v1/config"]?.["put"];
    expect(Object.keys(put?.responses ?? {})).toEqual(expect.arrayContaining(["200", "202", "413", "422"]));
    const names = (op: typeof put) =>
      (op?.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name);
    expect(names(put).sort()).toEqual(["allowEmpty", "allowNoAdmin"]);
    const validate = doc.paths["/api/v1/config/validate"]?.["post"];
    expect(Object.keys(validate?.responses ?? {})).toEqual(
      expect.arrayContaining(["200", "413", "422", "503"]),
    );
    expect(names(validate).sort()).toEqual(["allowEmpty", "allowNoAdmin"]);
    expect(doc.components.schemas["StatusSummary"]?.properties).toHaveProperty("pendingRestart");
    expect(doc.components.schemas["ApplyResult"]?.properties).toHaveProperty("pendingRestart");
  });
});

describe("dry runs cannot crowd out an admin's PUT", () => {
  test("with the validate queue full (503 Busy), a PUT still goes through", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger("api", { sink: (l) => lines.push(JSON.parse(l)) });
    const rt = new FakeRuntime();
    const app = createApp(rt, { tokens: TOKENS, metricsOpen: true, log, bodyCheck: { maxWaiting: 0 } });
    const slow = "--- {}\n".repeat(2_000);
    const validate = () =>
      app.request("/api/v1/config/validate", { method: "POST", headers: yamlHeaders(READER), body: slow });
    const running = Promise.all([validate(), validate()]);
    const put = await app.request("/api/v1/config", {
      method: "PUT",
      headers: { ...yamlHeaders(ADMIN), "If-Match": "*" },
      body: VALID_YAML,
    });
    expect(put.status).toBe(200);
    expect((await running).map((r) => r.status).sort()).toEqual([200, 503]);
  }, 60_000);
});
