/** The API's HTTP helpers: Accept negotiation, media types, entity tags, bounded body reads. */

import { describe, expect, test } from "bun:test";
import {
  acceptQuality,
  negotiate,
  parseEtagList,
  parseMediaType,
  readBodyLimited,
  strongMatch,
  weakMatch,
} from "../../src/api/http.ts";

describe("Accept", () => {
  test("the most specific range decides, q=0 excludes, no header accepts all", () => {
    expect(acceptQuality(undefined, "application", "json")).toBe(1);
    expect(acceptQuality("", "application", "json")).toBe(1);
    expect(acceptQuality("text/html", "application", "json")).toBe(0);
    expect(acceptQuality("*/*;q=0.2", "application", "json")).toBe(0.2);
    expect(acceptQuality("application/*;q=0.5, */*;q=0.1", "application", "json")).toBe(0.5);
    expect(acceptQuality("application/json;q=0, */*", "application", "json")).toBe(0);
    expect(acceptQuality("APPLICATION/JSON", "application", "json")).toBe(1);
    expect(acceptQuality("garbage, text/html", "application", "json")).toBe(0);
  });

  test("negotiate picks the best offer, the first on ties, null when none fits", () => {
    const offers = ["application/json", "application/yaml"];
    expect(negotiate(undefined, offers)).toBe("application/json");
    expect(negotiate("application/yaml", offers)).toBe("application/yaml");
    expect(negotiate("application/json;q=0.5, application/yaml", offers)).toBe("application/yaml");
    expect(negotiate("*/*", offers)).toBe("application/json");
    expect(negotiate("text/plain", offers)).toBeNull();
  });
});

describe("media types", () => {
  test("parses type, subtype and parameters (quoted or not)", () => {
    expect(parseMediaType("Application/YAML; Charset=utf-8")).toEqual({
      type: "application",
      subtype: "yaml",
      params: { charset: "utf-8" },
    });
    expect(parseMediaType('text/yaml; x="a;b \\" c"')?.params["x"]).toBe('a;b " c');
  });
  test("refuses what is not a media type", () => {
    for (const s of ["", "yaml", "application/", "/yaml", "a/b; =x", "a/b c"])
      expect(parseMediaType(s), s).toBeNull();
  });
});

describe("entity tags", () => {
  test("lists, star, weak tags, and malformed values", () => {
    expect(parseEtagList("*")).toBe("*");
    expect(parseEtagList('"a"')).toEqual(['"a"']);
    expect(parseEtagList(' "a" , W/"b","c" ')).toEqual(['"a"', 'W/"b"', '"c"']);
    // RFC 9110 §5.6.1.2: empty list elements are accepted.
    expect(parseEtagList('"a",, "b",')).toEqual(['"a"', '"b"']);
    for (const s of ["", ",", "a", '"a', '"a" "b"', 'w/"a"']) expect(parseEtagList(s), s).toBeNull();
  });
  test("strong comparison refuses weak tags; weak comparison does not", () => {
    expect(strongMatch('"a"', '"a"')).toBe(true);
    expect(strongMatch('W/"a"', '"a"')).toBe(false);
    expect(weakMatch('W/"a"', '"a"')).toBe(true);
    expect(weakMatch('"b"', '"a"')).toBe(false);
  });
});

describe("readBodyLimited", () => {
  const req = (body: string | ReadableStream<Uint8Array> | null, headers: Record<string, string> = {}) =>
    new Request("http://x/", { method: "POST", body, headers });

  test("reads a body up to the limit exactly", async () => {
    const r = await readBodyLimited(req("12345"), 5);
    expect(r).toEqual({ ok: true, bytes: new TextEncoder().encode("12345") });
    expect(await readBodyLimited(req(null), 5)).toEqual({ ok: true, bytes: new Uint8Array(0) });
  });

  test("stops one byte over the limit, counting streamed chunks", async () => {
    expect(await readBodyLimited(req("123456"), 5)).toEqual({ ok: false, tooLarge: true });
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        pulled++;
        if (pulled > 1000) ctrl.close();
        else ctrl.enqueue(new Uint8Array(1024));
      },
    });
    expect(await readBodyLimited(req(stream), 4096)).toEqual({ ok: false, tooLarge: true });
    expect(pulled).toBeLessThan(10); // gave up early instead of draining the client
  });

  test("a Content-Length above the limit is refused before reading", async () => {
    const r = new Request("http://x/", {
      method: "POST",
      body: "small",
      headers: { "Content-Length": "999999" },
    });
    expect(await readBodyLimited(r, 10)).toEqual({ ok: false, tooLarge: true });
  });
});
