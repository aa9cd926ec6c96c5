/**
 * vipd's BGP speaker against a real BIRD 2 router, in namespaces made here: router `r` (BIRD, with
 * a bridge) and vipd nodes n1..n8, each a separate speaker process (src/bgp/cli.ts).
 *   n1, n2  eBGP AS 64512 over IPv4 (both announce the same VIP → ECMP in r's kernel table),
 *           n1 also over IPv6 (with extended next hop for IPv4); n1 advertises graceful restart
 *   n3      eBGP from a 4-octet ASN (4200000001)
 *   n4      iBGP AS 64500 with a 2-octet-only BIRD session (enable as4 off), LOCAL_PREF 250
 *   n5, n6  TCP-MD5: n5 with the right key, n6 with a wrong one
 *   n7      passive (BIRD must connect to vipd's listener), GTSM (RFC 5082), dynamicASN "external"
 *   n8      dual-stack over one IPv4 session (IPv6 NLRI in MP_REACH_NLRI with an IPv6 next hop)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type Bird,
  kernelRoutes,
  peerState,
  removeTmpDirs,
  startBird,
  startVipd,
  type Vipd,
  waitFor,
} from "../fixtures/bgp/harness.ts";
import { Lab } from "../support/netns.ts";

const VIP = "192.0.2.10";
const VIP6 = "2001:db8:10::10";
const nodes = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"] as const;
const addr = (i: number) => `10.0.0.${i + 2}`;

const birdConf = `
router id 10.0.0.1;
timeformat protocol iso long;
protocol device {}
protocol kernel k4 { ipv4 { export all; import none; }; merge paths on; }
protocol kernel k6 { ipv6 { export all; import none; }; merge paths on; }
template bgp node { local 10.0.0.1 as 64500; hold time 9; connect retry time 1; error wait time 1,3; }
protocol bgp n1 from node { neighbor 10.0.0.2 as 64512; ipv4 { import all; export none; }; }
protocol bgp n1v6 from node { local fd00::1 as 64500; neighbor fd00::2 as 64512; ipv6 { import all; export none; };
  ipv4 { import all; export none; extended next hop on; }; }
protocol bgp n2 from node { neighbor 10.0.0.3 as 64512; ipv4 { import all; export none; }; }
protocol bgp n3 from node { neighbor 10.0.0.4 as 4200000001; ipv4 { import all; export none; }; }
protocol bgp n4 from node { neighbor 10.0.0.5 as 64500; enable as4 off; ipv4 { import all; export none; }; }
protocol bgp n5 from node { neighbor 10.0.0.6 as 64512; password "vipd-secret"; ipv4 { import all; export none; }; }
protocol bgp n7 from node { neighbor 10.0.0.8 as 64512; ttl security on; connect delay time 1; ipv4 { import all; export none; }; }
protocol bgp n8 from node { neighbor 10.0.0.9 as 64512; ipv4 { import all; export none; }; ipv6 { import all; export none; }; }
protocol bgp n6 from node { neighbor 10.0.0.7 as 64512; password "vipd-secret"; ipv4 { import all; export none; }; }
`;

let lab: Lab;
let bird: Bird;
const vipd: Record<string, Vipd> = {};

const peer = (name: string, i: number, extra: Record<string, unknown> = {}) => ({
  name,
  myASN: 64512,
  peerASN: 64500,
  peerAddress: "10.0.0.1",
  sourceAddress: addr(i),
  holdTime: 9,
  connectTime: 1,
  ...extra,
});

function vipdConfig(i: number): Parameters<typeof startVipd>[2] {
  const n = nodes[i]!;
  const base = { routerId: addr(i), listen: { host: "::", port: 179 } };
  switch (n) {
    case "n1":
      return {
        ...base,
        peers: [
          peer("r", i, { enableGracefulRestart: true, gracefulRestartTime: 60 }),
          {
            ...peer("r6", i, { enableGracefulRestart: true }),
            peerAddress: "fd00::1",
            sourceAddress: "fd00::2",
          },
        ],
      };
    case "n3":
      return { ...base, peers: [peer("r", i, { myASN: 4200000001 })] };
    case "n4":
      return { ...base, peers: [peer("r", i, { myASN: 64500 })] };
    case "n5":
      return { ...base, peers: [peer("r", i, { password: "vipd-secret" })] };
    case "n6":
      return { ...base, peers: [peer("r", i, { password: "not-the-secret" })] };
    case "n7": {
      const {
        peerASN: _unused,
        sourceAddress: _src,
        ...rest
      } = peer("r", i, { passive: true, gtsm: true, dynamicASN: "external" });
      return { ...base, peers: [rest] };
    }
    default:
      return { ...base, peers: [peer("r", i)] };
  }
}

beforeAll(async () => {
  lab = await Lab.create("bgpbrd");
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
  bird = await startBird(lab, "r", birdConf);
  for (const [i, n] of nodes.entries()) vipd[n] = await startVipd(lab, n, vipdConfig(i));
}, 60_000);

afterAll(async () => {
  await lab?.destroy();
  removeTmpDirs();
}, 30_000);

const routeAll = (p: string) => bird.cmd(`show route for ${p} all`);
const protoUp = async (p: string) => (await bird.cmd(`show protocols ${p}`)).includes("Established");

describe("vipd ↔ BIRD 2", () => {
  test("sessions establish: IPv4 and IPv6, eBGP and iBGP, 2- and 4-octet ASNs, MD5 with the right key", async () => {
    for (const p of ["n1", "n1v6", "n2", "n3", "n4", "n5"])
      await waitFor(`BIRD protocol ${p} Established`, () => protoUp(p), 20_000);
    for (const n of ["n1", "n2", "n3", "n4", "n5"])
      expect(await peerState(vipd[n]!, "r")).toBe("Established");
    expect(await peerState(vipd["n1"]!, "r6")).toBe("Established");
    expect(await bird.cmd("show protocols all n4")).toContain("internal");
  }, 30_000);

  test("passive peer with GTSM and a dynamic ASN: BIRD connects to vipd's listener", async () => {
    await waitFor("BIRD protocol n7 Established", () => protoUp("n7"), 20_000);
    expect(await bird.cmd("show protocols all n7")).toContain("Established");
    await vipd["n7"]!.setRoutes("r", [{ prefix: "192.0.2.70/32" }]);
    await waitFor("route from n7", async () => (await routeAll("192.0.2.70")).includes("10.0.0.8"));
  }, 30_000);

  test("dual-stack over one IPv4 session: IPv4 and IPv6 prefixes both arrive", async () => {
    await waitFor("BIRD protocol n8 Established", () => protoUp("n8"), 20_000);
    await vipd["n8"]!.setRoutes("r", [
      { prefix: "192.0.2.80/32" },
      { prefix: "2001:db8:80::80/128", nextHop: "fd00::9" },
    ]);
    await waitFor("IPv4 route from n8", async () => (await routeAll("192.0.2.80")).includes("10.0.0.9"));
    await waitFor("IPv6 route from n8", async () => (await routeAll("2001:db8:80::80")).includes("fd00::9"));
    await waitFor("IPv6 kernel route via n8", async () =>
      (await kernelRoutes(lab, "r", true)).includes("2001:db8:80::80 via fd00::9"),
    );
  }, 30_000);

  test("a wrong TCP-MD5 key gets no session (on either side)", async () => {
    await Bun.sleep(3000);
    expect(await protoUp("n6")).toBe(false);
    const s = (await vipd["n6"]!.status()).peers[0]!;
    expect(s.state).not.toBe("Established");
    expect(s.updatesReceived).toBe(0);
  }, 15_000);

  test("eBGP IPv4 route with communities, large communities and MED is in BIRD's RIB and kernel table", async () => {
    await vipd["n1"]!.setRoutes("r", [
      {
        prefix: `${VIP}/32`,
        communities: ["64512:100", "no-export"],
        largeCommunities: ["64512:7:9"],
        med: 20,
      },
    ]);
    const out = await waitFor("route at BIRD", async () => {
      const o = await routeAll(VIP);
      return o.includes("BGP.community") ? o : "";
    });
    expect(out).toContain("BGP.as_path: 64512");
    expect(out).toContain("BGP.next_hop: 10.0.0.2");
    expect(out).toContain("(64512,100)");
    expect(out).toContain("(65535,65281)"); // no-export
    expect(out).toContain("BGP.large_community: (64512, 7, 9)");
    expect(out).toContain("BGP.med: 20");
    await waitFor("kernel route", async () => (await kernelRoutes(lab, "r")).includes(`${VIP} via 10.0.0.2`));
  }, 20_000);

  test("two vipd nodes announcing one VIP → ECMP route with both next hops in the router's kernel", async () => {
    await vipd["n2"]!.setRoutes("r", [
      {
        prefix: `${VIP}/32`,
        communities: ["64512:100", "no-export"],
        largeCommunities: ["64512:7:9"],
        med: 20,
      },
    ]);
    const k = await waitFor("ECMP kernel route", async () => {
      const t = await kernelRoutes(lab, "r");
      return t.includes("nexthop via 10.0.0.2") && t.includes("nexthop via 10.0.0.3") ? t : "";
    });
    expect(k).toContain(`${VIP} proto bird`);
  }, 20_000);

  test("IPv6 over an IPv6 session reaches BIRD's IPv6 table and the kernel", async () => {
    await vipd["n1"]!.setRoutes("r6", [{ prefix: `${VIP6}/128`, communities: ["64512:6"] }]);
    const out = await waitFor("IPv6 route", async () => {
      const o = await routeAll(VIP6);
      return o.includes("BGP.next_hop") ? o : "";
    });
    expect(out).toContain("fd00::2");
    expect(out).toContain("(64512,6)");
    await waitFor("IPv6 kernel route", async () =>
      (await kernelRoutes(lab, "r", true)).includes(`${VIP6} via fd00::2`),
    );
  }, 20_000);

  test("extended next hop (RFC 8950): an IPv4 VIP over the IPv6 session, with an IPv6 next hop", async () => {
    await vipd["n1"]!.setRoutes("r6", [
      { prefix: `${VIP6}/128` },
      { prefix: "192.0.2.60/32", nextHop: "fd00::2" },
    ]);
    const out = await waitFor("IPv4 route with IPv6 next hop", async () => {
      const o = await routeAll("192.0.2.60");
      return o.includes("BGP.next_hop") ? o : "";
    });
    expect(out).toContain("fd00::2");
    await waitFor("kernel route via inet6", async () =>
      (await kernelRoutes(lab, "r")).includes("192.0.2.60 via inet6 fd00::2"),
    );
    expect(await routeAll(VIP6)).toContain("fd00::2");
  }, 30_000);

  test("4-octet ASN: the AS path shows 4200000001", async () => {
    await vipd["n3"]!.setRoutes("r", [{ prefix: "192.0.2.30/32" }]);
    const out = await waitFor("route from n3", async () => {
      const o = await routeAll("192.0.2.30");
      return o.includes("BGP.as_path") ? o : "";
    });
    expect(out).toContain("BGP.as_path: 4200000001");
  }, 20_000);

  test("iBGP on a 2-octet session: LOCAL_PREF 250 and an empty AS path", async () => {
    await vipd["n4"]!.setRoutes("r", [
      { prefix: "192.0.2.40/32", localPref: 250, communities: ["64500:40"] },
    ]);
    const out = await waitFor("route from n4", async () => {
      const o = await routeAll("192.0.2.40");
      return o.includes("BGP.local_pref") ? o : "";
    });
    expect(out).toContain("BGP.local_pref: 250");
    expect(out).toMatch(/BGP\.as_path: *\n/);
    expect(out).toContain("(64500,40)");
  }, 20_000);

  test("MD5 session carries routes", async () => {
    await vipd["n5"]!.setRoutes("r", [{ prefix: "192.0.2.50/32" }]);
    await waitFor("route from n5", async () => (await routeAll("192.0.2.50")).includes("10.0.0.6"));
  }, 20_000);

  test("Service deleted on one node → withdrawn at the router: ECMP shrinks to the other next hop", async () => {
    await vipd["n2"]!.setRoutes("r", []);
    await waitFor("single next hop", async () => {
      const t = await kernelRoutes(lab, "r");
      return t.includes(`${VIP} via 10.0.0.2`) && !t.includes("10.0.0.3 ");
    });
    const s = (await vipd["n2"]!.status()).peers[0]!;
    expect(s.prefixesSent).toBe(0);
    expect(s.updatesSent).toBeGreaterThanOrEqual(3); // EoR, announce, withdraw
  }, 20_000);

  test("router restarted → sessions and routes come back", async () => {
    await lab.stop(bird.proc);
    await waitFor(
      "vipd sees the session drop",
      async () => (await peerState(vipd["n1"]!, "r")) !== "Established",
      15_000,
    );
    bird = await startBird(lab, "r", birdConf);
    await waitFor("route back at BIRD", async () => (await routeAll(VIP)).includes("10.0.0.2"), 30_000);
    await waitFor(
      "kernel route back",
      async () => (await kernelRoutes(lab, "r")).includes(`${VIP} via 10.0.0.2`),
      10_000,
    );
    expect(await peerState(vipd["n1"]!, "r")).toBe("Established");
  }, 60_000);

  test("vipd restarted with graceful restart → the router keeps forwarding throughout", async () => {
    await waitFor(
      "n1 Established",
      async () => (await peerState(vipd["n1"]!, "r")) === "Established",
      20_000,
    );
    // Watch the router's kernel table every 50 ms for the whole restart: the route must never go.
    let checks = 0;
    const misses: string[] = [];
    let watching = true;
    const deadline = Date.now() + 45_000; // bounded even if an assertion below fails
    const watcher = (async () => {
      while (watching && Date.now() < deadline) {
        const t = await kernelRoutes(lab, "r").catch((e: unknown) => String(e));
        checks++;
        if (!t.includes(`${VIP} via 10.0.0.2`)) misses.push(t);
        await Bun.sleep(50);
      }
    })();
    await vipd["n1"]!.close(true);
    await Bun.sleep(1000);
    expect(await bird.cmd("show protocols all n1")).toContain("Neighbor graceful restart active");
    vipd["n1"] = await startVipd(
      lab,
      "n1",
      {
        ...vipdConfig(0),
        restarted: true,
        routes: {
          r: [
            {
              prefix: `${VIP}/32`,
              communities: ["64512:100", "no-export"],
              largeCommunities: ["64512:7:9"],
              med: 20,
            },
          ],
        },
      },
      "n1b",
    );
    await waitFor("n1 back", async () => (await peerState(vipd["n1"]!, "r")) === "Established", 20_000);
    // The new process said it restarted (R bit); BIRD ends graceful restart after our End-of-RIB.
    expect(await bird.cmd("show protocols all n1")).toContain("Restart recovery");
    await waitFor(
      "GR finished at BIRD",
      async () => !(await bird.cmd("show protocols all n1")).includes("graceful restart active"),
      10_000,
    );
    await Bun.sleep(300);
    watching = false;
    await watcher;
    expect(misses).toEqual([]);
    expect(checks).toBeGreaterThan(10);
  }, 60_000);

  test("without graceful restart a stop withdraws: the route leaves the kernel", async () => {
    await vipd["n1"]!.close(false);
    await waitFor("route gone", async () => !(await kernelRoutes(lab, "r")).includes(VIP), 15_000);
  }, 30_000);
});
