/**
 * The site channel's codec (src/site/codec.ts) and the table's values (src/site/table.ts):
 * every message survives encode → decode; a forged, replayed, misaddressed or truncated message
 * is refused with its named reason and never throws; the framer gives the same frames whatever
 * the split; digests and the version order are stable.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  decodeHello,
  decodeMessage,
  type Envelope,
  encodeHello,
  encodeMessage,
  Framer,
  frame,
  MAX_FRAME,
  type ReceiverContext,
  type SiteMessage,
} from "../../src/site/codec.ts";
import {
  addressChanges,
  descends,
  newer,
  nextSnapshot,
  parseSnapshot,
  type SiteAssignment,
  tableDigest,
} from "../../src/site/table.ts";

const KEY = new TextEncoder().encode("site-shared-key-0123456789abcdef");
const OTHER_KEY = new TextEncoder().encode("not-the-site-key-0123456789abcde");
const NONCE = new Uint8Array(16).fill(7);
const MEMBERS = new Set(["n1", "n2", "n3"]);

const table: SiteAssignment[] = [
  { key: "shop/web", pool: "site", ips: ["198.51.100.10", "fd00::10"] },
  { key: "infra/dns", pool: "site", ips: ["198.51.100.11"] },
];
const snap = nextSnapshot(undefined, "n1", "kind: x\n", table);

const MESSAGES: SiteMessage[] = [
  { type: "status", generation: 3, allocator: "n1", digest: "abcd", ready: true },
  { type: "status", generation: 0, allocator: "", digest: "", ready: false },
  { type: "snapshot", snapshot: snap },
  { type: "request" },
  { type: "ack", generation: 3, allocator: "n1", digest: "abcd" },
  { type: "propose", id: "r1", base: 3, config: "apiVersion: v1\nkind: Service\n" },
  { type: "result", id: "r1", ok: true, generation: 4, allocator: "n1" },
  { type: "result", id: "r2", ok: false, generation: 4, allocator: "n1", error: "Stale", message: "at 4" },
];

function rx(last = 0n, nonce = NONCE, self = "n2"): ReceiverContext {
  return { self, members: MEMBERS, nonce, lastCounter: () => last };
}

function env(msg: SiteMessage, counter = 10n): Envelope {
  return { from: "n1", to: "n2", counter, nonce: NONCE, msg };
}

describe("site messages", () => {
  test("every message type survives encode → decode", () => {
    for (const m of MESSAGES) {
      const d = decodeMessage(encodeMessage(env(m), KEY), KEY, rx());
      expect(d.ok).toBe(true);
      if (d.ok) {
        expect(d.env.msg).toEqual(m);
        expect(d.env.from).toBe("n1");
        expect(d.env.counter).toBe(10n);
      }
    }
  });

  test("forged: signed with another key → BadMac; one bit flipped anywhere → refused", () => {
    for (const m of MESSAGES) {
      expect(decodeMessage(encodeMessage(env(m), OTHER_KEY), KEY, rx())).toMatchObject({
        ok: false,
        reason: "BadMac",
      });
    }
    const good = encodeMessage(env(MESSAGES[0] as SiteMessage), KEY);
    for (let i = 0; i < good.length; i++) {
      const bad = good.slice();
      bad[i] = (bad[i] as number) ^ 0x01;
      const d = decodeMessage(bad, KEY, rx());
      expect(d.ok).toBe(false);
    }
  });

  test("replayed: a counter not above the last one taken from the sender → Replay", () => {
    const buf = encodeMessage(env(MESSAGES[0] as SiteMessage, 10n), KEY);
    expect(decodeMessage(buf, KEY, rx(9n)).ok).toBe(true);
    expect(decodeMessage(buf, KEY, rx(10n))).toMatchObject({ ok: false, reason: "Replay", from: "n1" });
    expect(decodeMessage(buf, KEY, rx(11n))).toMatchObject({ ok: false, reason: "Replay" });
  });

  test("replayed on another connection (another nonce, even after a restart) → StaleNonce", () => {
    const buf = encodeMessage(env(MESSAGES[0] as SiteMessage), KEY);
    const d = decodeMessage(buf, KEY, rx(0n, new Uint8Array(16).fill(8)));
    expect(d).toMatchObject({ ok: false, reason: "StaleNonce", from: "n1" });
  });

  test("sent to another member → NotForMe; from a name not in the site, or from itself → UnknownSender", () => {
    const buf = encodeMessage(env(MESSAGES[3] as SiteMessage), KEY);
    expect(decodeMessage(buf, KEY, rx(0n, NONCE, "n3"))).toMatchObject({ ok: false, reason: "NotForMe" });
    const stranger = encodeMessage({ ...env(MESSAGES[3] as SiteMessage), from: "n9" }, KEY);
    expect(decodeMessage(stranger, KEY, rx())).toMatchObject({ ok: false, reason: "UnknownSender" });
    const self = encodeMessage({ ...env(MESSAGES[3] as SiteMessage), from: "n2" }, KEY);
    expect(decodeMessage(self, KEY, rx())).toMatchObject({ ok: false, reason: "UnknownSender" });
  });

  test("a body that does not match its type → BadBody (after the MAC: only a key holder can send one)", () => {
    // A status whose body is a propose: re-sign by hand with the right key.
    const buf = encodeMessage(env({ type: "request" }), KEY);
    const text = new TextDecoder().decode(buf);
    expect(text.includes('{"type":"request"}')).toBe(true);
    const forgedType = buf.slice();
    forgedType[5] = 1; // status, body still says request
    // Its MAC no longer matches: refused as BadMac before the body is read.
    expect(decodeMessage(forgedType, KEY, rx())).toMatchObject({ ok: false, reason: "BadMac" });
    const snapshotBad = encodeMessage(
      env({ type: "snapshot", snapshot: { ...snap, generation: 0 } as unknown as typeof snap }),
      KEY,
    );
    expect(decodeMessage(snapshotBad, KEY, rx())).toMatchObject({ ok: false, reason: "BadBody" });
  });

  test("every truncation and random bytes are refused without throwing", () => {
    const good = encodeMessage(env(MESSAGES[2] as SiteMessage), KEY);
    for (let n = 0; n < good.length; n++)
      expect(decodeMessage(good.subarray(0, n), KEY, rx()).ok).toBe(false);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        expect(decodeMessage(b, KEY, rx()).ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  test("hello: encodes the nonce; anything else is not a hello", () => {
    expect(decodeHello(encodeHello(NONCE))).toEqual(NONCE);
    expect(decodeHello(encodeMessage(env({ type: "request" }), KEY))).toBeNull();
    expect(decodeHello(new Uint8Array(20))).toBeNull();
  });
});

describe("framer", () => {
  const payloads = [encodeHello(NONCE), ...MESSAGES.map((m) => encodeMessage(env(m), KEY))];
  const stream = new Uint8Array(payloads.reduce((n, p) => n + 4 + p.length, 0));
  let off = 0;
  for (const p of payloads) {
    stream.set(frame(p), off);
    off += 4 + p.length;
  }

  test("split at every byte boundary: the same frames", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const f = new Framer();
      const got = [...f.push(stream.subarray(0, cut)).frames, ...f.push(stream.subarray(cut)).frames];
      expect(got).toEqual(payloads);
      expect(f.pending).toBe(0);
    }
  });

  test("byte by byte: the same frames", () => {
    const f = new Framer();
    const got: Uint8Array[] = [];
    for (const b of stream) got.push(...f.push(new Uint8Array([b])).frames);
    expect(got).toEqual(payloads);
  });

  test("a length outside 4..MAX_FRAME ends the stream", () => {
    const big = new Uint8Array(4);
    new DataView(big.buffer).setUint32(0, MAX_FRAME + 1);
    const f = new Framer();
    expect(f.push(big).error).toBe("BadFrame");
    expect(f.push(frame(encodeHello(NONCE))).error).toBe("BadFrame");
    expect(new Framer().push(new Uint8Array([0, 0, 0, 1])).error).toBe("BadFrame");
  });
});

describe("table values", () => {
  test("the digest does not depend on row order and changes with any address", () => {
    const d = tableDigest(table);
    expect(tableDigest([...table].reverse())).toBe(d);
    expect(d).toMatch(/^[0-9a-f]{16}$/);
    expect(
      tableDigest([{ ...(table[0] as SiteAssignment), ips: ["198.51.100.12"] }, table[1] as SiteAssignment]),
    ).not.toBe(d);
  });

  test("version order: higher generation, then lower allocator name; nothing is older than anything", () => {
    expect(newer({ generation: 2, allocator: "n9" }, { generation: 1, allocator: "n1" })).toBe(true);
    expect(newer({ generation: 2, allocator: "n1" }, { generation: 2, allocator: "n2" })).toBe(true);
    expect(newer({ generation: 2, allocator: "n2" }, { generation: 2, allocator: "n1" })).toBe(false);
    expect(newer({ generation: 2, allocator: "n1" }, { generation: 2, allocator: "n1" })).toBe(false);
    expect(newer({ generation: 1, allocator: "n1" }, undefined)).toBe(true);
    expect(newer(undefined, { generation: 1, allocator: "n1" })).toBe(false);
  });

  test("lineage: a snapshot descends from every version it was made from", () => {
    const s2 = nextSnapshot(snap, "n2", "b", table);
    const s3 = nextSnapshot(s2, "n1", "c", table);
    expect(s3.generation).toBe(3);
    expect(descends(s3, snap)).toBe(true);
    expect(descends(s3, s2)).toBe(true);
    const other = nextSnapshot(snap, "n3", "d", table); // 2@n3: a sibling of s2
    expect(descends(s3, other)).toBe(false);
  });

  test("address changes: re-addressed and lost Services are listed, new ones are not", () => {
    const after: SiteAssignment[] = [
      { key: "shop/web", pool: "site", ips: ["198.51.100.12", "fd00::10"] },
      { key: "shop/new", pool: "site", ips: ["198.51.100.13"] },
    ];
    expect(addressChanges(table, after)).toEqual([
      { service: "infra/dns", from: ["198.51.100.11"], to: [] },
      { service: "shop/web", from: ["198.51.100.10", "fd00::10"], to: ["198.51.100.12", "fd00::10"] },
    ]);
  });

  test("parseSnapshot refuses what is not a snapshot, with why", () => {
    expect(parseSnapshot(JSON.parse(JSON.stringify(snap)))).toEqual({ ok: true, snapshot: snap });
    expect(parseSnapshot(null)).toMatchObject({ ok: false });
    expect(parseSnapshot({ ...snap, generation: -1 })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/generation/),
    });
    expect(parseSnapshot({ ...snap, table: [table[0], table[0]] })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/listed twice/),
    });
    expect(parseSnapshot({ ...snap, table: [{ key: "a" }] })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/table\[0\]/),
    });
  });
});
