/**
 * Mutual TLS through vipd's own TLS front (src/api/tls-front.ts), on real loopback sockets with
 * certificates made by openssl for this run: a client without a certificate, with one from another
 * CA, with an expired or a not-yet-valid one gets no answer from any route — not even to a request
 * written right after its side of the TLS 1.3 handshake, before the server has checked the
 * certificate — and each refusal is logged once (peer address, reason) and counted in
 * vipd_api_tls_rejected_total{reason}. A valid certificate reaches every route; bytes pass both
 * ways intact (8 MiB each way, so the front's backpressure is exercised); the first request with a
 * method Bun does not know gets 501 JSON; HTTP/1.0 without Host is routed by its path.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { type ApiServer, type FetchApp, serveApi } from "../../src/api/serve.ts";
import { type FrontEvent, rejectReason, startTlsFront } from "../../src/api/tls-front.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const TOKEN = "tls-front-admin-token";
let dir = "";
const pem = (name: string) => readFileSync(join(dir, name), "utf8");

function openssl(...args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/** A CA named `name` (name.pem, name.key) with an `openssl ca` database for odd validity dates. */
function makeCa(name: string): void {
  openssl(
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
  );
  mkdirSync(join(dir, `${name}.db`));
  writeFileSync(join(dir, `${name}.db/index.txt`), "");
  writeFileSync(join(dir, `${name}.db/serial`), "01\n");
  writeFileSync(
    join(dir, `${name}.cnf`),
    `[ca]\ndefault_ca = x\n[x]\ndatabase = ${name}.db/index.txt\nnew_certs_dir = ${name}.db\nserial = ${name}.db/serial\n` +
      "default_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
  );
}

/** A certificate `name` signed by `ca`, valid from `start` to `end` (openssl's YYYYMMDDHHMMSSZ). */
function issue(ca: string, name: string, start: string, end: string, ext?: string): void {
  openssl("req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  const extArgs: string[] = [];
  if (ext) {
    writeFileSync(join(dir, `${name}.ext`), `[e]\n${ext}\n`);
    extArgs.push("-extfile", `${name}.ext`, "-extensions", "e");
  }
  openssl(
    "ca",
    "-batch",
    "-config",
    `${ca}.cnf`,
    "-cert",
    `${ca}.pem`,
    "-keyfile",
    `${ca}.key`,
    "-in",
    `${name}.csr`,
    "-out",
    `${name}.pem`,
    "-startdate",
    start,
    "-enddate",
    end,
    "-notext",
    ...extArgs,
  );
}

const stamp = (d: Date) => `${d.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
const DAY = 86_400_000;

const logs: Record<string, unknown>[] = [];
let server: ApiServer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `vipd-tls-front-${process.pid}-`));
  const now = Date.now();
  makeCa("ca");
  makeCa("other");
  issue(
    "ca",
    "srv",
    stamp(new Date(now - DAY)),
    stamp(new Date(now + 2 * DAY)),
    "subjectAltName=IP:127.0.0.1",
  );
  issue("ca", "cli", stamp(new Date(now - DAY)), stamp(new Date(now + 2 * DAY)));
  issue("other", "stranger", stamp(new Date(now - DAY)), stamp(new Date(now + 2 * DAY)));
  issue("ca", "expired", "20200101000000Z", "20200102000000Z");
  issue("ca", "future", stamp(new Date(now + 30 * DAY)), stamp(new Date(now + 60 * DAY)));

  const app = createApp(new FakeRuntime(), {
    tokens: [{ role: "admin", hash: hashToken(TOKEN) }],
    metricsOpen: true,
    log: createLogger("api", { sink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) }),
  });
  server = serveApi(app, {
    listen: "127.0.0.1:0",
    tls: { cert: pem("srv.pem"), key: pem("srv.key"), ca: pem("ca.pem"), requestClientCert: true },
  });
}, 30_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface RawTls {
  /** Everything the server sent after the handshake. */
  text: string;
  /** The client's own port (the server logs `127.0.0.1:<it>`). */
  localPort: number | undefined;
  error: string | undefined;
}

/**
 * Connects with node:tls as `who` (a certificate name, or none), writes `request` as soon as the
 * client's side of the handshake is done, and reads until the server closes.
 */
function rawTls(
  who: string | undefined,
  request: string | string[],
  opts: { maxVersion?: "TLSv1.2" } = {},
): Promise<RawTls> {
  return new Promise((resolve) => {
    let text = "";
    let error: string | undefined;
    let localPort: number | undefined;
    const s = tls.connect({
      host: "127.0.0.1",
      port: server.port,
      ...opts,
      ca: pem("ca.pem"),
      ...(who ? { cert: pem(`${who}.pem`), key: pem(`${who}.key`) } : {}),
    });
    const timer = setTimeout(() => s.destroy(), 10_000);
    s.on("secureConnect", async () => {
      localPort = s.localPort;
      for (const part of typeof request === "string" ? [request] : request) {
        s.write(part);
        await Bun.sleep(20);
      }
    });
    s.on("data", (d: Buffer) => {
      text += d.toString("latin1");
    });
    s.on("error", (e: Error & { code?: string }) => {
      error = e.code ?? e.message;
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ text, localPort, error });
    });
  });
}

const GET = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`;
const statusOf = (text: string) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
const bodyOf = (text: string) =>
  JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as Record<string, unknown>;

async function fetchAs(who: string, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(new URL(path, server.url), {
    ...init,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(init.headers ?? {}) },
    tls: { ca: pem("ca.pem"), cert: pem(`${who}.pem`), key: pem(`${who}.key`) },
  } as RequestInit);
}

