/**
 * Issue 17, "BGPPeer fields accepted and ignored" and "BGP behaviour found with GoBGP and ExaBGP
 * as peers": each case of the issue, by its name, on the pure pieces (next-hop choice, the log
 * rate limiter, peer families) and on the wire (real loopback sockets, a scripted peer written with
 * our own codec). The interop side (real gobgpd/BIRD in namespaces) is test/interop/bgp-fidelity.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { BgpSpeaker, type PeerConfig } from "../../src/bgp/bgp-speaker.ts";
import {
  type BgpMessage,
  decodeMessage,
  encodeMessage,
  Framer,
  formatPrefix,
  type OpenMessage,
  type UpdateMessage,
} from "../../src/bgp/codec/index.ts";
import { buildOpen } from "../../src/bgp/negotiate.ts";
import { type IfaceTable, otherFamilyNextHops } from "../../src/bgp/nexthop.ts";
import { LogRateLimiter, OVERFLOW_KEY } from "../../src/bgp/ratelimit.ts";
import { configFromPaths, formatProblem } from "../../src/config/index.ts";
import { BgpDriver, peerConfig } from "../../src/drivers/bgp.ts";
import { createLogger } from "../../src/util/log.ts";

const FIX = join(import.meta.dir, "../fixtures/bgp/metallb");

// ------------------------------------------------------------------ pure pieces

/** A host with two interfaces, as os.networkInterfaces() lists it. */
const HOST: IfaceTable = {
  lo: [{ address: "127.0.0.1", cidr: "127.0.0.1/8", family: "IPv4", internal: true }],
  eth0: [
    { address: "10.0.1.2", cidr: "10.0.1.2/24", family: "IPv4" },
    { address: "fd00:1::2", cidr: "fd00:1::2/64", family: "IPv6" },
    { address: "fe80::1:2", cidr: "fe80::1:2/64", family: "IPv6" },
  ],
  eth1: [
    { address: "192.0.2.10", cidr: "192.0.2.10/32", family: "IPv4" },
    { address: "10.0.2.2", cidr: "10.0.2.2/24", family: "IPv4" },
    { address: "fe80::2:2", cidr: "fe80::2:2/64", family: "IPv6" },
    { address: "fd00:2::2", cidr: "fd00:2::2/64", family: "IPv6" },
  ],
};

describe("next hop of the other family comes from the session's interface", () => {
  // Issue case: "the next hop for the other family is the host's first global address, read once
  // at start: a peer on a second interface gets an unreachable next hop".
  test("IPv4 session on the second interface: that interface's IPv6 global + link-local (RFC 2545 §3)", () => {
    expect(otherFamilyNextHops(HOST, "10.0.2.2", "10.0.2.1")).toEqual({
      iface: "eth1",
      6: ["fd00:2::2", "fe80::2:2"],
    });
    expect(otherFamilyNextHops(HOST, "10.0.1.2", "10.0.1.1")).toEqual({
      iface: "eth0",
      6: ["fd00:1::2", "fe80::1:2"],
    });
  });
  test("a peer not on the link (multihop) gets the global address only", () => {
    expect(otherFamilyNextHops(HOST, "10.0.2.2", "10.9.9.9")[6]).toEqual(["fd00:2::2"]);
  });
  test("IPv6 session: the interface's IPv4 address, a subnet address before a /32 (a VIP)", () => {
    expect(otherFamilyNextHops(HOST, "fd00:2::2", "fd00:2::1")).toEqual({ iface: "eth1", 4: "10.0.2.2" });
    expect(otherFamilyNextHops(HOST, "::ffff:10.0.2.2", "10.0.2.1").iface).toBe("eth1");
  });
  test("a local address on no interface, or an interface without the other family: nothing", () => {
    expect(otherFamilyNextHops(HOST, "10.7.7.7", "10.7.7.1")).toEqual({});
    expect(otherFamilyNextHops(HOST, "127.0.0.1", "127.0.0.1")).toEqual({ iface: "lo" });
  });
});

