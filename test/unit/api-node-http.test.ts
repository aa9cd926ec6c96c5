/**
 * What the API's HTTP server answers to a request Bun's parser refuses (src/api/node-http.ts):
 * the classification alone, from the parser's error code and the bytes it failed on. The answers
 * on real sockets are in api-socket.test.ts, api-serve.test.ts and api-tls-front.test.ts; the
 * idle timeout is tested here on a real socket with idleMs 1000.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { classifyParseError } from "../../src/api/node-http.ts";
import { type ApiServer, serveApi } from "../../src/api/serve.ts";

describe("classifyParseError", () => {
  test("an unknown method that is a token: 501 naming it", () => {
    for (const m of ["FOO", "get", "M-X", "BREW"]) {
      const c = classifyParseError("HPE_INVALID_METHOD", `${m} /x HTTP/1.1\r\n`, false);
      expect(c).toMatchObject({ status: 501, error: "NotImplemented", method: m });
      expect(c.message).toContain(`method "${m}" is not implemented`);
    }
  });

  test("pipelined: 501 without a method (the bytes may start with earlier requests)", () => {
    const c = classifyParseError("HPE_INVALID_METHOD", "GET /a HTTP/1.1\r\n\r\nFOO /b HTTP/1.1\r\n", true);
    expect(c.status).toBe(501);
    expect(c.method).toBeUndefined();
  });

  test("not a token, no space, or a 'method' over 64 bytes: 400", () => {
    for (const raw of [
      "\u0016\u0003\u0001\u0000 x",
      "NOSPACE",
      "A(B) /x HTTP/1.1",
      `${"A".repeat(65)} /x`,
      "",
    ]) {
      expect(classifyParseError("HPE_INVALID_METHOD", raw, false)).toMatchObject({
        status: 400,
        error: "BadRequest",
      });
    }
  });

  test("headers over the limit: 431; any other parse error: 400", () => {
    expect(classifyParseError("HPE_HEADER_OVERFLOW", "GET / HTTP/1.1\r\n", false).status).toBe(431);
    for (const code of ["HPE_INVALID_VERSION", "HPE_INVALID_HEADER_TOKEN", undefined])
      expect(classifyParseError(code, "GET / HTTP/9\r\n", false).status).toBe(400);
  });
});

describe("the HTTP server on a real socket (idleMs 1000): the idle timeout counts only while the client owes bytes; no-content answers", () => {
  let server: ApiServer;
  beforeAll(() => {
    server = serveApi(
      {
        // /slow answers after 2.5 s, once the body (if any) is read whole.
        fetch: async (req) => {
          if (new URL(req.url).pathname === "/etag")
            return new Response(null, { status: 304, headers: { etag: '"v1"' } });
          const body = req.body ? await req.text() : "";
          if (new URL(req.url).pathname === "/slow") await Bun.sleep(2500);
          return new Response(`got ${body.length}`);
        },
      },
      { listen: "127.0.0.1:0", idleMs: 1000 },
    );
  });
  afterAll(async () => {
    await server.stop();
  });

  /** Writes `chunks` (`gapMs` apart) and collects until the server closes or `ms` pass. */
  function talk(chunks: string[], gapMs: number, ms: number): Promise<{ text: string; closedAt: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      let text = "";
      const timer = setTimeout(() => resolve({ text, closedAt: -1 }), ms);
      Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: {
          async open(s) {
            for (const c of chunks) {
              s.write(c);
              await Bun.sleep(gapMs);
            }
          },
          data(_s, d) {
            text += new TextDecoder().decode(d);
          },
          close() {
            clearTimeout(timer);
            resolve({ text, closedAt: performance.now() - t0 });
          },
          error() {},
        },
      }).catch(reject);
    });
  }

  test("an answer that takes longer than the idle timeout is not cut (GET, and POST with a body)", async () => {
    const get = await talk(["GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], 0, 8000);
    expect(get.text).toContain("HTTP/1.1 200");
    expect(get.text).toEndWith("got 0");
    const post = await talk(
      ["POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"],
      0,
      8000,
    );
    expect(post.text).toContain("HTTP/1.1 200");
    expect(post.text).toEndWith("got 5");
  }, 20_000);

  test("after a long answer the connection carries the next request, then closes when idle", async () => {
    const a = await talk(
      ["GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"],
      3000,
      10_000,
    );
    expect(a.text.match(/HTTP\/1\.1 200/g)?.length).toBe(2);
    // Closed about 1 s after the second answer (written at ~3 s), not left open.
    expect(a.closedAt).toBeGreaterThan(3000);
    expect(a.closedAt).toBeLessThan(9000);
  }, 20_000);

  test("304 goes out without a Content-Length and without content", async () => {
    const a = await talk(["GET /etag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], 0, 5000);
    expect(a.text).toStartWith("HTTP/1.1 304 ");
    expect(a.text.toLowerCase()).not.toContain("content-length");
    expect(a.text.toLowerCase()).toContain('etag: "v1"');
    expect(a.text.endsWith("\r\n\r\n")).toBe(true);
  });

  test("a body that stops arriving is cut after the idle timeout, unanswered", async () => {
    const a = await talk(["POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-this"], 0, 8000);
    expect(a.closedAt).toBeGreaterThan(0);
    expect(a.text).not.toContain("got ");
  }, 20_000);
});