async function metric(reason: string): Promise<number> {
  const text = await (await fetchAs("cli", "metrics")).text();
  const m = new RegExp(`^vipd_api_tls_rejected_total\\{reason="${reason}"\\} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

const refusals = () => logs.filter((l) => l.message === "client certificate refused");

describe("mutual TLS through vipd's TLS front", () => {
  test("a valid client certificate reaches the routes", async () => {
    for (const path of ["livez", "api/v1/status", "metrics", "openapi.json"]) {
      const res = await fetchAs("cli", path);
      await res.arrayBuffer();
      expect(res.status, path).toBe(200);
    }
    const a = await rawTls("cli", GET("/api/v1/status"));
    expect(statusOf(a.text)).toBe(200);
    expect(refusals()).toEqual([]);
  });

  const cases: [string | undefined, string, string][] = [
    [undefined, "no certificate", "no_certificate"],
    ["stranger", "a certificate from another CA", "untrusted"],
    ["expired", "an expired certificate", "expired"],
    ["future", "a certificate not valid yet", "not_yet_valid"],
  ];
  for (const [who, what, reason] of cases) {
    test(`${what}: no answer from any route, one log line with the peer and "${reason}", counted`, async () => {
      const before = await metric(reason);
      const logged = refusals().length;
      for (const path of ["/livez", "/api/v1/status", "/metrics", "/api/v1/config"]) {
        // Written as soon as the client's side of the handshake is done (TLS 1.3 lets it write
        // before the server has checked its certificate): never answered.
        const a = await rawTls(who, GET(path));
        expect(a.text, `${what} ${path}`).toBe("");
        const res = await fetch(new URL(path.slice(1), server.url), {
          headers: { Authorization: `Bearer ${TOKEN}` },
          tls: { ca: pem("ca.pem"), ...(who ? { cert: pem(`${who}.pem`), key: pem(`${who}.key`) } : {}) },
        } as RequestInit).then(
          (r) => r.status,
          (e: { code?: string }) => e.code ?? "error",
        );
        expect(typeof res, `${what} ${path}: ${res}`).toBe("string");
        const mine = refusals().slice(logged);
        expect(mine.at(-1)).toMatchObject({ level: "warn", reason });
        if (a.localPort !== undefined)
          expect(
            mine.some((l) => l.peer === `127.0.0.1:${a.localPort}`),
            JSON.stringify(mine),
          ).toBe(true);
      }
      // TLS 1.2 too (the client sends its certificate inside the handshake).
      const old = await rawTls(who, GET("/livez"), { maxVersion: "TLSv1.2" });
      expect(old.text).toBe("");
      // Two connections per path and one over TLS 1.2: one line and one count each.
      const mine = refusals().slice(logged);
      expect(mine.length).toBe(9);
      for (const l of mine) expect(l.peer).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(typeof mine[0]!.detail).toBe("string");
      expect(await metric(reason)).toBe(before + 9);
    }, 30_000);
  }
});

describe("what the front forwards", () => {
  test("plain HTTP sent to the TLS port: no answer, counted as plain_http", async () => {
    const before = await metric("plain_http");
    const text = await new Promise<string>((resolve) => {
      let t = "";
      Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: {
          open(s) {
            s.write("GET /livez HTTP/1.0\r\n\r\n");
          },
          data(_s, d) {
            t += d.toString("latin1");
          },
          close: () => resolve(t),
          error: () => resolve(t),
        },
      });
    });
    expect(text).not.toContain("HTTP/1.");
    expect(refusals().at(-1)).toMatchObject({ reason: "plain_http" });
    expect(await metric("plain_http")).toBe(before + 1);
  });

  test("a method Bun does not know gets 501 JSON (first request of a connection), logged and counted", async () => {
    for (const m of ["FOO", "get", "BREW"]) {
      const a = await rawTls("cli", `${m} /livez HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(statusOf(a.text), m).toBe(501);
      expect(bodyOf(a.text)).toEqual({
        error: "NotImplemented",
        message: `method "${m}" is not implemented (methods are case-sensitive: GET, HEAD, POST, PUT...)`,
      });
      expect(a.text).toContain("\r\nConnection: close\r\n");
      expect(a.text).toContain("\r\nContent-Type: application/json\r\n");
    }
    expect(logs.filter((l) => l.error === "NotImplemented").map((l) => l.method)).toEqual([
      "FOO",
      "get",
      "BREW",
    ]);
    const text = await (await fetchAs("cli", "metrics")).text();
    expect(text).toMatch(/^vipd_api_requests_total\{method="other",route="unmatched",code="501"\} 3$/m);
  });

  test("a later request of a kept-alive connection with such a method: 501 JSON from the HTTP server behind the front", async () => {
    const a = await rawTls("cli", [
      "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
      "FOO /livez HTTP/1.1\r\nHost: x\r\n\r\n",
    ]);
    expect(a.text.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 501"]);
    expect(a.text).toContain('{"error":"NotImplemented","message":"method \\"FOO\\" is not implemented');
    expect(logs.filter((l) => l.error === "NotImplemented").at(-1)).toMatchObject({ method: "FOO" });
  });

  test("a method Bun knows but the route does not take: the app's 405 JSON", async () => {
    const a = await rawTls("cli", "PROPFIND /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect(statusOf(a.text)).toBe(405);
    expect(bodyOf(a.text)).toEqual({
      error: "MethodNotAllowed",
      message: "PROPFIND is not allowed on /livez",
    });
  });

  test("HTTP/1.0 without Host is routed by its path; a split first line is still checked", async () => {
    const a = await rawTls("cli", "GET /readyz HTTP/1.0\r\n\r\n");
    expect(statusOf(a.text)).toBe(200);
    expect(bodyOf(a.text)).toEqual({ ready: true, reasons: [] });
    const b = await rawTls("cli", "GET /nope HTTP/1.0\r\n\r\n");
    expect(bodyOf(b.text)).toEqual({ error: "NotFound", message: "no route /nope" });
    // The method arrives in pieces: the front waits for the space before it decides.
    const c = await rawTls("cli", ["G", "ET /livez HTTP/1.0\r\n\r\n"]);
    expect(bodyOf(c.text)).toEqual({ status: "ok" });
    const d = await rawTls("cli", ["F", "O", "O /livez HTTP/1.0\r\n\r\n"]);
    expect(statusOf(d.text)).toBe(501);
  });

  test("several requests on one kept-alive connection", async () => {
    const a = await rawTls(
      "cli",
      "GET /livez HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    expect(a.text.match(/HTTP\/1\.1 200 /g)?.length).toBe(3);
  });

  test("an oversized body still gets the app's JSON 413", async () => {
    const res = await fetchAs("cli", "api/v1/config", {
      method: "PUT",
      body: "#".repeat(2 * 1024 * 1024),
      headers: { "Content-Type": "application/yaml", "If-Match": "*" },
    }).then(
      async (r) => [r.status, ((await r.json()) as { error: string }).error],
      (e: { code?: string }) => e.code ?? "error",
    );
    expect([[413, "PayloadTooLarge"], "ECONNRESET"]).toContainEqual(res);
  });
});

describe("the front alone", () => {
  test("a taken port: the error names the address, like Bun.serve's", () => {
    expect(() =>
      serveApi(
        { fetch: () => new Response("") },
        {
          listen: `127.0.0.1:${server.port}`,
          tls: { cert: pem("srv.pem"), key: pem("srv.key"), ca: pem("ca.pem"), requestClientCert: true },
        },
      ),
    ).toThrow(`cannot listen on 127.0.0.1:${server.port}`);
  });

  test("8 MiB each way pass intact (backpressure both ways)", async () => {
    const big = new Uint8Array(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const echo: FetchApp = {
      fetch: async (req) => {
        const got = new Uint8Array(await req.arrayBuffer());
        const h = createHash("sha256").update(got).digest("hex");
        return new Response(big, { headers: { "x-got": `${got.length} ${h}` } });
      },
    };
    const s = serveApi(echo, {
      listen: "127.0.0.1:0",
      tls: { cert: pem("srv.pem"), key: pem("srv.key"), ca: pem("ca.pem"), requestClientCert: true },
    });
    try {
      const body = big.map((b, i) => (b + i) & 0xff);
      const res = await fetch(new URL("echo", s.url), {
        method: "POST",
        body,
        tls: { ca: pem("ca.pem"), cert: pem("cli.pem"), key: pem("cli.key") },
      } as RequestInit);
      const back = new Uint8Array(await res.arrayBuffer());
      expect(res.headers.get("x-got")).toBe(
        `${body.length} ${createHash("sha256").update(body).digest("hex")}`,
      );
      expect(back.length).toBe(big.length);
      expect(Buffer.compare(back, big)).toBe(0);
    } finally {
      await s.stop();
    }
  }, 60_000);

  test("a client that never starts its handshake is cut off and counted as handshake_timeout", async () => {
    const events: FrontEvent[] = [];
    Bun.serve({ unix: join(dir, "unused.sock"), fetch: () => new Response("x") }).unref();
    const f = startTlsFront({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: pem("srv.pem"), key: pem("srv.key"), ca: pem("ca.pem") },
      upstream: join(dir, "unused.sock"),
      onEvent: (e) => events.push(e),
      handshakeTimeout: 1,
    });
    try {
      const closed = await new Promise<boolean>((resolve) => {
        Bun.connect({
          hostname: "127.0.0.1",
          port: f.port,
          socket: { data() {}, close: () => resolve(true), error: () => resolve(true) },
        });
      });
      expect(closed).toBe(true);
      expect(events).toEqual([
        expect.objectContaining({
          kind: "tlsRejected",
          reason: "handshake_timeout",
        }) as unknown as FrontEvent,
      ]);
    } finally {
      f.stop();
    }
  });

  test("reasons come from OpenSSL's verification codes", () => {
    expect(
      rejectReason({
        code: "EPROTO",
        message: "error:100000c0:SSL routines:OPENSSL_internal:PEER_DID_NOT_RETURN_A_CERTIFICATE",
      }),
    ).toBe("no_certificate");
    expect(rejectReason({ code: "CERT_HAS_EXPIRED" })).toBe("expired");
    expect(rejectReason({ code: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" })).toBe("untrusted");
    expect(rejectReason({ code: "CERT_REVOKED" })).toBe("revoked");
    expect(
      rejectReason({ code: "EPROTO", message: "error:1000009c:SSL routines:OPENSSL_internal:HTTP_REQUEST" }),
    ).toBe("plain_http");
    expect(rejectReason({ code: "SOMETHING_NEW" })).toBe("other");
    expect(rejectReason(null)).toBe("other");
  });
});
