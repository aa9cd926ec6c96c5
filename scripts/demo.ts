/**
 * The live demo: a throwaway lab of network namespaces — a client, two vipd nodes and a router on
 * one bridge — with vipd running on both nodes from examples/appliance and examples/bgp. It shows what a person
 * would want to see: the Services' assigned IPs, which node owns each VIP, the client's ARP and
 * NDP answered with the owner's MAC, traffic reaching the VIP, the two nodes as one site (a config
 * change through node1's API applied by node2 at the same generation, with the same assignments),
 * a failover when the owner's link
 * goes down (at the switch port) and the failback when it comes back, with the client's
 * longest gap between ping replies each time.
 *
 * Everything lives in namespaces this script creates, and everything is removed on exit or
 * Ctrl-C. The machine's own interfaces are never touched.
 *
 *   bun scripts/demo.ts [--hold SECONDS] [--verbose]   (default: wait for Enter/Ctrl-C on a terminal, else exit;
 *                                                     --verbose shows the nodes' logs)
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { hashToken } from "../src/api/auth.ts";
import { Lab } from "../test/support/netns.ts";
import { type TempPins, tempPins } from "../test/support/xdp-testkit.ts";

const ROOT = join(import.meta.dir, "..");
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { hold: { type: "string" }, verbose: { type: "boolean", default: false } },
});

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s = "") => console.log(s);
const step = (s: string) => say(`\n${bold(`== ${s}`)}`);

const NODES = [
  { ns: "node1", name: "node1", v4: "10.77.0.11", v6: "fd77::11" },
  { ns: "node2", name: "node2", v4: "10.77.0.12", v6: "fd77::12" },
];

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(200);
  }
}

async function main(): Promise<number> {
  const lab = await Lab.create("demo");
  const work = mkdtempSync(join(tmpdir(), "vipd-demo-"));
  const pins: TempPins[] = [];
  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    await lab.destroy();
    for (const p of pins) await p.cleanup().catch(() => {});
    rmSync(work, { recursive: true, force: true });
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.on(sig, () => {
      say("\ncleaning up...");
      void cleanup().then(() => process.exit(130));
    });

  try {
    step("Building the lab (network namespaces only)");
    await lab.addNs("lan");
    const members: string[] = [];
    for (const host of ["client", "router", ...NODES.map((n) => n.ns)]) {
      await lab.addNs(host);
      await lab.veth("lan", `p-${host}`.slice(0, 15), host, "eth0");
      members.push(`p-${host}`.slice(0, 15));
    }
    await lab.bridge("lan", "br0", members);
    await lab.addr("client", "eth0", "10.77.0.2/24");
    await lab.addr("client", "eth0", "fd77::2/64");
    await lab.addr("router", "eth0", "10.77.0.1/24");
    for (const n of NODES) {
      await lab.addr(n.ns, "eth0", `${n.v4}/24`);
      await lab.addr(n.ns, "eth0", `${n.v6}/64`);
    }
    // A veth drops XDP_TX frames unless its peer runs an XDP program too: give the bridge ports one.
    for (const n of NODES)
      await lab.run("lan", [
        "ip",
        "link",
        "set",
        "dev",
        `p-${n.ns}`,
        "xdp",
        "obj",
        join(ROOT, "build/xdp/lab_pass.o"),
        "sec",
        "xdp",
      ]);
    say("  client 10.77.0.2 · router 10.77.0.1 · node1 10.77.0.11 · node2 10.77.0.12 — all on bridge br0");
    say(`  namespaces: ${lab.prefix}*`);

    step("Starting BIRD 2 on the router (AS 64500, ECMP into its kernel table)");
    const birdSock = join(work, "bird.ctl");
    writeFileSync(
      join(work, "bird.conf"),
      `router id 10.77.0.1;
protocol device { }
protocol kernel { ipv4 { import none; export all; }; merge paths on; }
protocol bfd { interface "eth0" { min rx interval 50 ms; min tx interval 50 ms; multiplier 3; }; }
template bgp vipd {
  local 10.77.0.1 as 64500;
  ipv4 { import all; export none; };
  hold time 9; connect retry time 2; error wait time 1,5; graceful restart on; bfd on;
}
${NODES.map((n) => `protocol bgp ${n.name} from vipd { neighbor ${n.v4} as 64512; }`).join("\n")}
`,
    );
    lab.spawn("router", ["bird", "-f", "-c", join(work, "bird.conf"), "-s", birdSock], { stderr: "ignore" });
    const birdc = (cmd: string) =>
      lab.run("router", ["birdc", "-s", birdSock, ...cmd.split(" ")], { allowFail: true });
    await waitFor("BIRD", async () => ((await birdc("show status")).code === 0 ? true : undefined));
    say("  bird is up, expecting vipd on node1 and node2 as BGP neighbours");

    step("Starting vipd on node1 and node2 (examples/appliance + examples/bgp)");
    writeFileSync(join(work, "cluster.key"), crypto.getRandomValues(new Uint8Array(32)), { mode: 0o600 });
    // An admin token made for this run: the nodes keep only its hash (NodeSettings api.tokens).
    const token = `demo-${Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("base64url")}`;
    const auth = `authorization: Bearer ${token}`;
    for (const n of NODES) {
      const dir = join(work, n.name);
      const settings = {
        apiVersion: "vipd.io/v1alpha1",
        kind: "NodeSettings",
        metadata: { name: n.name },
        spec: {
          nodeName: n.name,
          interfaces: ["eth0"],
          localDelivery: true,
          api: {
            listen: "127.0.0.1:7473",
            tokens: [{ name: "demo", role: "admin", hash: hashToken(token) }],
          },
          members: NODES.map((m) => ({ name: m.name, address: m.v4 })),
          cluster: { keyFile: join(work, "cluster.key") },
        },
      };
      Bun.spawnSync(["mkdir", "-p", join(dir, "config"), join(dir, "state")]);
      writeFileSync(join(dir, "config", "node.yaml"), JSON.stringify(settings, null, 2));
      for (const f of ["appliance/pools.yaml", "appliance/services.yaml", "bgp/bgp.yaml"])
        writeFileSync(
          join(dir, "config", f.replace("/", "-")),
          await Bun.file(join(ROOT, "examples", f)).text(),
        );
      const pin = await tempPins(`demo-${n.name}`);
      pins.push(pin);
      lab.spawn(
        n.ns,
        [
          "bun",
          join(ROOT, "src", "main.ts"),
          "run",
          "--config",
          join(dir, "config"),
          "--state-dir",
          join(dir, "state"),
        ],
        {
          stderr: values.verbose ? "inherit" : "ignore",
          env: { VIPD_LOG_LEVEL: values.verbose ? "info" : "warn", VIPD_BPF_PIN_DIR: pin.pinDir },
        },
      );
    }
    const api = async (ns: string, path: string): Promise<unknown> => {
      const r = await lab.run(
        ns,
        ["curl", "-sf", "--max-time", "2", "-H", auth, `http://127.0.0.1:7473${path}`],
        { allowFail: true },
      );
      if (r.code !== 0) return undefined;
      return JSON.parse(r.stdout);
    };
    for (const n of NODES) await waitFor(`vipd on ${n.name}`, () => api(n.ns, "/readyz"));
    // Live membership: each node listens to the other for a moment before it claims anything.
    await Bun.sleep(1500);
    say("  both nodes ready (GET /readyz → 200) and hearing each other's authenticated heartbeats");

    step("Services and their assigned IPs (GET /api/v1/services on node1)");
    const svcs = (await api("node1", "/api/v1/services")) as {
      items: { namespace: string; name: string; ips: string[]; pool?: string; reason?: string }[];
    };
    for (const s of svcs.items)
      say(
        `  ${`${s.namespace}/${s.name}`.padEnd(16)} ${s.ips.join(", ").padEnd(28)} ${s.pool ? `pool ${s.pool}` : (s.reason ?? "")}`,
      );
    const vips = [...new Set(svcs.items.flatMap((s) => s.ips))].sort();

    step("Who answers for each VIP: the client asks with arping / ndisc6");
    const macs = new Map<string, string>();
    for (const n of NODES) macs.set((await lab.mac(n.ns, "eth0")).toLowerCase(), n.name);
    const macOf = async (vip: string) => {
      const cmd = vip.includes(":")
        ? ["ndisc6", "-q", "-1", "-r", "3", "-w", "500", vip, "eth0"]
        : ["arping", "-c", "1", "-w", "2", "-I", "eth0", vip];
      const r = await lab.run("client", cmd, { allowFail: true });
      return /([0-9a-f]{2}(:[0-9a-f]{2}){5})/i.exec(r.stdout)?.[1]?.toLowerCase();
    };
    const ownerOf = async (vip: string) => {
      const mac = await macOf(vip);
      return mac ? (macs.get(mac) ?? mac) : "nobody";
    };
    for (const vip of vips) {
      const mac = await macOf(vip);
      say(`  ${vip.padEnd(14)} → ${mac ? `${mac} (${macs.get(mac) ?? "unknown"})` : "no answer"}`);
    }

    step("The answers came from XDP, before the kernel stack (GET /api/v1/xdp)");
    for (const n of NODES) {
      const x = (await api(n.ns, "/api/v1/xdp")) as {
        items?: unknown;
        interfaces: { name: string; mode: string; counters: Record<string, string> }[];
      };
      for (const i of x.interfaces)
        say(
          `  ${n.name} ${i.name} (${i.mode}): ARP replies ${i.counters.arp_replies ?? "0"}, NA replies ${i.counters.na_replies ?? "0"}, passed to the kernel ${Object.entries(
            i.counters,
          )
            .filter(([k]) => k.startsWith("pass_"))
            .reduce((a, [, v]) => a + Number(v), 0)}`,
        );
    }

    step("Traffic to a VIP reaches its owner (ping from the client)");
    for (const vip of vips.filter((v) => !v.includes(":"))) {
      const r = await lab.run("client", ["ping", "-c", "1", "-W", "1", vip], { allowFail: true });
      say(`  ping ${vip}: ${r.code === 0 ? "reply" : "no reply"}`);
    }

    step("The router's view: BGP sessions with both nodes, and ECMP routes to every VIP");
    await waitFor(
      "BGP sessions",
      async () =>
        (await birdc("show protocols")).stdout.match(/Established/g)?.length === NODES.length
          ? true
          : undefined,
      30_000,
    ).catch(() => undefined);
    for (const line of (await birdc("show protocols")).stdout.split("\n"))
      if (/^node\d/.test(line)) say(`  ${line.replace(/\s+/g, " ").trim()}`);
    await waitFor("routes", async () => {
      const r = await lab.run("router", ["ip", "route", "show", "10.77.0.100"], { allowFail: true });
      return r.stdout.includes("nexthop") ? true : undefined;
    }).catch(() => undefined);
    for (const vip of vips.filter((v) => !v.includes(":"))) {
      const r = await lab.run("router", ["ip", "route", "show", vip], { allowFail: true });
      const hops = [...r.stdout.matchAll(/via (\S+)/g)].map((m) => m[1]);
      say(
        `  ${vip.padEnd(14)} → ${hops.length > 0 ? hops.join(" and ") : "no route"}${hops.length > 1 ? " (ECMP)" : ""}`,
      );
    }
    const comm = await birdc("show route 10.77.0.100/32 all");
    const c = /BGP\.community: (.*)/.exec(comm.stdout)?.[1];
    if (c) say(`  10.77.0.100/32 carries community ${c.trim()} (the "no-export-site" alias)`);

    step("One site, one truth: a config change through node1's API, applied by node2 (PUT /api/v1/config)");
    interface SiteView {
      generation: number;
      applied: number;
      madeBy: string | null;
      allocator: string | null;
      digest: string;
      consistent: boolean;
    }
    const siteOf = (ns: string) => api(ns, "/api/v1/site") as Promise<SiteView | undefined>;
    /** Each Service and its IPs, as one node's API lists them. */
    const assignments = async (ns: string) => {
      const r = (await api(ns, "/api/v1/services")) as {
        items: { namespace: string; name: string; ips: string[] }[];
      };
      return r.items.map((s) => `${s.namespace}/${s.name}=${s.ips.join(",")}`).sort();
    };
    const agreed = (gen?: number) =>
      waitFor("the two nodes to agree", async () => {
        const [a, b] = await Promise.all([siteOf("node1"), siteOf("node2")]);
        if (!a?.consistent || !b?.consistent || a.generation !== b.generation || a.digest !== b.digest)
          return;
        // Held by both, and applied by both (their data paths run it).
        if (a.applied !== a.generation || b.applied !== b.generation) return;
        return gen === undefined || a.generation === gen ? a : undefined;
      });
    const was = await agreed();
    say(
      `  both nodes hold site generation ${was.generation} (made by ${was.madeBy}); ${was.allocator} allocates`,
    );
    const current = (await api("node1", "/api/v1/config")) as { etag: string; yaml: string };
    const body = join(work, "site-put.yaml");
    writeFileSync(
      body,
      `${current.yaml.trimEnd()}\n---\napiVersion: v1\nkind: Service\nmetadata: { name: api, namespace: shop }\nspec: { type: LoadBalancer, selector: { app: api }, ports: [{ name: http, port: 80 }] }\n`,
    );
    const put = await lab.run(
      "node1",
      [
        "curl",
        "-s",
        "--max-time",
        "15",
        "-X",
        "PUT",
        "-H",
        auth,
        "-H",
        "content-type: application/yaml",
        "-H",
        `if-match: "${current.etag}"`,
        "--data-binary",
        `@${body}`,
        "-w",
        "\n%{http_code}",
        "http://127.0.0.1:7473/api/v1/config",
      ],
      { allowFail: true },
    );
    const code = put.stdout.slice(put.stdout.lastIndexOf("\n") + 1);
    if (code !== "200") throw new Error(`PUT /api/v1/config on node1 answered ${code}: ${put.stdout}`);
    say("  node1: PUT /api/v1/config with one Service more (shop/api) → 200");
    const now1 = await agreed(was.generation + 1);
    const now2 = (await siteOf("node2")) as SiteView;
    const [a1, a2] = await Promise.all([assignments("node1"), assignments("node2")]);
    const same = a1.join(";") === a2.join(";");
    say(
      `  node1 PUT generation ${now1.generation} -> node2 generation ${now2.generation}, assignments ${same ? "identical" : "DIFFERENT"} (digest ${now2.digest})`,
    );
    const added = a2.find((x) => x.startsWith("shop/api="));
    if (added) say(`  node2 serves ${added.replace("=", " at ")}, as node1 allocated it`);
    if (!same) throw new Error(`the nodes disagree: node1 ${a1.join(" ")} / node2 ${a2.join(" ")}`);

    /** The longest gap between the replies of a `ping -D` run (ms). */
    const longestGap = (out: string): { replies: number; gapMs: number } => {
      const times = [...out.matchAll(/^\[(\d+\.\d+)\]/gm)].map((m) => Number(m[1]));
      let gap = 0;
      for (let i = 1; i < times.length; i++)
        gap = Math.max(gap, (times[i] as number) - (times[i - 1] as number));
      return { replies: times.length, gapMs: Math.round(gap * 1000) };
    };

    step("Failover: the owner's link goes down (its switch port) while the client pings the VIP every 10 ms");
    const owned = await ownerOf("10.77.0.100");
    const victim = NODES.find((n) => n.name === owned) ?? (NODES[0] as (typeof NODES)[number]);
    const survivor = NODES.find((n) => n !== victim) as (typeof NODES)[number];
    const probe = lab.spawn(
      "client",
      ["ping", "-D", "-n", "-i", "0.01", "-W", "0.2", "-w", "5", "10.77.0.100"],
      {
        stdout: "pipe",
      },
    );
    await Bun.sleep(1000);
    const downAt = performance.now();
    // The link fails at the switch (the node's bridge port): the node sees its carrier go, and
    // keeps its addresses and routes, as when a cable or a switch port fails.
    await lab.run("lan", ["ip", "link", "set", `p-${victim.ns}`.slice(0, 15), "down"]);
    // Meanwhile on the router: BFD notices the dead neighbour and BIRD drops its ECMP path.
    let withdrawnMs: number | undefined;
    while (performance.now() - downAt < 3000) {
      const r = await lab.run("router", ["ip", "route", "show", "10.77.0.100"], { allowFail: true });
      if (!r.stdout.includes(victim.v4)) {
        withdrawnMs = performance.now() - downAt;
        break;
      }
      await Bun.sleep(10);
    }
    const out = await new Response(probe.stdout as ReadableStream).text();
    await probe.exited;
    const down = longestGap(out);
    say(`  ${victim.name} owned 10.77.0.100; its link went down 1 s into the probe`);
    say(`  now answering: ${await ownerOf("10.77.0.100")} (expected ${survivor.name})`);
    say(`  ${down.replies} replies in 5 s; longest gap between replies: ${down.gapMs} ms`);
    say(
      withdrawnMs !== undefined
        ? `  router: BFD took ${victim.name}'s path out of the ECMP route ${Math.round(withdrawnMs)} ms after the link went down`
        : `  router: ${victim.name}'s path was still in the ECMP route after 3 s`,
    );

    step(`Failback: ${victim.name}'s link comes back while the client keeps pinging`);
    // The client's ping trusts its neighbour cache, which now holds the survivor's MAC: the VIP
    // returns without a gap only if the returning owner announces it (gratuitous ARP / NA) and
    // the survivor keeps answering until it has (make before break).
    const back = lab.spawn(
      "client",
      ["ping", "-D", "-n", "-i", "0.01", "-W", "0.2", "-w", "6", "10.77.0.100"],
      {
        stdout: "pipe",
      },
    );
    await Bun.sleep(1000);
    await lab.run("lan", ["ip", "link", "set", `p-${victim.ns}`.slice(0, 15), "up"]);
    const backOut = await new Response(back.stdout as ReadableStream).text();
    await back.exited;
    const up = longestGap(backOut);
    say(`  ${victim.name}'s link came back 1 s into the probe`);
    say(`  now answering: ${await ownerOf("10.77.0.100")} (expected ${victim.name})`);
    say(`  ${up.replies} replies in 6 s; longest gap between replies: ${up.gapMs} ms`);

    const hold =
      values.hold !== undefined ? Number(values.hold) : process.stdin.isTTY ? Number.POSITIVE_INFINITY : 0;
    if (hold > 0) {
      say(`\nThe lab stays up${Number.isFinite(hold) ? ` for ${hold} s` : ""}. Try, in another terminal:`);
      say(`  ip netns exec ${lab.nsName("client")} arping -c 3 10.77.0.100`);
      say(`  ip netns exec ${lab.nsName("node1")} curl -s -H '${auth}' 127.0.0.1:7473/api/v1/site`);
      say(Number.isFinite(hold) ? "" : "Press Enter or Ctrl-C to tear it down.");
      await Promise.race([
        Bun.sleep(Number.isFinite(hold) ? hold * 1000 : 2 ** 31 - 1),
        new Promise<void>((resolve) => {
          if (!Number.isFinite(hold)) process.stdin.once("data", () => resolve());
        }),
      ]);
    }
    return 0;
  } catch (e) {
    console.error(`demo failed: ${(e as Error).message}`);
    return 1;
  } finally {
    await cleanup();
    say("lab removed.");
  }
}

process.exit(await main());
