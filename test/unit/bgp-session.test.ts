/**
 * The speaker on real loopback sockets (no root, no namespaces) against a scripted peer written
 * with our own codec: what goes on the wire when the desired set changes, route refresh, RFC 7606
 * handling of a bad UPDATE, NOTIFICATIONs, and bad input changing nothing.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { BgpSpeaker } from "../../src/bgp/bgp-speaker.ts";
import {
  type BgpMessage,
  decodeMessage,
  encodeMessage,
  Framer,
  formatPrefix,
  type OpenMessage,
  type UpdateMessage,
} from "../../src/bgp/codec/index.ts";

class FakePeer {
  readonly listener: TCPSocketListener<undefined>;
  sock: Socket<undefined> | null = null;
  readonly got: BgpMessage[] = [];
  private framer = new Framer();
  constructor(readonly open: Partial<OpenMessage> = {}) {
    this.listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => {
          this.sock = s;
          this.framer = new Framer();
        },
        data: (_s, d) => {
          for (const m of this.framer.push(new Uint8Array(d)).messages) {
            const r = decodeMessage(m);
            if (!r.ok) throw r.error;
            this.got.push(r.msg);
          }
        },
        close: () => {
          this.sock = null;
        },
      },
    });
  }
  send(m: BgpMessage): void {
    this.sock?.write(encodeMessage(m));
  }
  sendRaw(b: Uint8Array): void {
    this.sock?.write(b);
  }
  /** Completes the handshake once the speaker's OPEN arrived. */
  async establish(): Promise<OpenMessage> {
    const open = (await this.next((m) => m.type === "open")) as OpenMessage;
    this.send({
      type: "open",
      version: 4,
      myAs: 64500,
      holdTime: 30,
      bgpId: 0x7f000001,
      capabilities: [
        { kind: "multiprotocol", afi: 1, safi: 1 },
        { kind: "multiprotocol", afi: 2, safi: 1 },
        { kind: "route-refresh" },
        { kind: "as4", asn: 64500 },
      ],
      ...this.open,
    });
    this.send({ type: "keepalive" });
    await this.next((m) => m.type === "keepalive");
    return open;
  }
  private seen = 0;
  /** The next message (after the ones already consumed) matching `pred`. */
  async next(pred: (m: BgpMessage) => boolean, timeoutMs = 15_000): Promise<BgpMessage> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      while (this.seen < this.got.length) {
        const m = this.got[this.seen++]!;
        if (pred(m)) return m;
      }
      await Bun.sleep(5);
    }
    throw new Error(`no matching message; got ${this.got.map((m) => m.type).join(",")}`);
  }
  async updates(n: number): Promise<UpdateMessage[]> {
    const out: UpdateMessage[] = [];
    for (let i = 0; i < n; i++) out.push((await this.next((m) => m.type === "update")) as UpdateMessage);
    return out;
  }
  stop(): void {
    this.sock?.end();
    this.listener.stop(true);
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function setup(peerOpen: Partial<OpenMessage> = {}, extra: Record<string, unknown> = {}) {
  const peer = new FakePeer(peerOpen);
  const speaker = new BgpSpeaker({ routerId: "127.0.0.2", listen: false });
  cleanups.push(
    () => speaker.close(),
    () => peer.stop(),
  );
  speaker.setPeers([
    {
      name: "p",
      myASN: 64512,
      peerASN: 64500,
      peerAddress: "127.0.0.1",
      peerPort: peer.listener.port,
      holdTime: 30,
      connectTime: 1,
      ...extra,
    },
  ]);
  return { peer, speaker };
}

const prefixes = (u: UpdateMessage) => [...u.nlri, ...(u.attributes.mpReach?.nlri ?? [])].map(formatPrefix);
const withdrawn = (u: UpdateMessage) =>
  [...u.withdrawn, ...(u.attributes.mpUnreach?.withdrawn ?? [])].map(formatPrefix);

describe("speaker on the wire", () => {
  test("OPEN carries our capabilities; the table goes out once Established, then End-of-RIB per family", async () => {
    const { peer, speaker } = setup();
    speaker.setRoutes("p", [
      { prefix: "192.0.2.1/32", communities: ["64512:1"] },
      { prefix: "2001:db8::1/128", nextHop: "::1" },
    ]);
    const open = await peer.establish();
    expect(open.myAs).toBe(64512);
    expect(open.holdTime).toBe(30);
    expect(open.capabilities.map((c) => c.kind)).toEqual([
      "multiprotocol",
      "multiprotocol",
      "route-refresh",
      "as4",
    ]);
    const [a, b, e4, e6] = await peer.updates(4);
    expect(prefixes(a!)).toEqual(["192.0.2.1/32"]);
    expect(a!.attributes.nextHop).toBe("127.0.0.1");
    expect(a!.attributes.asPath).toEqual([{ type: 2, asns: [64512] }]);
    expect(prefixes(b!)).toEqual(["2001:db8::1/128"]);
    expect(b!.attributes.mpReach?.nextHops).toEqual(["::1"]);
    expect([prefixes(e4!), e4!.withdrawn]).toEqual([[], []]);
    expect(e6!.attributes.mpUnreach).toEqual({ afi: 2, safi: 1, withdrawn: [] });
    const st = speaker.status().peers[0]!;
    expect([st.state, st.prefixesSent, st.updatesSent, st.peerRouterId]).toEqual([
      "Established",
      2,
      4,
      "127.0.0.1",
    ]);
  }, 30_000);

  test("a new desired set sends only the difference: withdraw, changed attributes, new prefix", async () => {
    const { peer, speaker } = setup();
    speaker.setRoutes("p", [
      { prefix: "192.0.2.1/32" },
      { prefix: "192.0.2.2/32" },
      { prefix: "192.0.2.3/32" },
    ]);
    await peer.establish();
    await peer.updates(3); // one UPDATE with 3 prefixes, EoR v4, EoR v6
    speaker.setRoutes("p", [
      { prefix: "192.0.2.1/32" },
      { prefix: "192.0.2.3/32", med: 5 },
      { prefix: "192.0.2.4/32" },
    ]);
    const [w, x, y] = await peer.updates(3);
    expect(withdrawn(w!)).toEqual(["192.0.2.2/32"]);
    const announced = [x!, y!].map((u) => [prefixes(u), u.attributes.med]);
    expect(announced).toContainEqual([["192.0.2.3/32"], 5]);
    expect(announced).toContainEqual([["192.0.2.4/32"], undefined]);
    // The same set again: nothing on the wire.
    speaker.setRoutes("p", [
      { prefix: "192.0.2.1/32" },
      { prefix: "192.0.2.3/32", med: 5 },
      { prefix: "192.0.2.4/32" },
    ]);
    await Bun.sleep(100);
    expect(peer.got.filter((m) => m.type === "update")).toHaveLength(6);
  }, 30_000);

  test("ROUTE-REFRESH re-sends the whole Adj-RIB-Out", async () => {
    const { peer, speaker } = setup();
    speaker.setRoutes("p", [{ prefix: "192.0.2.1/32" }, { prefix: "192.0.2.9/32" }]);
    await peer.establish();
    await peer.updates(3);
    peer.send({ type: "route-refresh", afi: 1, subtype: 0, safi: 1 });
    const [u] = await peer.updates(1);
    expect(prefixes(u!)).toEqual(["192.0.2.1/32", "192.0.2.9/32"]);
  }, 30_000);

  test("received routes are counted (and withdrawals uncount them); a treat-as-withdraw UPDATE keeps the session", async () => {
    const { peer, speaker } = setup();
    await peer.establish();
    peer.send({
      type: "update",
      withdrawn: [],
      attributes: { origin: 0, asPath: [{ type: 2, asns: [64500] }], nextHop: "127.0.0.1" },
      nlri: [0, 1, 2].map((i) => ({ family: 4 as const, len: 32, addr: new Uint8Array([198, 51, 100, i]) })),
    });
    // ORIGIN value 7: RFC 7606 treat-as-withdraw for 198.51.100.1.
    const len = 19 + 4 + 4 + 9 + 7 + 5;
    peer.sendRaw(
      new Uint8Array([
        ...new Array(16).fill(0xff),
        0,
        len,
        2,
        0,
        0,
        0,
        20,
        0x40,
        1,
        1,
        7,
        0x40,
        2,
        6,
        2,
        1,
        0,
        0,
        0xfb,
        0xf4,
        0x40,
        3,
        4,
        127,
        0,
        0,
        1,
        32,
        198,
        51,
        100,
        1,
      ]),
    );
    for (let i = 0; i < 1000 && speaker.status().peers[0]!.updatesReceived < 2; i++) await Bun.sleep(10);
    const st = speaker.status().peers[0]!;
    expect([st.state, st.prefixesReceived, st.updatesReceived]).toEqual(["Established", 2, 2]);
    expect(st.drops["update-treat-as-withdraw"]).toBe(1);
  }, 30_000);

  test("a malformed UPDATE that needs a reset gets a NOTIFICATION with its code, and the session drops", async () => {
    const { peer, speaker } = setup();
    await peer.establish();
    // NLRI prefix length 40: UPDATE Message Error / Invalid Network Field.
    const len = 19 + 4 + 2;
    peer.sendRaw(new Uint8Array([...new Array(16).fill(0xff), 0, len, 2, 0, 0, 0, 0, 40, 1]));
    const n = await peer.next((m) => m.type === "notification");
    expect(n.type === "notification" && [n.code, n.subcode]).toEqual([3, 10]);
    await Bun.sleep(50);
    const st = speaker.status().peers[0]!;
    expect(st.state).not.toBe("Established");
    expect(st.lastError).toContain("decode error");
  }, 30_000);

  test("an unacceptable hold time in the peer's OPEN is refused with 2/6", async () => {
    const { peer } = setup({ holdTime: 2 });
    await peer.next((m) => m.type === "open");
    peer.send({ type: "open", version: 4, myAs: 64500, holdTime: 2, bgpId: 0x7f000001, capabilities: [] });
    const n = await peer.next((m) => m.type === "notification");
    expect(n.type === "notification" && [n.code, n.subcode]).toEqual([2, 6]);
  }, 30_000);

  test("setPeerEnabled(false) sends Cease/Administrative Shutdown; true brings the session back", async () => {
    const { peer, speaker } = setup();
    await peer.establish();
    speaker.setPeerEnabled("p", false);
    const n = await peer.next((m) => m.type === "notification");
    expect(n.type === "notification" && [n.code, n.subcode]).toEqual([6, 2]);
    speaker.setPeerEnabled("p", true);
    await peer.establish();
    expect(speaker.status().peers[0]!.state).toBe("Established");
  }, 30_000);

  test("bad input is rejected with a clear error and changes nothing", async () => {
    const { peer, speaker } = setup();
    speaker.setRoutes("p", [{ prefix: "192.0.2.1/32" }]);
    await peer.establish();
    await peer.updates(3);
    expect(() => speaker.setRoutes("p", [{ prefix: "192.0.2.7/32" }, { prefix: "192.0.2.300/32" }])).toThrow(
      /routes\[1\]/,
    );
    expect(() => speaker.setRoutes("nope", [])).toThrow(/unknown BGP peer/);
    expect(() =>
      speaker.setPeers([{ name: "p", myASN: 64512, peerASN: 64500, peerAddress: "127.0.0.1", holdTime: 1 }]),
    ).toThrow(/holdTime/);
    await Bun.sleep(100);
    expect(peer.got.filter((m) => m.type === "update")).toHaveLength(3);
    expect(speaker.status().peers[0]!.state).toBe("Established");
  }, 30_000);
});

describe("connection collision (RFC 4271 §6.8)", () => {
  /** A peer that accepts the speaker's connection (A) and also connects to the speaker (B). */
  async function collide(peerBgpId: number) {
    const got: { a: BgpMessage[]; b: BgpMessage[] } = { a: [], b: [] };
    const closed = { a: false, b: false };
    const reader = (k: "a" | "b") => {
      const f = new Framer();
      return (d: Uint8Array) => {
        for (const m of f.push(new Uint8Array(d)).messages) {
          const r = decodeMessage(m);
          if (r.ok) got[k].push(r.msg);
        }
      };
    };
    const readA = reader("a");
    let a: Socket<undefined> | null = null;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => {
          a = s;
        },
        data: (_s, d) => readA(d),
        close: () => {
          closed.a = true;
        },
      },
    });
    const speaker = new BgpSpeaker({ routerId: "127.0.0.5", listen: { host: "127.0.0.1", port: 0 } });
    cleanups.push(
      () => speaker.close(),
      () => listener.stop(true),
    );
    speaker.setPeers([
      {
        name: "p",
        myASN: 64512,
        peerASN: 64500,
        peerAddress: "127.0.0.1",
        peerPort: listener.port,
        holdTime: 30,
      },
    ]);
    const until = async (what: string, f: () => boolean) => {
      for (let i = 0; i < 2000 && !f(); i++) await Bun.sleep(5);
      if (!f())
        throw new Error(`timed out: ${what}; a=${got.a.map((m) => m.type)} b=${got.b.map((m) => m.type)}`);
    };
    await until("speaker's OPEN on A", () => got.a.some((m) => m.type === "open"));
    const readB = reader("b");
    const b = await Bun.connect({
      hostname: "127.0.0.1",
      port: speaker.port!,
      socket: {
        data: (_s, d) => readB(d),
        close: () => {
          closed.b = true;
        },
      },
    });
    cleanups.push(() => {
      b.end();
    });
    const open: BgpMessage = {
      type: "open",
      version: 4,
      myAs: 64500,
      holdTime: 30,
      bgpId: peerBgpId,
      capabilities: [{ kind: "as4", asn: 64500 }],
    };
    b.write(encodeMessage(open));
    return { got, closed, a: () => a!, b, open, speaker, until };
  }
  const cease7 = (m: BgpMessage) => m.type === "notification" && m.code === 6 && m.subcode === 7;

  test("the peer has the higher BGP identifier: its connection wins, ours gets Cease/Connection Collision", async () => {
    const c = await collide(0x7f000009);
    await c.until("Cease/7 on A", () => c.got.a.some(cease7));
    await c.until(
      "OPEN and KEEPALIVE on B",
      () => c.got.b.some((m) => m.type === "open") && c.got.b.some((m) => m.type === "keepalive"),
    );
    c.b.write(encodeMessage({ type: "keepalive" }));
    await c.until("Established", () => c.speaker.status().peers[0]?.state === "Established");
    expect(c.speaker.status().peers[0]!.drops["collision"]).toBe(1);
  }, 30_000);

  test("we have the higher BGP identifier: our connection wins, the peer's gets Cease/Connection Collision", async () => {
    const c = await collide(0x7f000001);
    await c.until("Cease/7 on B", () => c.got.b.some(cease7));
    expect(c.got.a.some(cease7)).toBe(false);
    c.a().write(encodeMessage(c.open));
    c.a().write(encodeMessage({ type: "keepalive" }));
    await c.until("Established", () => c.speaker.status().peers[0]?.state === "Established");
  }, 30_000);
});

