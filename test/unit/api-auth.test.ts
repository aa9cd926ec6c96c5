/** Bearer tokens: configuration as sha256 hashes, parsing of the header, roles. */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { allows, authenticate, compileTokens, hashToken, parseTokenConfig } from "../../src/api/auth.ts";

const tokens = compileTokens([
  { name: "ops", role: "admin", hash: hashToken("admin-secret") },
  { name: "dash", role: "read", hash: hashToken("read-secret") },
]);

describe("token configuration", () => {
  test("hashToken is sha256 of the UTF-8 bytes, as configured", () => {
    // echo -n abc | sha256sum
    expect(hashToken("abc")).toBe("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test("upper-case hex is accepted; anything else is refused with a clear message", () => {
    const upper = `sha256:${hashToken("x").slice(7).toUpperCase()}`;
    expect(authenticate("Bearer x", compileTokens([{ role: "read", hash: upper }]))).toMatchObject({
      ok: true,
    });
    const bad: [unknown, RegExp][] = [
      [null, /must be an object/],
      [{ role: "root", hash: hashToken("x") }, /role: must be "read" or "admin"/],
      [{ role: "read", hash: "x" }, /hash: must be "sha256:" followed by 64 hex digits/],
      [{ role: "read", hash: `md5:${"0".repeat(32)}` }, /hash/],
      [{ role: "read", hash: `sha256:${"0".repeat(63)}` }, /hash/],
      [{ role: "read", hash: hashToken("x"), name: 5 }, /name: must be a string/],
    ];
    for (const [input, msg] of bad) expect(() => parseTokenConfig(input, 3)).toThrow(msg);
    expect(() => parseTokenConfig({ role: "read", hash: "sha256:nothex" }, 3)).toThrow(/^tokens\[3\]\.hash/);
    const dup = [
      { role: "read" as const, hash: hashToken("same") },
      { role: "admin" as const, hash: `sha256:${hashToken("same").slice(7).toUpperCase()}` },
    ];
    expect(() => compileTokens(dup)).toThrow("tokens[1].hash: same token as tokens[0]");
  });
});

describe("authenticate", () => {
  test("a configured token gets its role and name", () => {
    expect(authenticate("Bearer admin-secret", tokens)).toEqual({ ok: true, role: "admin", name: "ops" });
    expect(authenticate("bearer read-secret", tokens)).toEqual({ ok: true, role: "read", name: "dash" });
  });

  test("missing, malformed and unknown are told apart", () => {
    expect(authenticate(undefined, tokens)).toEqual({ ok: false, reason: "MissingToken" });
    expect(authenticate("  ", tokens)).toEqual({ ok: false, reason: "MissingToken" });
    for (const h of [
      "Basic YTpi",
      "Bearer",
      "Bearer a b",
      "Bearer tok\u00e9n",
      "admin-secret",
      "Bearer =abc",
    ]) {
      expect(authenticate(h, tokens), h).toEqual({ ok: false, reason: "MalformedAuthorization" });
    }
    expect(authenticate("Bearer admin-secreT", tokens)).toEqual({ ok: false, reason: "UnknownToken" });
    expect(authenticate("Bearer admin-secret", [])).toEqual({ ok: false, reason: "UnknownToken" });
  });

  test("only the exact token matches (property)", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9._~+/-]{1,40}$/), (t) => {
        const r = authenticate(`Bearer ${t}`, tokens);
        if (t === "admin-secret" || t === "read-secret") return r.ok;
        return !r.ok && r.reason === "UnknownToken";
      }),
    );
  });

  test("roles: admin may do everything, read only reads", () => {
    expect(allows("admin", "admin")).toBe(true);
    expect(allows("admin", "read")).toBe(true);
    expect(allows("read", "read")).toBe(true);
    expect(allows("read", "admin")).toBe(false);
  });
});
