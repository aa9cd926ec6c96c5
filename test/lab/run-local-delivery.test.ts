/**
 * `vipd run --local-delivery` inside a network namespace the test makes (test/support/netns.ts): owned
 * VIPs become `local` routes (proto 201) that deliver traffic to the node itself, leave when their
 * Service leaves, converge after a restart, and VIPs another member owns are not installed.
 * Needs root.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Lab } from "../support/netns.ts";
import { until } from "../support/until.ts";
import { apiUrl, cleanup, POOL, ROOT, SVC, tempDir, Vipd } from "./run-harness.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

describe("vipd run --local-delivery (in a network namespace)", () => {
  test("owned VIPs become local routes (proto 201) that deliver traffic, and go when their Service goes", async () => {
    const lab = await Lab.create("run");
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const pool = POOL(["10.9.9.10-10.9.9.20", "fd09:9::10-fd09:9::20"]);
    const web = SVC("shop", "web").replace(
      "type: LoadBalancer",
      "type: LoadBalancer\n  ipFamilyPolicy: RequireDualStack",
    );
    const dns = SVC("infra", "dns");
    let v: Vipd | undefined;
    const routes = async (fam: "-4" | "-6") => {
      const r = await lab.run("node", ["ip", "-j", fam, "route", "show", "table", "local", "proto", "201"]);
      return (JSON.parse(r.stdout || "[]") as { dst: string; dev: string; type: string }[])
        .map((x) => `${x.type} ${x.dst} ${x.dev}`)
        .sort();
    };
    const applied = (n: number) =>
      until(`generation ${n} applied`, () =>
        v?.logs.find((l) => l.message === "configuration applied" && l["generation"] === n),
      );
    try {
      await lab.addNs("node");
      // A local route vipd did not install (another protocol): it must never touch it.
      await lab.run("node", ["ip", "route", "add", "local", "10.9.9.99", "dev", "lo", "table", "local"]);
      // Before vipd: the VIPs are unreachable in this namespace.
      const before = await lab.run("node", ["ping", "-c", "1", "-W", "1", "10.9.9.10"], {
        allowFail: true,
      });
      expect(before.code).not.toBe(0);

      writeFileSync(f, pool + web + dns);
      const start = () =>
        Vipd.start(["--config", f, "--state-dir", join(d, "state"), "--local-delivery"], {
          ns: { lab, name: "node" },
        });
      v = await start();
      await applied(1);
      const want4 = ["local 10.9.9.10 lo", "local 10.9.9.11 lo"];
      await until(
        "IPv4 local routes",
        async () => JSON.stringify(await routes("-4")) === JSON.stringify(want4),
      );
      await until(
        "IPv6 local route",
        async () => JSON.stringify(await routes("-6")) === JSON.stringify(["local fd09:9::10 lo"]),
      );
      // The kernel now delivers the VIPs' traffic to this node's own services.
      for (const ip of ["10.9.9.10", "10.9.9.11", "fd09:9::10"]) {
        const got = await lab.run("node", ["ip", "route", "get", ip]);
        expect(got.stdout).toMatch(new RegExp(`^local ${ip} (from :: )?dev lo `));
        const ping = await lab.run("node", ["ping", "-c", "1", "-W", "2", ip], { allowFail: true });
        expect(ping.code).toBe(0);
      }

      // dns sorts first (infra/dns) and got 10.9.9.10; web got 10.9.9.11 and fd09:9::10.
      expect((await lab.run("node", ["curl", "-s", `${apiUrl(v)}api/v1/services`])).stdout).toBe(
        JSON.stringify({
          items: [
            { namespace: "infra", name: "dns", ips: ["10.9.9.10"], pool: "lan", warnings: [] },
            { namespace: "shop", name: "web", ips: ["10.9.9.11", "fd09:9::10"], pool: "lan", warnings: [] },
          ],
        }),
      );
      // The Service web goes: its two addresses go, dns stays, the foreign route stays.
      writeFileSync(f, pool + dns);
      await applied(2);
      await until(
        "web's routes removed",
        async () =>
          JSON.stringify(await routes("-4")) === JSON.stringify(["local 10.9.9.10 lo"]) &&
          (await routes("-6")).length === 0,
      );
      const foreign = await lab.run("node", ["ip", "route", "show", "table", "local", "10.9.9.99"]);
      expect(foreign.stdout).toContain("local 10.9.9.99 dev lo");
      const readyz = await lab.run("node", ["curl", "-s", `${apiUrl(v)}readyz`]);
      expect(JSON.parse(readyz.stdout)).toEqual({ ready: true, reasons: [] });

      // A restart with a changed config converges on it: web alone, at the lowest free addresses.
      expect(await v.stop()).toBe(0);
      writeFileSync(f, pool + web);
      v = await start();
      await applied(1);
      await until(
        "routes after restart",
        async () =>
          JSON.stringify(await routes("-4")) === JSON.stringify(["local 10.9.9.10 lo"]) &&
          JSON.stringify(await routes("-6")) === JSON.stringify(["local fd09:9::10 lo"]),
      );
      expect(
        (await lab.run("node", ["ip", "route", "show", "table", "local", "10.9.9.99"])).stdout,
      ).toContain("10.9.9.99");
      expect(await v.stop()).toBe(0);
    } finally {
      await v?.kill();
      await lab.destroy();
    }
  });

  test("a VIP another member owns is not installed here", async () => {
    const lab = await Lab.create("run");
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    let v: Vipd | undefined;
    try {
      await lab.addNs("node");
      // Two VIPs and a peer node "n2": the election (sha256(node#ip)) gives each VIP to one node.
      const ips = ["10.9.10.10", "10.9.10.11", "10.9.10.12", "10.9.10.13"];
      const sha = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex");
      const mine = ips.filter((ip) => sha(`n1#${ip}`) < sha(`n2#${ip}`));
      expect(mine.length).toBeGreaterThan(0);
      expect(mine.length).toBeLessThan(ips.length);
      const settings = `---
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: n1 }
spec:
  members: [{ name: n2 }]
`;
      writeFileSync(
        f,
        POOL(["10.9.10.10-10.9.10.13"]) +
          settings +
          ips
            .map((ip, i) => SVC("shop", `s${i}`, `, annotations: { metallb.io/loadBalancerIPs: "${ip}" }`))
            .join(""),
      );
      v = await Vipd.start(["--config", f, "--state-dir", "", "--local-delivery"], {
        ns: { lab, name: "node" },
      });
      await until("the plan applied", () => v?.logs.find((l) => l.message === "API listening"));
      await until("exactly this node's VIPs as local routes", async () => {
        const r = await lab.run("node", [
          "ip",
          "-j",
          "-4",
          "route",
          "show",
          "table",
          "local",
          "proto",
          "201",
        ]);
        const got = (JSON.parse(r.stdout || "[]") as { dst: string }[]).map((x) => x.dst).sort();
        return JSON.stringify(got) === JSON.stringify(mine);
      });
      expect(await v.stop()).toBe(0);
    } finally {
      await v?.kill();
      await lab.destroy();
    }
  });
});

describe("LocalDeliveryDriver on its own (in a network namespace)", () => {
  test("applies diffs of whole plans, leaves foreign routes alone, holds during a start hold, removeAll", async () => {
    const lab = await Lab.create("rld");
    const d = tempDir();
    try {
      await lab.addNs("node");
      await lab.run("node", ["ip", "route", "add", "local", "10.9.11.99", "dev", "lo", "table", "local"]);
      // A script run inside the namespace: each step applies a plan and prints the routes after it.
      const script = join(d, "steps.ts");
      writeFileSync(
        script,
        `
import { LocalDeliveryDriver } from ${JSON.stringify(join(ROOT, "src/drivers/local-delivery.ts"))};
import { EMPTY_PLAN } from ${JSON.stringify(join(ROOT, "src/plan/plan.ts"))};
import { sh } from ${JSON.stringify(join(ROOT, "src/util/exec.ts"))};
const entry = (ip: string) => ({ ip, interfaces: [], services: ["a/b"], owner: "n1", candidates: ["n1"] });
const plan = (ips: string[], holdL2 = false) => ({ ...EMPTY_PLAN, node: "n1", l2: ips.map(entry), holdL2 });
const routes = async () => {
  const out: string[] = [];
  for (const fam of ["-4", "-6"]) {
    const r = await sh(["ip", "-j", fam, "route", "show", "table", "local", "proto", "201"]);
    for (const x of JSON.parse(r.stdout || "[]")) out.push(x.dst);
  }
  return out.sort();
};
const d = new LocalDeliveryDriver();
const steps: Record<string, unknown> = {};
await d.apply(plan(["10.9.11.1", "10.9.11.2", "fd09:11::1"]));
steps.first = await routes();
await d.apply(plan(["10.9.11.2", "10.9.11.3"]));
steps.diff = await routes();
await d.apply(plan([], true));
steps.hold = await routes();
steps.health = d.health();
// A new driver (a restarted vipd) converges from what the kernel has.
const again = new LocalDeliveryDriver();
await again.apply(plan(["10.9.11.3"]));
steps.restart = await routes();
await LocalDeliveryDriver.removeAll();
steps.removed = await routes();
console.log(JSON.stringify(steps));
`,
      );
      const r = await lab.run("node", [process.execPath, script], { timeoutMs: 30_000 });
      const steps = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}");
      expect(steps).toEqual({
        first: ["10.9.11.1", "10.9.11.2", "fd09:11::1"],
        diff: ["10.9.11.2", "10.9.11.3"],
        hold: ["10.9.11.2", "10.9.11.3"],
        health: { name: "local-delivery", healthy: true, detail: "2 local route(s)" },
        restart: ["10.9.11.3"],
        removed: [],
      });
      // The route vipd did not install is still there.
      const foreign = await lab.run("node", ["ip", "route", "show", "table", "local", "10.9.11.99"]);
      expect(foreign.stdout).toContain("local 10.9.11.99 dev lo");
    } finally {
      await lab.destroy();
    }
  });
});
