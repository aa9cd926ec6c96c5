/**
 * The watch stream's framer (src/k8s/watch-lines.ts): whatever the reads' boundaries, the same
 * lines come out — split at every byte of a stream (multi-byte UTF-8 characters included), in
 * one read, and byte by byte.
 */

import { describe, expect, test } from "bun:test";
import { LineFramer } from "../../src/k8s/watch-lines.ts";

const events = [
  { type: "ADDED", object: { metadata: { name: "svc-ä", resourceVersion: "1" } } },
  { type: "MODIFIED", object: { metadata: { name: "日本語", annotations: { note: "€ 😀" } } } },
  { type: "BOOKMARK", object: { metadata: { resourceVersion: "17" } } },
  { type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired" } },
];
const text = `${events.map((e) => JSON.stringify(e)).join("\n")}\n`;
const bytes = new TextEncoder().encode(text);

function frame(chunks: Uint8Array[]): string[] {
  const f = new LineFramer();
  const out: string[] = [];
  for (const c of chunks) f.push(c, (l) => out.push(l));
  expect(f.pending).toBe(0);
  return out;
}

const expected = events.map((e) => JSON.stringify(e));

describe("LineFramer", () => {
  test("one read: every line, in order", () => {
    expect(frame([bytes])).toEqual(expected);
  });

  test("split in two at every byte: the same lines", () => {
    for (let i = 0; i <= bytes.length; i++)
      expect(frame([bytes.slice(0, i), bytes.slice(i)])).toEqual(expected);
  });

  test("split in three at every pair of bytes (every 7th): the same lines", () => {
    for (let i = 0; i <= bytes.length; i += 7)
      for (let j = i; j <= bytes.length; j++)
        expect(frame([bytes.slice(0, i), bytes.slice(i, j), bytes.slice(j)])).toEqual(expected);
  });

  test("byte by byte: the same lines", () => {
    expect(frame([...bytes].map((b) => Uint8Array.of(b)))).toEqual(expected);
  });

  test("empty lines are skipped; an unfinished line is held until its newline", () => {
    const f = new LineFramer();
    const out: string[] = [];
    f.push(new TextEncoder().encode('\n\n{"a":1}\n{"b":'), (l) => out.push(l));
    expect(out).toEqual(['{"a":1}']);
    expect(f.pending).toBe(5);
    f.push(new TextEncoder().encode("2}\n"), (l) => out.push(l));
    expect(out).toEqual(['{"a":1}', '{"b":2}']);
    expect(f.pending).toBe(0);
  });
});
