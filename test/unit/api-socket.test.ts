/**
 * What reaches the API over a real socket (serveApi on loopback), written byte by byte with a raw
 * TCP client, because `fetch` and `new Request` cannot send these requests: HTTP/1.0 without a
 * Host header (HAProxy's default health check), methods outside the route table and outside Bun's
 * parser table, bytes that are not HTTP, oversized headers and bodies declared or streamed, and
 * the worst body while `/livez` is asked on another connection. Every answer is JSON.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { BodyChecker } from "../../src/api/body-check.ts";
import { type ApiServer, serveApi } from "../../src/api/serve.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const READER = "read-token-for-socket-tests";
let server: ApiServer;
const logs: Record<string, unknown>[] = [];
const checker = new BodyChecker();

beforeAll(() => {
  const app = createApp(new FakeRuntime(), {
    tokens: [{ name: "dash", role: "read", hash: hashToken(READER) }],
    metricsOpen: true,
    log: createLogger("api", { sink: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) }),
    bodyCheck: checker,
  });
  server = serveApi(app, { listen: "127.0.0.1:0" });
});
afterAll(async () => {
  checker.close();
  await server.stop();
});

interface RawAnswer {
  status: number | null;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection. */
  closed: boolean;
  raw: string;
}

/**
 * Writes `chunks` on a fresh TCP connection (`gapMs` apart) and reads until the server closes it
 * or `ms` pass.
 */
function raw(chunks: (string | Uint8Array)[], ms = 5000, gapMs = 0): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    let text = "";
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const [head = "", ...rest] = text.split("\r\n\r\n");
      const lines = head.split("\r\n");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: m ? Number(m[1]) : null, headers, body: rest.join("\r\n\r\n"), closed, raw: text });
    };
    const timer = setTimeout(() => {
      finish(false);
      sock?.end();
    }, ms);
    let sock: { end(): void } | undefined;
    Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        async open(s) {
          sock = s;
          for (const c of chunks) {
            // write() takes what the socket buffer has room for; the rest is written after.
            let rest = typeof c === "string" ? new TextEncoder().encode(c) : c;
            for (;;) {
              const n = s.write(rest);
              if (n >= rest.length || n < 0) break;
              rest = rest.subarray(n);
              await Bun.sleep(1);
            }
            await Bun.sleep(gapMs);
          }
        },
        data(_s, d) {
          text += new TextDecoder().decode(d);
        },
        close() {
          finish(true);
        },
        error(_s, e) {
          if (!done) reject(e);
        },
      },
    }).catch(reject);
  });
}

const json = (a: RawAnswer) => JSON.parse(a.body) as Record<string, unknown>;

describe("requests without a Host header are routed by their path", () => {
  test("HTTP/1.0 GET /readyz, /livez and an unknown path", async () => {
    const ready = await raw(["GET /readyz HTTP/1.0\r\n\r\n"]);
    expect(ready.status).toBe(200);
    expect(json(ready)).toEqual({ ready: true, reasons: [] });
    const live = await raw(["GET /livez HTTP/1.0\r\n\r\n"]);
    expect(json(live)).toEqual({ status: "ok" });
    const none = await raw(["GET /nope?x=1 HTTP/1.0\r\n\r\n"]);
    expect(none.status).toBe(404);
    expect(json(none)).toEqual({ error: "NotFound", message: "no route /nope" });
  });

  test("HTTP/1.1 without Host: 400 JSON, as RFC 9112 §3.2 requires, logged and counted", async () => {
    const a = await raw(["GET /readyz HTTP/1.1\r\n\r\n"]);
    expect(a.status).toBe(400);
    expect(a.headers["connection"]).toBe("close");
    expect(json(a)).toEqual({ error: "BadRequest", message: "an HTTP/1.1 request needs a Host header" });
    expect(a.closed).toBe(true);
    expect(logs.filter((l) => l.message === "request refused" && l.status === 400).at(-1)?.detail).toBe(
      "HTTP/1.1 request without a Host header",
    );
  });
});

