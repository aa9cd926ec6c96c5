/**
 * Heartbeat format version 3 (src/cluster/heartbeat.ts): the site's configuration generation and
 * table digest ride in the membership heartbeat, and a member of the previous release
 * (test/support/heartbeat-previous.ts, frozen) keeps working with a new one both ways: it decodes
 * every heartbeat a new member sends it (version 1 or 2 until it says it reads version 3, which it
 * never does), and the new member takes its heartbeats, which carry no site fields.
 */
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { MembershipEngine } from "../../src/cluster/engine.ts";
import {
  decodeHeartbeat,
  encodeHeartbeat,
  type Heartbeat,
  VERSION_SITE,
} from "../../src/cluster/heartbeat.ts";
import { createMembership, onHeartbeat } from "../../src/cluster/membership.ts";
import * as previous from "../support/heartbeat-previous.ts";

const KEY = new TextEncoder().encode("site-shared-key-0123456789abcdef");
const SITE = { generation: 42, allocator: "n1", digest: "0123456789abcdef" };

const base = (over: Partial<Heartbeat> = {}): Heartbeat => ({
  node: "n2",
  seq: 9n,
  intervalMs: 50,
  leaving: false,
  ...over,
});

describe("heartbeat version 3: the site fields", () => {
  test("generation, allocator and digest survive encode → decode, with and without declines", () => {
    const v3 = encodeHeartbeat(base({ ready: true, readsSite: true, site: SITE }), KEY);
    expect(v3[4]).toBe(VERSION_SITE);
    expect(decodeHeartbeat(v3, KEY)).toEqual({
      ok: true,
      hb: { ...base(), ready: true, readsSite: true, site: SITE },
    });
    const withDeclines = encodeHeartbeat(
      base({ site: SITE, declines: [{ ip: "10.0.0.1", to: "n3" }, { ip: "fd00::7" }] }),
      KEY,
    );
    const d = decodeHeartbeat(withDeclines, KEY);
    expect(d.ok && d.hb.site).toEqual(SITE);
    expect(d.ok && d.hb.declines).toEqual([{ ip: "10.0.0.1", to: "n3" }, { ip: "fd00::7" }]);
    // No snapshot yet: generation 0.
    const none = decodeHeartbeat(
      encodeHeartbeat(base({ site: { generation: 0, allocator: "", digest: "" } }), KEY),
      KEY,
    );
    expect(none.ok && none.hb.site).toEqual({ generation: 0, allocator: "", digest: "" });
  });

  test("bad site fields are refused by the encoder with a clear error", () => {
    expect(() => encodeHeartbeat(base({ site: { ...SITE, digest: "xyz" } }), KEY)).toThrow("16 hex digits");
    expect(() => encodeHeartbeat(base({ site: { ...SITE, generation: -1 } }), KEY)).toThrow("generation");
    expect(() => encodeHeartbeat(base({ site: { ...SITE, allocator: "a".repeat(254) } }), KEY)).toThrow(
      "253 bytes",
    );
  });

  test("a validly signed version-3 body with a malformed site block is dropped as BadSite", () => {
    const name = new TextEncoder().encode("n2");
    const sign = (tail: number[]) => {
      const body = new Uint8Array(17 + name.length + tail.length);
      const v = new DataView(body.buffer);
      v.setUint32(0, 0x56495048);
      v.setUint8(4, 3);
      v.setUint16(6, 50);
      v.setBigUint64(8, 7n);
      v.setUint8(16, name.length);
      body.set(name, 17);
      body.set(tail, 17 + name.length);
      const out = new Uint8Array(body.length + 32);
      out.set(body);
      out.set(new Uint8Array(createHmac("sha256", KEY).update(body).digest()), body.length);
      return out;
    };
    const digest = [1, 2, 3, 4, 5, 6, 7, 8];
    const cases: [string, number[]][] = [
      ["no site block", [0]],
      ["a truncated digest", [0, 0, 0, 0, 1, 1, 0x61, 1, 2, 3]],
      ["an allocator running past the end", [0, 0, 0, 0, 1, 9, 0x61, ...digest]],
      ["generation 0 with an allocator", [0, 0, 0, 0, 0, 1, 0x61, ...digest]],
      ["an empty allocator", [0, 0, 0, 0, 1, 0, ...digest]],
      ["trailing bytes", [0, 0, 0, 0, 1, 1, 0x61, ...digest, 0]],
    ];
    for (const [why, tail] of cases)
      expect(decodeHeartbeat(sign(tail), KEY), why).toEqual({ ok: false, reason: "BadSite" });
    expect(decodeHeartbeat(sign([0, 0, 0, 0, 1, 1, 0x61, ...digest]), KEY)).toMatchObject({
      ok: true,
      hb: { site: { generation: 1, allocator: "a", digest: "0102030405060708" } },
    });
  });

  test("a flipped bit anywhere in a version-3 heartbeat is refused, never an exception", () => {
    const good = encodeHeartbeat(
      base({ ready: true, readsSite: true, site: SITE, declines: [{ ip: "10.1.1.1" }] }),
      KEY,
    );
    for (let i = 0; i < good.length; i++) {
      const bad = good.slice();
      bad[i] = (bad[i] as number) ^ 0x10;
      const r = decodeHeartbeat(bad, KEY);
      // Flag bits other than the four known ones are ignored (and covered by the MAC anyway).
      expect(r.ok, `byte ${i}`).toBe(false);
    }
  });
});