describe("graceful restart, receiving side (RFC 4724 §4.2)", () => {
  test("a peer with graceful restart that reconnects while we think it is Established gets the session at once", async () => {
    const peer = new FakePeer({
      capabilities: [
        { kind: "multiprotocol", afi: 1, safi: 1 },
        { kind: "graceful-restart", restarting: false, notification: false, time: 120, families: [] },
        { kind: "as4", asn: 64500 },
      ],
    });
    const speaker = new BgpSpeaker({ routerId: "127.0.0.2", listen: { host: "127.0.0.1", port: 0 } });
    cleanups.push(
      () => speaker.close(),
      () => peer.stop(),
    );
    speaker.setPeers([
      {
        name: "p",
        myASN: 64512,
        peerASN: 64500,
        peerAddress: "127.0.0.1",
        peerPort: peer.listener.port,
        holdTime: 90,
        enableGracefulRestart: true,
      },
    ]);
    speaker.setRoutes("p", [{ prefix: "192.0.2.1/32" }]);
    await peer.establish();
    await peer.updates(2); // the route, End-of-RIB (IPv4 only: the peer offered only IPv4)
    // The peer "restarts": a new connection while the old one is still open.
    const got: BgpMessage[] = [];
    const f = new Framer();
    const b = await Bun.connect({
      hostname: "127.0.0.1",
      port: speaker.port!,
      socket: {
        data: (_s, d) => {
          for (const m of f.push(new Uint8Array(d)).messages) {
            const r = decodeMessage(m);
            if (r.ok) got.push(r.msg);
          }
        },
      },
    });
    cleanups.push(() => {
      b.end();
    });
    b.write(
      encodeMessage({
        type: "open",
        version: 4,
        myAs: 64500,
        holdTime: 90,
        bgpId: 0x7f000001,
        capabilities: [
          { kind: "multiprotocol", afi: 1, safi: 1 },
          { kind: "graceful-restart", restarting: true, notification: false, time: 120, families: [] },
          { kind: "as4", asn: 64500 },
        ],
      }),
    );
    const until = async (what: string, fn: () => boolean) => {
      for (let i = 0; i < 2000 && !fn(); i++) await Bun.sleep(5);
      if (!fn()) throw new Error(`timed out: ${what}; got ${got.map((m) => m.type)}`);
    };
    await until(
      "OPEN and KEEPALIVE on the new connection",
      () => got.some((m) => m.type === "open") && got.some((m) => m.type === "keepalive"),
    );
    b.write(encodeMessage({ type: "keepalive" }));
    // Established again on the new connection, and the whole table is sent again.
    await until("the route again", () => got.some((m) => m.type === "update" && m.nlri.length === 1));
    const st = speaker.status().peers[0]!;
    expect([st.state, st.drops["peer-restarted"]]).toEqual(["Established", 1]);
    await until("old connection closed", () => peer.sock === null);
  }, 30_000);
});