describe("log rate limiter", () => {
  // Issue case: "connections from unknown addresses log without a rate limit (500 lines from a flood)".
  test("one line per key per interval, then the count held back", () => {
    const rl = new LogRateLimiter(60_000);
    const lines = [];
    for (let i = 0; i < 500; i++) if (rl.check("10.0.0.9", 1000 + i).log) lines.push(i);
    expect(lines).toEqual([0]);
    expect(rl.check("10.0.0.8", 2000)).toEqual({ log: true, suppressed: 0 });
    expect(rl.check("10.0.0.9", 61_000)).toEqual({ log: true, suppressed: 499 });
  });
  test("bounded keys: a flood from many sources shares one overflow key", () => {
    const rl = new LogRateLimiter(60_000, 4);
    let logged = 0;
    for (let i = 0; i < 1000; i++) if (rl.check(`10.1.${i >> 8}.${i & 255}`, 5).log) logged++;
    expect(logged).toBe(5); // 4 sources + the overflow key
    expect(rl.check(OVERFLOW_KEY, 60_005)).toEqual({ log: true, suppressed: 995 });
  });
});

describe("BGPPeer families: disableMP and dualStackAddressFamily", () => {
  // Issue case: "BGPPeer fields accepted and ignored: vrf, disableMP, dualStackAddressFamily".
  test("disableMP or neither: only the session's family; dualStackAddressFamily: both (and wins over disableMP)", () => {
    const r = configFromPaths([join(FIX, "peer-families.yaml")]);
    if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
    const fams = Object.fromEntries(r.config.peers.map((p) => [p.metadata.name, peerConfig(p).families]));
    expect(fams).toEqual({
      "v4-only": [4],
      "v6-only": [6],
      dual: [4, 6],
      "both-set": [4, 6],
      neither: [4],
    });
  });
  test("localASN (v1beta2): the session's OPEN carries it (My AS = AS_TRANS, 4-octet AS capability), myASN otherwise", () => {
    // MetalLB: `local-as ASN no-prepend replace-as` in its FRR configuration.
    const r = configFromPaths([join(FIX, "peer-local-asn.yaml")]);
    if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
    const open = (name: string) => {
      const p = r.config.peers.find((x) => x.metadata.name === name);
      if (!p) throw new Error(`no peer ${name}`);
      return buildOpen(peerConfig(p), { bgpId: 1, holdTime: 90, restarting: false });
    };
    const as4 = (o: ReturnType<typeof open>) => o.capabilities.find((c) => c.kind === "as4");
    expect(open("with-local").myAs).toBe(23456); // AS_TRANS: 4200000001 does not fit two octets
    expect(as4(open("with-local"))).toEqual({ kind: "as4", asn: 4200000001 });
    expect(open("without-local").myAs).toBe(64512);
    expect(as4(open("without-local"))).toEqual({ kind: "as4", asn: 64512 });
  });
  test("vrf: refused at validation with file:line and what to do", () => {
    const path = join(FIX, "peer-vrf.yaml");
    const r = configFromPaths([path]);
    expect(r.ok).toBe(false);
    const want = readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("# expect: "))
      .map((l) => `${path}:${l.slice(10)}`);
    expect(r.problems.map(formatProblem)).toEqual(want);
  });
});

// ------------------------------------------------------------------ on the wire