describe("methods", () => {
  test("a method Bun knows but no route takes: 405 JSON with Allow", async () => {
    for (const m of ["PROPFIND", "TRACE", "DELETE", "QUERY"]) {
      const a = await raw([`${m} /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
      expect(a.status).toBe(405);
      expect(a.headers["allow"]).toBe("GET, HEAD");
      expect(json(a)).toEqual({ error: "MethodNotAllowed", message: `${m} is not allowed on /livez` });
    }
  });

  test("a method outside Bun's parser table gets 501 JSON, is logged with the peer, and counted (oven-sh/bun#6556)", async () => {
    const before = await metric501();
    for (const m of ["FOO", "get", "BREW"]) {
      const a = await raw([`${m} /livez HTTP/1.1\r\nHost: x\r\n\r\n`]);
      expect(a.status, m).toBe(501);
      expect(a.headers["content-type"]).toBe("application/json");
      expect(a.headers["connection"]).toBe("close");
      expect(json(a)).toEqual({
        error: "NotImplemented",
        message: `method "${m}" is not implemented (methods are case-sensitive: GET, HEAD, POST, PUT...)`,
      });
      expect(a.closed).toBe(true);
    }
    const refused = logs.filter((l) => l.message === "request refused" && l.status === 501);
    expect(refused.slice(-3).map((l) => l.method)).toEqual(["FOO", "get", "BREW"]);
    expect(String(refused.at(-1)?.peer)).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await metric501()).toBe(before + 3);
  });

  test("on a kept-alive connection: the requests before it are answered, then 501 JSON", async () => {
    // 200 ms apart: each request is answered before the next is written (not pipelined).
    const a = await raw(
      [
        "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        "FOO /livez HTTP/1.1\r\nHost: x\r\n\r\n",
      ],
      5000,
      200,
    );
    expect(a.raw.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 501"]);
    expect(a.raw).toContain('"error":"NotImplemented"');
    expect(a.closed).toBe(true);
  });

  test("pipelined behind a request still being answered: that answer first, then 501 JSON", async () => {
    // One write: Bun's parser refuses the whole batch at FOO, after dispatching the first GET.
    const a = await raw(["GET /livez HTTP/1.1\r\nHost: x\r\n\r\nFOO /livez HTTP/1.1\r\nHost: x\r\n\r\n"]);
    const codes = a.raw.match(/HTTP\/1\.1 \d{3}/g) ?? [];
    expect(codes.at(-1)).toBe("HTTP/1.1 501");
    expect(codes.slice(0, -1).every((c) => c === "HTTP/1.1 200")).toBe(true);
    expect(a.raw.endsWith("}")).toBe(true);
    expect(a.closed).toBe(true);
  });

  test("bytes that are not HTTP (a TLS hello on the plain port): 400 JSON", async () => {
    const hello = new Uint8Array([
      0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 13, 10, 13, 10,
    ]);
    const a = await raw([hello]);
    expect(a.status).toBe(400);
    expect(json(a)).toEqual({
      error: "BadRequest",
      message: "not an HTTP/1.1 request this server can parse",
    });
    expect(a.closed).toBe(true);
  });

  test("headers over the limit: 431 JSON", async () => {
    const a = await raw([`GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`]);
    expect(a.status).toBe(431);
    expect(json(a)).toEqual({
      error: "HeadersTooLarge",
      message: "the request's headers exceed the size limit",
    });
    expect(logs.some((l) => l.message === "request refused" && l.status === 431)).toBe(true);
  });

  test("an absolute-form target is routed by its path, not by the host it names", async () => {
    const a = await raw([
      "GET http://elsewhere.example/readyz?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    expect(a.status).toBe(200);
    expect(json(a)).toEqual({ ready: true, reasons: [] });
  });

  test("a body the route does not read is discarded; the connection carries the next request", async () => {
    const body = new Uint8Array(512 * 1024);
    const a = await raw([
      `POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`,
      body,
      "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    expect(a.raw.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 405", "HTTP/1.1 200"]);
  });

  test("HEAD: headers only, no body", async () => {
    const a = await raw(["HEAD /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    expect(a.status).toBe(200);
    expect(a.body).toBe("");
  });
});

async function metric501(): Promise<number> {
  const text = await (await fetch(`${server.url}metrics`)).text();
  const m = /^vipd_api_requests_total\{method="other",route="unmatched",code="501"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

describe("oversized bodies get the app's JSON 413, not Bun's bare one", () => {
  const head = (extra: string) =>
    `POST /api/v1/config/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${READER}\r\nContent-Type: application/yaml\r\n${extra}\r\n`;

  test("declared: refused before the body is read, and the connection closes", async () => {
    const a = await raw([head("Content-Length: 2097152\r\n")]);
    expect(a.status).toBe(413);
    expect(a.headers["connection"]).toBe("close");
    expect(json(a)).toMatchObject({ error: "PayloadTooLarge" });
    expect(a.closed).toBe(true);
  });

  test("declared far above Bun's own limit (100 MiB): still the app's JSON", async () => {
    const a = await raw([head("Content-Length: 104857600\r\n")]);
    expect(a.status).toBe(413);
    expect(json(a)).toMatchObject({ error: "PayloadTooLarge" });
  });

  test("streamed (chunked): refused once it passes the limit", async () => {
    const chunk = `10000\r\n${"a".repeat(0x10000)}\r\n`;
    const a = await raw([head("Transfer-Encoding: chunked\r\n"), ...Array.from({ length: 24 }, () => chunk)]);
    expect(a.status).toBe(413);
    expect(json(a)).toMatchObject({ error: "PayloadTooLarge" });
  });
});

describe("the worst body over a socket", () => {
  test("1 MiB of [ is refused with JSON; /livez answers on another connection meanwhile", async () => {
    const body = "[".repeat(1 << 20);
    const pending = raw([head1(body.length), body], 60_000);
    const live = await raw(["GET /livez HTTP/1.0\r\n\r\n"]);
    expect(json(live)).toEqual({ status: "ok" });
    const a = await pending;
    expect(a.status).toBe(422);
    expect(json(a)).toMatchObject({
      error: "TooDeep",
      message: "<request>:1: nesting deeper than 64 levels at line 1",
    });
  }, 60_000);
});

function head1(length: number): string {
  return `POST /api/v1/config/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${READER}\r\nContent-Type: application/yaml\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;
}
