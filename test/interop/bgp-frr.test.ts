/**
 * vipd's BGP speaker against a real FRR 8 router (zebra + bgpd) in namespaces made here. Both
 * sides connect actively, so connection collisions (RFC 4271 §6.8) happen for real.
 *   n1, n2  eBGP AS 64512 over IPv4 (ECMP), n1 also over IPv6; n1 advertises graceful restart
 *   n3, n4  TCP-MD5: n3 with the right key, n4 with a wrong one
 *   n5      iBGP AS 64500 with LOCAL_PREF
 *   n6      4-octet local ASN on a session FRR keeps 2-octet (dont-capability-negotiate): AS_TRANS
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type Frr,
  kernelRoutes,
  peerState,
  removeTmpDirs,
  startFrr,
  startVipd,
  type Vipd,
  waitFor,
} from "../fixtures/bgp/harness.ts";
import { Lab } from "../support/netns.ts";

const VIP = "192.0.2.10";
const VIP6 = "2001:db8:10::10";
const nodes = ["n1", "n2", "n3", "n4", "n5", "n6"] as const;
const addr = (i: number) => `10.0.0.${i + 2}`;

const bgpdConf = `hostname r
router bgp 64500
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 timers bgp 3 9
 neighbor 10.0.0.2 remote-as 64512
 neighbor 10.0.0.2 timers connect 1
 neighbor 10.0.0.3 remote-as 64512
 neighbor 10.0.0.3 timers connect 1
 neighbor 10.0.0.4 remote-as 64512
 neighbor 10.0.0.4 password vipd-secret
 neighbor 10.0.0.5 remote-as 64512
 neighbor 10.0.0.5 password vipd-secret
 neighbor 10.0.0.6 remote-as 64500
 neighbor fd00::2 remote-as 64512
 neighbor 10.0.0.7 remote-as 4200000009
 neighbor 10.0.0.7 dont-capability-negotiate
 address-family ipv4 unicast
  maximum-paths 8
  maximum-paths ibgp 8
  no neighbor fd00::2 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor fd00::2 activate
  maximum-paths 8
 exit-address-family
`;

let lab: Lab;
let frr: Frr;
const vipd: Record<string, Vipd> = {};

const peer = (i: number, extra: Record<string, unknown> = {}) => ({
  name: "r",
  myASN: 64512,
  peerASN: 64500,
  peerAddress: "10.0.0.1",
  holdTime: 9,
  connectTime: 1,
  ...extra,
  sourceAddress: addr(i),
});

beforeAll(async () => {
  lab = await Lab.create("bgpfrr");
  await lab.addNs("r");
  for (const [i, n] of nodes.entries()) {
    await lab.addNs(n);
    await lab.veth("r", `v${n}`, n, "eth0");
    await lab.addr(n, "eth0", `${addr(i)}/24`);
    await lab.addr(n, "eth0", `fd00::${i + 2}/64`);
  }
  await lab.bridge(
    "r",
    "br0",
    nodes.map((n) => `v${n}`),
  );
  await lab.addr("r", "br0", "10.0.0.1/24");
  await lab.addr("r", "br0", "fd00::1/64");
  frr = await startFrr(lab, "r", bgpdConf);
  const listen = { host: "::", port: 179 };
  vipd["n1"] = await startVipd(lab, "n1", {
    routerId: addr(0),
    listen,
    peers: [
      peer(0, { enableGracefulRestart: true }),
      { ...peer(0), name: "r6", peerAddress: "fd00::1", sourceAddress: "fd00::2" },
    ],
  });
  vipd["n2"] = await startVipd(lab, "n2", { routerId: addr(1), listen, peers: [peer(1)] });
  vipd["n3"] = await startVipd(lab, "n3", {
    routerId: addr(2),
    listen,
    peers: [peer(2, { password: "vipd-secret" })],
  });
  vipd["n4"] = await startVipd(lab, "n4", {
    routerId: addr(3),
    listen,
    peers: [peer(3, { password: "wrong-secret" })],
  });
  vipd["n5"] = await startVipd(lab, "n5", { routerId: addr(4), listen, peers: [peer(4, { myASN: 64500 })] });
  vipd["n6"] = await startVipd(lab, "n6", {
    routerId: addr(5),
    listen,
    peers: [peer(5, { myASN: 4200000009 })],
  });
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
  removeTmpDirs();
}, 30_000);

const neighborUp = async (a: string) =>
  (await frr.vtysh(`show bgp neighbors ${a}`)).includes("BGP state = Established");

describe("vipd ↔ FRR 8", () => {
  test("sessions establish (IPv4, IPv6, iBGP, MD5) despite both sides connecting", async () => {
    for (const a of ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6", "fd00::2"])
      await waitFor(`FRR neighbor ${a}`, () => neighborUp(a), 30_000);
    for (const n of ["n1", "n2", "n3", "n5"]) expect(await peerState(vipd[n]!, "r")).toBe("Established");
  }, 40_000);

  test("4-octet local ASN on a 2-octet session: AS_TRANS (23456) in the AS path FRR sees", async () => {
    await waitFor("FRR neighbor 10.0.0.7", () => neighborUp("10.0.0.7"), 30_000);
    await vipd["n6"]!.setRoutes("r", [{ prefix: "192.0.2.60/32" }]);
    const out = await waitFor("route from n6", async () => {
      const o = await frr.vtysh("show bgp ipv4 unicast 192.0.2.60/32");
      return o.includes("10.0.0.7") ? o : "";
    });
    expect(out).toMatch(/^\s+23456\s*$/m);
    expect(await frr.vtysh("show bgp neighbors 10.0.0.7")).not.toContain(
      "4 Byte AS: advertised and received",
    );
  }, 40_000);

  test("a wrong TCP-MD5 key gets no session", async () => {
    await Bun.sleep(3000);
    expect(await neighborUp("10.0.0.5")).toBe(false);
    expect(await peerState(vipd["n4"]!, "r")).not.toBe("Established");
  }, 15_000);

  test("communities, large communities and MED are visible in FRR's RIB", async () => {
    await vipd["n1"]!.setRoutes("r", [
      { prefix: `${VIP}/32`, communities: ["64512:100"], largeCommunities: ["64512:7:9"], med: 20 },
    ]);
    const out = await waitFor("route at FRR", async () => {
      const o = await frr.vtysh(`show bgp ipv4 unicast ${VIP}/32`);
      return o.includes("Community") ? o : "";
    });
    expect(out).toContain("Community: 64512:100");
    expect(out).toContain("Large Community: 64512:7:9");
    expect(out).toContain("metric 20");
    expect(out).toContain("10.0.0.2");
  }, 20_000);

  test("two vipd nodes → ECMP route with both next hops in the router's kernel (installed by zebra)", async () => {
    await vipd["n2"]!.setRoutes("r", [
      { prefix: `${VIP}/32`, communities: ["64512:100"], largeCommunities: ["64512:7:9"], med: 20 },
    ]);
    await waitFor("ECMP kernel route", async () => {
      const t = await kernelRoutes(lab, "r");
      return t.includes("nexthop via 10.0.0.2") && t.includes("nexthop via 10.0.0.3");
    });
  }, 20_000);

  test("IPv6 over an IPv6 session", async () => {
    await vipd["n1"]!.setRoutes("r6", [{ prefix: `${VIP6}/128` }]);
    await waitFor("IPv6 route at FRR", async () =>
      (await frr.vtysh(`show bgp ipv6 unicast ${VIP6}/128`)).includes("fd00::2"),
    );
    await waitFor("IPv6 kernel route", async () => (await kernelRoutes(lab, "r", true)).includes(VIP6));
  }, 20_000);

  test("iBGP LOCAL_PREF is visible; MD5 session carries routes", async () => {
    await vipd["n5"]!.setRoutes("r", [{ prefix: "192.0.2.50/32", localPref: 250 }]);
    await vipd["n3"]!.setRoutes("r", [{ prefix: "192.0.2.30/32" }]);
    const out = await waitFor("iBGP route", async () => {
      const o = await frr.vtysh("show bgp ipv4 unicast 192.0.2.50/32");
      return o.includes("localpref") ? o : "";
    });
    expect(out).toContain("localpref 250");
    expect(out).toContain("internal");
    await waitFor("MD5 route", async () =>
      (await frr.vtysh("show bgp ipv4 unicast 192.0.2.30/32")).includes("10.0.0.4"),
    );
  }, 20_000);

  test("Service deleted → withdrawn: ECMP shrinks, then the route leaves the kernel", async () => {
    await vipd["n2"]!.setRoutes("r", []);
    await waitFor("one next hop", async () => {
      const t = await kernelRoutes(lab, "r");
      return t.includes(`${VIP} nhid`) && t.includes("via 10.0.0.2") && !t.includes("via 10.0.0.3");
    });
    await vipd["n1"]!.setRoutes("r", []);
    await waitFor("route gone", async () => !(await kernelRoutes(lab, "r")).includes(VIP));
    expect(await frr.vtysh(`show bgp ipv4 unicast ${VIP}/32`)).toContain("Network not in table");
  }, 20_000);

  test("vipd restarted with graceful restart → FRR keeps the route in the kernel throughout", async () => {
    await vipd["n1"]!.setRoutes("r", [{ prefix: "192.0.2.11/32" }]);
    await waitFor("route in kernel", async () => (await kernelRoutes(lab, "r")).includes("192.0.2.11 nhid"));
    let watching = true;
    const misses: string[] = [];
    let checks = 0;
    const deadline = Date.now() + 45_000;
    const watcher = (async () => {
      while (watching && Date.now() < deadline) {
        const t = await kernelRoutes(lab, "r").catch((e: unknown) => String(e));
        checks++;
        if (!t.includes("192.0.2.11 nhid")) misses.push(t);
        await Bun.sleep(50);
      }
    })();
    await vipd["n1"]!.close(true);
    await Bun.sleep(1000);
    expect(await frr.vtysh("show bgp ipv4 unicast 192.0.2.11/32")).toContain("stale");
    vipd["n1"] = await startVipd(
      lab,
      "n1",
      {
        routerId: addr(0),
        listen: { host: "::", port: 179 },
        restarted: true,
        peers: [peer(0, { enableGracefulRestart: true })],
        routes: { r: [{ prefix: "192.0.2.11/32" }] },
      },
      "n1b",
    );
    await waitFor("FRR neighbor back", () => neighborUp("10.0.0.2"), 30_000);
    await waitFor(
      "route fresh again",
      async () => !(await frr.vtysh("show bgp ipv4 unicast 192.0.2.11/32")).includes("stale"),
      15_000,
    );
    watching = false;
    await watcher;
    expect(misses).toEqual([]);
    expect(checks).toBeGreaterThan(10);
  }, 60_000);
});