class Peer {
  readonly listener: TCPSocketListener<undefined>;
  sock: Socket<undefined> | null = null;
  readonly got: BgpMessage[] = [];
  private framer = new Framer();
  private seen = 0;
  constructor() {
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
            if (r.ok) this.got.push(r.msg);
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
  sendRaw(b: number[]): void {
    this.sock?.write(new Uint8Array(b));
  }
  async next(pred: (m: BgpMessage) => boolean, timeoutMs = 10_000): Promise<BgpMessage> {
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
  async establish(caps: OpenMessage["capabilities"] = MP_BOTH): Promise<OpenMessage> {
    const open = (await this.next((m) => m.type === "open")) as OpenMessage;
    this.send(peerOpen(caps));
    this.send({ type: "keepalive" });
    await this.next((m) => m.type === "keepalive");
    return open;
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

const MP_BOTH: OpenMessage["capabilities"] = [
  { kind: "multiprotocol", afi: 1, safi: 1 },
  { kind: "multiprotocol", afi: 2, safi: 1 },
  { kind: "route-refresh" },
  { kind: "as4", asn: 64500 },
];
const GR: OpenMessage["capabilities"][number] = {
  kind: "graceful-restart",
  restarting: false,
  notification: false,
  time: 120,
  families: [],
};
const peerOpen = (caps: OpenMessage["capabilities"]): OpenMessage => ({
  type: "open",
  version: 4,
  myAs: 64500,
  holdTime: 30,
  bgpId: 0x7f000001,
  capabilities: caps,
});
const prefixes = (u: UpdateMessage) => [...u.nlri, ...(u.attributes.mpReach?.nlri ?? [])].map(formatPrefix);

/** Loopback looks like a host whose session interface also has an IPv6 address. */
const LOOPBACK: IfaceTable = {
  lo: [
    { address: "127.0.0.1", cidr: "127.0.0.1/8", family: "IPv4" },
    { address: "fd00:9::2", cidr: "fd00:9::2/64", family: "IPv6" },
  ],
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

type Line = { level: string; msg: string; fields?: Record<string, unknown> };

function setup(extra: Partial<PeerConfig> = {}, listen = false, interfaces = () => LOOPBACK) {
  const peer = new Peer();
  const lines: Line[] = [];
  const speaker = new BgpSpeaker({
    routerId: "127.0.0.2",
    listen: listen ? { host: "127.0.0.1", port: 0 } : false,
    interfaces,
    addressCheckMs: 50,
    log: (level, msg, fields) => lines.push({ level, msg, ...(fields ? { fields } : {}) }),
  });
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
  return { peer, speaker, lines };
}

describe("on the wire", () => {
  test("disableMP (families [4]): the OPEN offers IPv4 only, and an IPv6 VIP is not sent", async () => {
    const { peer, speaker } = setup({ families: [4] });
    speaker.setRoutes("p", [{ prefix: "192.0.2.1/32" }, { prefix: "2001:db8::1/128" }]);
    const open = await peer.establish();
    expect(open.capabilities.filter((c) => c.kind === "multiprotocol")).toEqual([
      { kind: "multiprotocol", afi: 1, safi: 1 },
    ]);
    const [u, eor] = await peer.updates(2);
    expect([prefixes(u!), prefixes(eor!)]).toEqual([["192.0.2.1/32"], []]);
    await Bun.sleep(100);
    expect(peer.got.filter((m) => m.type === "update")).toHaveLength(2);
  }, 20_000);

  test("an IPv6 VIP over the IPv4 session gets the session interface's IPv6 address as next hop", async () => {
    const { peer, speaker } = setup();
    speaker.setRoutes("p", [{ prefix: "2001:db8::1/128" }]);
    await peer.establish();
    const [u] = await peer.updates(1);
    expect(prefixes(u!)).toEqual(["2001:db8::1/128"]);
    expect(u!.attributes.mpReach?.nextHops).toEqual(["fd00:9::2"]);
  }, 20_000);

  test("the next hop follows the interface's addresses while Established: added, changed, removed", async () => {
    const v4only: IfaceTable = { lo: [LOOPBACK.lo![0]!] };
    let table = v4only;
    const { peer, speaker } = setup({ families: [4, 6] }, false, () => table);
    speaker.setRoutes("p", [{ prefix: "2001:db8::1/128" }]);
    await peer.establish();
    await peer.updates(2); // the two End-of-RIBs: no IPv6 address on the interface yet
    table = LOOPBACK; // e.g. the IPv6 address finished DAD after the session came up
    const [a] = await peer.updates(1);
    expect([prefixes(a!), a!.attributes.mpReach?.nextHops]).toEqual([["2001:db8::1/128"], ["fd00:9::2"]]);
    table = { lo: [LOOPBACK.lo![0]!, { address: "fd00:9::3", cidr: "fd00:9::3/64", family: "IPv6" }] };
    const [b] = await peer.updates(1);
    expect([prefixes(b!), b!.attributes.mpReach?.nextHops]).toEqual([["2001:db8::1/128"], ["fd00:9::3"]]);
    table = v4only;
    const [c] = await peer.updates(1);
    expect(c!.attributes.mpUnreach?.withdrawn.map(formatPrefix)).toEqual(["2001:db8::1/128"]);
    expect(speaker.status().peers[0]!.prefixesSent).toBe(0);
  }, 20_000);

  // Issue case: "ROUTE-REFRESH for one AFI re-sends both" (RFC 2918 §4: the <AFI, SAFI> asked for).
  test("ROUTE-REFRESH for IPv6 re-sends only the IPv6 routes; an unnegotiated AFI is ignored", async () => {
    const { peer, speaker } = setup();
    speaker.setRoutes("p", [{ prefix: "192.0.2.1/32" }, { prefix: "2001:db8::1/128" }]);
    await peer.establish();
    await peer.updates(4); // two routes, two End-of-RIBs
    peer.send({ type: "route-refresh", afi: 2, subtype: 0, safi: 1 });
    const [u] = await peer.updates(1);
    expect(prefixes(u!)).toEqual(["2001:db8::1/128"]);
    peer.send({ type: "route-refresh", afi: 25, subtype: 0, safi: 70 });
    peer.send({ type: "route-refresh", afi: 1, subtype: 0, safi: 1 });
    const [v] = await peer.updates(1);
    expect(prefixes(v!)).toEqual(["192.0.2.1/32"]);
    await Bun.sleep(100);
    expect(peer.got.filter((m) => m.type === "update")).toHaveLength(6);
    expect(speaker.status().peers[0]!.drops["route-refresh-ignored"]).toBe(1);
  }, 20_000);

  // Issue case: "unexpected messages in OpenSent get 5/0 (RFC 6608: 5/1)".
  test("a KEEPALIVE instead of the OPEN gets NOTIFICATION 5/1 (RFC 6608 §3)", async () => {
    const { peer } = setup();
    await peer.next((m) => m.type === "open");
    peer.send({ type: "keepalive" });
    const n = await peer.next((m) => m.type === "notification");
    expect(n.type === "notification" && [n.code, n.subcode]).toEqual([5, 1]);
  }, 20_000);

  // Issue case: "a malformed MP_REACH gets 3/1 or 3/5 (RFC 4760: 3/9, with data)".
  test("an MP_REACH_NLRI with a 5-byte IPv6 next hop gets NOTIFICATION 3/9 with the attribute (RFC 4760 §7)", async () => {
    const { peer, speaker } = setup();
    await peer.establish();
    const attrs = [0x40, 1, 1, 0, 0x40, 2, 0, 0x80, 14, 10, 0, 2, 1, 5, 0x20, 1, 0x0d, 0xb8, 0, 0];
    const len = 19 + 4 + attrs.length;
    peer.sendRaw([...new Array(16).fill(0xff), 0, len, 2, 0, 0, 0, attrs.length, ...attrs]);
    const n = await peer.next((m) => m.type === "notification");
    expect(n.type === "notification" && [n.code, n.subcode, [...n.data]]).toEqual([3, 9, attrs.slice(7)]);
    await Bun.sleep(50);
    expect(speaker.status().peers[0]!.state).not.toBe("Established");
  }, 20_000);

  // Issue case: "treat-as-withdraw events are neither logged nor counted".
  test("treat-as-withdraw UPDATEs are counted by reason and logged once a minute", async () => {
    const { peer, speaker, lines } = setup();
    await peer.establish();
    // ORIGIN value 7 (RFC 7606 §7.1: treat-as-withdraw), three times.
    const attrs = [0x40, 1, 1, 7, 0x40, 2, 0, 0x40, 3, 4, 127, 0, 0, 1];
    const nlri = [32, 198, 51, 100, 1];
    const len = 19 + 4 + attrs.length + nlri.length;
    for (let i = 0; i < 3; i++)
      peer.sendRaw([...new Array(16).fill(0xff), 0, len, 2, 0, 0, 0, attrs.length, ...attrs, ...nlri]);
    for (let i = 0; i < 500 && speaker.status().peers[0]!.updatesReceived < 3; i++) await Bun.sleep(10);
    const st = speaker.status().peers[0]!;
    expect([st.state, st.updatesReceived]).toEqual(["Established", 3]);
    expect(st.updateErrors).toEqual({ "treat-as-withdraw|invalid-origin-attribute": 3 });
    const logged = lines.filter((l) => l.msg.includes("treat-as-withdraw"));
    expect(logged).toHaveLength(1);
    expect(logged[0]!.fields).toMatchObject({ peer: "p", reason: "invalid-origin-attribute" });
    // The driver's Prometheus family: a counter (`_total`) with action and reason labels.
    const driver = new BgpDriver(speaker, createLogger("bgp", { sink: () => {} }));
    const fam = driver.metrics().find((f) => f.name === "vipd_bgp_update_errors_total");
    expect(fam?.type).toBe("counter");
    expect(fam?.samples).toEqual([
      { labels: { peer: "p", action: "treat-as-withdraw", reason: "invalid-origin-attribute" }, value: 3 },
    ]);
  }, 20_000);

  // Issue case: "with graceful restart on, a bare TCP connect from the peer's address (nothing
  // sent) tears down the Established session; wait for an OPEN and run collision handling".
  test("graceful restart: a bare connect from the peer's address leaves the session Established", async () => {
    const { peer, speaker } = setup({ enableGracefulRestart: true, holdTime: 90 }, true);
    speaker.setRoutes("p", [{ prefix: "192.0.2.1/32" }]);
    await peer.establish([...MP_BOTH, GR]);
    await peer.updates(3);
    let closed = false;
    const bare = await Bun.connect({
      hostname: "127.0.0.1",
      port: speaker.port!,
      socket: {
        data: () => {},
        close: () => {
          closed = true;
        },
      },
    });
    cleanups.push(() => {
      bare.end();
    });
    await Bun.sleep(300);
    const st = speaker.status().peers[0]!;
    expect([st.state, st.drops["peer-restarted"], closed, peer.sock !== null]).toEqual([
      "Established",
      undefined,
      false,
      true,
    ]);
    // The session still works on the old connection.
    speaker.setRoutes("p", [{ prefix: "192.0.2.1/32" }, { prefix: "192.0.2.2/32" }]);
    const [u] = await peer.updates(1);
    expect(prefixes(u!)).toEqual(["192.0.2.2/32"]);
    // An OPEN without graceful restart on the held connection: RFC 4271 §6.8, the Established
    // connection stays and the new one gets Cease/Connection Collision.
    const got: BgpMessage[] = [];
    const f = new Framer();
    const second = await Bun.connect({
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
      second.end();
    });
    second.write(encodeMessage(peerOpen(MP_BOTH)));
    for (let i = 0; i < 400 && !got.some((m) => m.type === "notification"); i++) await Bun.sleep(5);
    const n = got.find((m) => m.type === "notification");
    expect(n?.type === "notification" && [n.code, n.subcode]).toEqual([6, 7]);
    expect(speaker.status().peers[0]!.state).toBe("Established");
  }, 20_000);

  // Issue case: "connections from unknown addresses log without a rate limit (500 lines from a flood)".
  test("a flood of connections from an unknown address: every one counted, one line logged", async () => {
    const lines: Line[] = [];
    const speaker = new BgpSpeaker({
      routerId: "127.0.0.2",
      listen: { host: "127.0.0.1", port: 0 },
      log: (level, msg, fields) => lines.push({ level, msg, ...(fields ? { fields } : {}) }),
    });
    cleanups.push(() => speaker.close());
    speaker.setPeers([
      { name: "far", myASN: 64512, peerASN: 64500, peerAddress: "10.255.0.1", passive: true },
    ]);
    const N = 60;
    for (let i = 0; i < N; i++) {
      const s = await Bun.connect({ hostname: "127.0.0.1", port: speaker.port!, socket: { data: () => {} } });
      s.end();
    }
    for (let i = 0; i < 400 && speaker.status().unknownConnections < N; i++) await Bun.sleep(5);
    expect(speaker.status().unknownConnections).toBe(N);
    expect(lines.filter((l) => l.msg === "bgp connection from unknown address")).toHaveLength(1);
  }, 20_000);
});