describe("a member of the previous release and a new one interoperate", () => {
  test("the new decoder takes version-1 and version-2 heartbeats of the previous encoder (no site fields)", () => {
    const v1 = previous.encodeHeartbeat(base({ ready: true, settled: true }), KEY);
    expect(decodeHeartbeat(v1, KEY)).toEqual({ ok: true, hb: { ...base(), ready: true, settled: true } });
    const v2 = previous.encodeHeartbeat(base({ declines: [{ ip: "10.0.0.9" }] }), KEY);
    const d = decodeHeartbeat(v2, KEY);
    expect(d).toEqual({ ok: true, hb: { ...base(), declines: [{ ip: "10.0.0.9" }] } });
    // And the membership FSM takes them: the peer is rising, it reads no site fields.
    const m = createMembership(
      { self: "n1", members: ["n1", "n2"], intervalMs: 50, deadAfterMs: 200, riseMs: 1000 },
      0,
    );
    const r = onHeartbeat(m, (d as { hb: Heartbeat }).hb, 10);
    expect(r.m.peers.get("n2")).toMatchObject({ state: "Rising", readsSite: false, siteSeq: -1n });
    expect(r.m.peers.get("n2")?.site).toBeUndefined();
  });

  test("a new member sends version 1 or 2 to a member that does not read version 3, and the old decoder takes it", () => {
    const e = new MembershipEngine({
      self: "n1",
      members: [{ name: "n1" }, { name: "n2", address: "127.0.0.1" }],
      key: KEY,
      port: 0,
      intervalMs: 50,
      deadAfterMs: 200,
      riseMs: 1000,
      onChange: () => {},
      now: () => 0,
    });
    e.setSite(SITE);
    const { plain, withSite } = e.packets(false);
    // No member said it reads version 3: only the old formats are made.
    expect(withSite).toBeUndefined();
    expect(plain[4]).toBe(1);
    const old = previous.decodeHeartbeat(plain, KEY);
    expect(old).toMatchObject({ ok: true, hb: { node: "n1", leaving: false } });
    e.setDeclines([{ ip: "10.0.0.5" }]);
    const p2 = e.packets(false).plain;
    expect(p2[4]).toBe(2);
    expect(previous.decodeHeartbeat(p2, KEY)).toMatchObject({
      ok: true,
      hb: { declines: [{ ip: "10.0.0.5" }] },
    });
    // The old decoder cannot read version 3 (why it is sent only to members that say they read it).
    expect(previous.decodeHeartbeat(encodeHeartbeat(base({ site: SITE }), KEY), KEY)).toEqual({
      ok: false,
      reason: "BadVersion",
    });
    e.stop(false);
  });

  test("once a member's heartbeat says it reads version 3, it gets the site fields; the peer's own are recorded without a membership change", () => {
    let changes = 0;
    let peerSite = 0;
    const e = new MembershipEngine({
      self: "n1",
      members: [{ name: "n1" }, { name: "n2", address: "127.0.0.1" }],
      key: KEY,
      port: 0,
      intervalMs: 50,
      deadAfterMs: 200,
      riseMs: 1000,
      onChange: () => changes++,
      onPeerSite: () => peerSite++,
      now: () => 0,
    });
    e.setSite(SITE);
    const receive = (hb: Heartbeat) =>
      (e as unknown as { receive(b: Uint8Array): void }).receive(encodeHeartbeat(hb, KEY));
    receive(
      base({
        seq: 1n,
        readsSite: true,
        site: { generation: 41, allocator: "n1", digest: "ffffffffffffffff" },
      }),
    );
    expect(peerSite).toBe(1);
    const after = changes;
    // The same site again: nothing to publish; a new generation: published, still no membership change.
    receive(
      base({
        seq: 2n,
        readsSite: true,
        site: { generation: 41, allocator: "n1", digest: "ffffffffffffffff" },
      }),
    );
    expect(peerSite).toBe(1);
    receive(base({ seq: 3n, readsSite: true, site: SITE }));
    expect(peerSite).toBe(2);
    expect(changes).toBe(after);
    expect(e.peers().find((p) => p.name === "n2")).toMatchObject({
      site: SITE,
      siteSeq: 3n,
      readsSite: true,
    });
    const { withSite } = e.packets(false);
    expect(withSite).toBeDefined();
    const d = decodeHeartbeat(withSite as Uint8Array, KEY);
    expect(d.ok && d.hb.site).toEqual(SITE);
    // The peer is downgraded (its heartbeats lose bit 3): the engine stops sending it version 3.
    receive(base({ seq: 4n }));
    expect(e.packets(false).withSite).toBeUndefined();
    e.stop(false);
  });
});
