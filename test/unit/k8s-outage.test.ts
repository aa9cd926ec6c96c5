/**
 * API-server failures for people (src/k8s/outage.ts): plain words instead of Bun's fetch errors,
 * and a warning that repeats at most once a minute, with a count, while a failure lasts.
 */
import { describe, expect, test } from "bun:test";
import { KubeError } from "../../src/k8s/client.ts";
import { plainError, RateLimitedLog } from "../../src/k8s/outage.ts";
import { createLogger } from "../../src/util/log.ts";

const SERVER = "https://10.0.0.1:6443";

/** The error Bun's fetch gives for a refused connection (seen from node-fetch under Bun 1.4.5). */
async function refused(): Promise<unknown> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  try {
    await fetch(`https://127.0.0.1:${port}/`);
  } catch (e) {
    return e;
  }
  throw new Error("the connection was not refused");
}

describe("plainError", () => {
  test("a refused connection, as Bun reports it, reads as plain words with the server", async () => {
    const e = await refused();
    expect(String((e as Error).message)).toContain("ECONNREFUSED");
    expect(plainError(e, SERVER)).toBe(
      `cannot reach the Kubernetes API server at ${SERVER}: connection refused`,
    );
  });

  test("other network failures, TLS failures and API answers", () => {
    const err = (code: string, message = code) => Object.assign(new TypeError(message), { code });
    expect(plainError(err("ENOTFOUND", "getaddrinfo ENOTFOUND k8s.example"), SERVER)).toBe(
      `cannot reach the Kubernetes API server at ${SERVER}: the host name does not resolve`,
    );
    expect(plainError(err("ERR_TLS_CERT_ALTNAME_INVALID"), SERVER)).toContain("does not name this address");
    expect(
      plainError(Object.assign(new Error("network timeout at: x"), { type: "request-timeout" }), SERVER),
    ).toBe(`cannot reach the Kubernetes API server at ${SERVER}: no answer (timed out)`);
    expect(plainError(new KubeError(403, "Forbidden", "GET /x: 403 nope"), SERVER)).toContain(
      "check vipd's RBAC",
    );
    expect(plainError(new KubeError(409, "Conflict", "PUT /x: 409 conflict"), SERVER)).toBe(
      "PUT /x: 409 conflict",
    );
  });
});

describe("RateLimitedLog", () => {
  test("the first at once, then at most one a minute with how many were held back, and one line on recovery", () => {
    const lines: Record<string, unknown>[] = [];
    let now = 1_000_000;
    const log = createLogger("t", { sink: (l) => lines.push(JSON.parse(l)), now: () => now, level: "info" });
    const r = new RateLimitedLog({ log, now: () => now });
    // An outage of 3 minutes, a failure every 2 s (the Lease's retry period).
    let written = 0;
    for (let t = 0; t < 180_000; t += 2000) {
      now = 1_000_000 + t;
      if (r.warn("lease", "cannot renew", { error: "refused" })) written++;
    }
    expect(written).toBe(3);
    expect(lines.map((l) => l.repeated)).toEqual([undefined, 30, 30]);
    expect(lines[1]?.failingForS).toBe(60);
    now += 2000;
    expect(r.ok("lease", "answers again")).toBe(true);
    expect(lines[3]).toMatchObject({
      level: "info",
      message: "answers again",
      failures: 90,
      failedForS: 180,
    });
    // Recovered: the next failure is said at once again; another key is independent.
    expect(r.warn("lease", "cannot renew")).toBe(true);
    expect(r.warn("write", "write failed")).toBe(true);
    expect(r.ok("never-failed", "x")).toBe(false);
  });
});
