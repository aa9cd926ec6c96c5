/**
 * What the API's HTTP server answers to a request Bun's parser refuses (src/api/node-http.ts):
 * the classification alone, from the parser's error code and the bytes it failed on. The answers
 * on real sockets are in api-socket.test.ts, api-serve.test.ts and api-tls-front.test.ts.
 */

import { describe, expect, test } from "bun:test";
import { classifyParseError } from "../../src/api/node-http.ts";

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
