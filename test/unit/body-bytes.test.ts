/**
 * Request bodies as bytes (issue 14, memory under a flood): readYamlBytes refuses what readYaml
 * refuses (413 past the limit, 400 when not UTF-8) without decoding on the main thread, and
 * BodyChecker.check moves the bytes to its worker (the caller's buffer is detached) and gives the
 * verdicts it gives for the same text.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { BodyChecker } from "../../src/api/body-check.ts";
import { ApiError } from "../../src/api/http.ts";
import { READING_BUDGET, readYaml, readYamlBytes, yamlBytesReading } from "../../src/api/request-body.ts";
import { VALID_YAML } from "./api-runtime-fake.ts";

const checker = new BodyChecker();
afterAll(() => checker.close());

const utf8 = (s: string) => new TextEncoder().encode(s);
const post = (body: string | Uint8Array | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
  new Request("http://vipd.test/api/v1/config/validate", { method: "POST", body, headers });

async function refusal(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error("not refused");
}

describe("readYamlBytes", () => {
  test("gives the body's bytes, unchanged", async () => {
    const text = `# é, ü\n${VALID_YAML}`;
    const bytes = await readYamlBytes(post(text), 1 << 20);
    expect(new TextDecoder().decode(bytes)).toBe(text);
  });

  test("not UTF-8: 400, as readYaml", async () => {
    const bad = new Uint8Array([0x61, 0x3a, 0x20, 0xff, 0xfe, 0x0a]);
    const e = await refusal(readYamlBytes(post(bad), 1 << 20));
    expect(e.status).toBe(400);
    expect(e.message).toBe("the body is not valid UTF-8");
    const e2 = await refusal(readYaml(post(bad), 1 << 20));
    expect([e2.status, e2.message]).toEqual([e.status, e.message]);
  });

  test("past the limit: 413, declared or streamed", async () => {
    const declared = await refusal(readYamlBytes(post("a".repeat(101)), 100));
    expect(declared.status).toBe(413);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(utf8("a".repeat(60)));
        c.enqueue(utf8("a".repeat(60)));
        c.close();
      },
    });
    const streamed = await refusal(readYamlBytes(post(stream), 100));
    expect(streamed.status).toBe(413);
  });
});

describe("BodyChecker.check with bytes", () => {
  test("the same verdicts as for the text; the bytes are moved, not copied", async () => {
    const bodies = [
      VALID_YAML,
      "[".repeat(1 << 20),
      "---\n".repeat(30_000),
      "kind: Nope\n",
      "# ü only a comment\n",
    ];
    for (const text of bodies) {
      const fromText = await checker.check(text);
      const bytes = utf8(text);
      const fromBytes = await checker.check(bytes);
      expect(fromBytes).toEqual(fromText);
      expect(bytes.byteLength).toBe(0); // detached: transferred to the worker
    }
  }, 60_000);

  test("a view into a larger buffer is copied first, the caller's buffer left alone", async () => {
    const whole = utf8(`xxxx${VALID_YAML}yyyy`);
    const view = whole.subarray(4, whole.byteLength - 4);
    const v = await checker.check(view);
    expect(v.kind).toBe("valid");
    expect(whole.byteLength).toBe(VALID_YAML.length + 8);
  });

  test("a leading byte order mark is dropped, as readYaml's decoder does", async () => {
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...utf8(VALID_YAML)]);
    expect((await checker.check(withBom)).kind).toBe("valid");
  });
});

describe("bytes being read at once are bounded", () => {
  test("past READING_BUDGET: 503 Busy with Retry-After before reading; the next read after one ends is served", async () => {
    const limit = READING_BUDGET / 2;
    const open: ReadableStreamDefaultController<Uint8Array>[] = [];
    const slow = () =>
      post(
        new ReadableStream<Uint8Array>({
          start(c) {
            open.push(c);
            c.enqueue(utf8("a: 1\n"));
          },
        }),
      );
    // Two bodies without a Content-Length reserve the limit each while they are read.
    const first = readYamlBytes(slow(), limit);
    const second = readYaml(slow(), limit);
    expect(yamlBytesReading()).toBe(READING_BUDGET);
    const busy = await refusal(readYamlBytes(post("b: 2\n"), limit));
    expect(busy.status).toBe(503);
    expect(busy.code).toBe("Busy");
    expect(busy.headers).toMatchObject({ "Retry-After": "1", Connection: "close" });
    for (const c of open) c.close();
    expect(new TextDecoder().decode(await first)).toBe("a: 1\n");
    expect(await second).toBe("a: 1\n");
    expect(yamlBytesReading()).toBe(0);
    // A refused body does not hold its reservation.
    const late = await refusal(readYamlBytes(post(new Uint8Array([0xff])), limit));
    expect(late.status).toBe(400);
    expect(yamlBytesReading()).toBe(0);
    expect(new TextDecoder().decode(await readYamlBytes(post("b: 2\n"), limit))).toBe("b: 2\n");
  });

  test("one body is always read when nothing else is, even past the budget", async () => {
    const big = "#".repeat(1024);
    const bytes = await readYamlBytes(post(big), READING_BUDGET * 2);
    expect(bytes.byteLength).toBe(1024);
  });
});
