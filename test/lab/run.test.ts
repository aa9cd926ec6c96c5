/**
 * `vipd run` as an operator runs it (real processes; harness in run-harness.ts): the API answers
 * with the assignments; SIGHUP and file changes apply a new generation; an invalid edit keeps the
 * running one and the log says why; SIGTERM exits 0; a restart keeps every Service's addresses
 * even when the set changed. No fixed sleeps for outcomes: everything is polled with a deadline.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "../support/until.ts";
import { cleanup, DEADLINE_MS, EXAMPLE, POOL, ROOT, SVC, tempDir, Vipd } from "./run-harness.ts";

// Several processes start and stop per test, each step polled up to DEADLINE_MS.
setDefaultTimeout(90_000);
afterAll(cleanup);

describe("vipd run: the API, reloads and shutdown", () => {
  test("serves the example appliance's pools and Services: ready, addresses, pool usage", async () => {
    const d = tempDir();
    // The example's bgp.yaml is left out: its router is not on this machine, and test traffic
    // stays on loopback.
    mkdirSync(join(d, "conf"));
    for (const f of ["pools.yaml", "services.yaml"]) copyFileSync(join(EXAMPLE, f), join(d, "conf", f));
    const v = await Vipd.ready(["--config", join(d, "conf"), "--state-dir", join(d, "state")]);
    try {
      const ready = await v.api("/readyz");
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ ready: true, reasons: [] });
      expect(await v.ips()).toEqual({
        "infra/dns": ["10.77.0.110"],
        "infra/dns-tcp": ["10.77.0.110"],
        "shop/web": ["10.77.0.100", "fd77::100"],
      });
      const pools = await v.json<{ items: unknown[] }>("/api/v1/pools");
      expect(pools.items).toEqual([
        {
          name: "site",
          autoAssign: true,
          families: [
            { family: "IPv4", assigned: "2", available: "18" },
            { family: "IPv6", assigned: "1", available: "15" },
          ],
        },
      ]);
      const st = await v.json<{ node: string; configGeneration: number; ready: boolean }>("/api/v1/status");
      expect([st.node, st.configGeneration, st.ready]).toEqual(["n1", 1, true]);
      // The assignments are on disk for the next start.
      expect(JSON.parse(readFileSync(join(d, "state", "assignments.json"), "utf8"))).toEqual({
        "infra/dns": { ips: ["10.77.0.110"], pool: "site" },
        "infra/dns-tcp": { ips: ["10.77.0.110"], pool: "site" },
        "shop/web": { ips: ["10.77.0.100", "fd77::100"], pool: "site" },
      });
      expect(await v.stop()).toBe(0);
      expect(v.logs.at(-1)?.message).toBe("stopped");
    } finally {
      await v.kill();
    }
  });

  test("SIGHUP reloads a change the file watcher cannot see (the config is a symlink to another directory)", async () => {
    const d = tempDir();
    mkdirSync(join(d, "real"));
    mkdirSync(join(d, "etc"));
    const real = join(d, "real", "vipd.yaml");
    writeFileSync(real, POOL(["10.9.0.10-10.9.0.20"]) + SVC("shop", "web"));
    symlinkSync(real, join(d, "etc", "vipd.yaml"));
    const v = await Vipd.ready(["--config", join(d, "etc", "vipd.yaml"), "--state-dir", ""]);
    try {
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.0.10"] });
      writeFileSync(real, POOL(["10.9.0.10-10.9.0.20"]) + SVC("shop", "web") + SVC("shop", "api"));
      v.proc.kill("SIGHUP");
      await v.waitGeneration(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.0.10"], "shop/api": ["10.9.0.11"] });
      const applied = v.logs.filter((l) => l.message === "configuration applied");
      expect(applied.map((l) => [l["reason"], l["generation"]])).toEqual([
        ["start", 1],
        ["SIGHUP", 2],
      ]);
      // SIGHUP with nothing changed reads the files and applies nothing new.
      v.proc.kill("SIGHUP");
      await until("an unchanged reload", async () => (await v.reloads("unchanged")) === 1);
      expect(await v.generation()).toBe(2);
      // An edit that removes a Service: SIGHUP applies it, and the Service's address is released.
      writeFileSync(real, POOL(["10.9.0.10-10.9.0.20"]) + SVC("shop", "api"));
      v.proc.kill("SIGHUP");
      await v.waitGeneration(3);
      expect(await v.ips()).toEqual({ "shop/api": ["10.9.0.11"] });
      expect(v.logs.some((l) => l["event"] === "IPReleased" && l["service"] === "shop/web")).toBe(true);
      expect(await v.stop()).toBe(0);
    } finally {
      await v.kill();
    }
  });

  test("a file change alone reloads: edited in place, replaced by rename, or added to the directory", async () => {
    const d = tempDir();
    const conf = join(d, "conf");
    mkdirSync(conf);
    writeFileSync(join(conf, "pools.yaml"), POOL(["10.9.1.10-10.9.1.20"]));
    writeFileSync(join(conf, "services.yaml"), SVC("shop", "web"));
    const v = await Vipd.ready(["--config", conf, "--state-dir", ""]);
    try {
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.1.10"] });
      writeFileSync(join(conf, "services.yaml"), SVC("shop", "web") + SVC("shop", "api"));
      await v.waitGeneration(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.1.10"], "shop/api": ["10.9.1.11"] });
      // An editor's save: write a temp file, rename it over the old one.
      writeFileSync(join(conf, ".services.yaml.swp"), SVC("shop", "api"));
      renameSync(join(conf, ".services.yaml.swp"), join(conf, "services.yaml"));
      await v.waitGeneration(3);
      expect(await v.ips()).toEqual({ "shop/api": ["10.9.1.11"] });
      // A new file in the directory.
      writeFileSync(join(conf, "more.yaml"), SVC("ops", "grafana"));
      await v.waitGeneration(4);
      expect(await v.ips()).toEqual({ "shop/api": ["10.9.1.11"], "ops/grafana": ["10.9.1.10"] });
      // A new subdirectory, and a file in it.
      mkdirSync(join(conf, "team-b"));
      writeFileSync(join(conf, "team-b", "svc.yaml"), SVC("team-b", "shop"));
      await v.waitGeneration(5);
      expect((await v.ips())["team-b/shop"]).toEqual(["10.9.1.12"]);
      // A file that is not a manifest (no .yaml/.yml/.json): a reload that finds nothing new.
      const before = await v.reloads("unchanged");
      writeFileSync(join(conf, "README.md"), "# notes\n");
      await until("the unchanged reload", async () => (await v.reloads("unchanged")) > before);
      expect(await v.generation()).toBe(5);
      const reasons = v.logs.filter((l) => l.message === "configuration applied").map((l) => l["reason"]);
      expect(reasons).toEqual(["start", "file change", "file change", "file change", "file change"]);
    } finally {
      await v.kill();
    }
  });

  test("an invalid edit keeps the running generation and its addresses, and the log says why", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const good = POOL(["10.9.2.10-10.9.2.20"]) + SVC("shop", "web");
    writeFileSync(f, good);
    const v = await Vipd.ready(["--config", f, "--state-dir", join(d, "state")]);
    try {
      const before = await v.ips();
      expect(before).toEqual({ "shop/web": ["10.9.2.10"] });
      // A typo in a field name and an address outside any pool.
      writeFileSync(
        f,
        `${POOL(["10.9.2.10-10.9.2.20"]).replace("ipAddressPools", "ipAdressPools")}${SVC("shop", "web")}`,
      );
      const rejected = await until("the rejection in the log", () =>
        v.logs.find((l) => l.message === "configuration rejected"),
      );
      expect(rejected.level).toBe("error");
      expect(rejected["reason"]).toBe("file change");
      expect(rejected["keptGeneration"]).toBe(1);
      const problems = rejected["problems"] as string[];
      expect(problems).toHaveLength(1);
      expect(problems[0]).toStartWith(`${f}:11: L2Advertisement/lan-l2: spec.ipAdressPools: `);
      expect(problems[0]).toContain("ipAddressPools");
      // Nothing changed: same generation, same addresses, same file on disk for the state.
      expect(await v.generation()).toBe(1);
      expect(await v.ips()).toEqual(before);
      expect((await v.api("/readyz")).status).toBe(200);
      // Monitoring sees it: the last reload failed.
      const metrics = await (await v.api("/metrics")).text();
      expect(metrics).toContain("vipd_config_last_reload_successful 0\n");
      expect(metrics).toContain('vipd_config_reloads_total{result="rejected"} 1\n');
      // SIGHUP does not make it acceptable either.
      v.proc.kill("SIGHUP");
      await until("a second rejection", () =>
        v.logs.find((l) => l.message === "configuration rejected" && l["reason"] === "SIGHUP"),
      );
      expect(await v.generation()).toBe(1);
      // A YAML syntax error is rejected the same way.
      writeFileSync(f, `${good}  ports: [ {\n`);
      await until(
        "the syntax error",
        () => v.logs.filter((l) => l.message === "configuration rejected").length >= 3 || undefined,
      );
      expect(await v.generation()).toBe(1);
      expect(await v.ips()).toEqual(before);
      // Fixing the file applies it.
      writeFileSync(f, good + SVC("shop", "api"));
      await v.waitGeneration(2);
      expect(await v.ips()).toEqual({ "shop/web": ["10.9.2.10"], "shop/api": ["10.9.2.11"] });
      expect(await (await v.api("/metrics")).text()).toContain("vipd_config_last_reload_successful 1\n");
    } finally {
      await v.kill();
    }
  });

  test("--help prints the usage and exits 0; a missing --config or an unknown flag exits 2", async () => {
    const run = (...args: string[]) =>
      Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "run", ...args], {
        stdout: "pipe",
        stderr: "pipe",
      });
    const help = run("--help");
    expect(help.exitCode).toBe(0);
    expect(help.stdout.toString()).toStartWith("usage: vipd run --config PATH");
    const none = run();
    expect(none.exitCode).toBe(2);
    expect(none.stderr.toString()).toStartWith("vipd run: --config is required\n");
    const unknown = run("--config", "x.yaml", "--frobnicate");
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr.toString()).toContain("--frobnicate");
  });

  test("the API port is taken: exit 1 with the reason in the log, not a stack trace", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    writeFileSync(f, POOL(["10.9.3.10-10.9.3.20"]) + SVC("shop", "web"));
    const first = await Vipd.ready(["--config", f, "--state-dir", ""]);
    const second = await Vipd.start(["--config", f, "--state-dir", "", "--api-listen", first.base.slice(7)]);
    try {
      expect(await Promise.race([second.proc.exited, Bun.sleep(DEADLINE_MS).then(() => "late")])).toBe(1);
      await second.kill();
      const err = second.logs.find((l) => l.message === "cannot serve the API; exiting");
      expect(err?.["listen"]).toBe(first.base.slice(7));
      expect(second.logs.every((l) => l.level !== "raw")).toBe(true);
      // The first one is unaffected.
      expect((await first.api("/readyz")).status).toBe(200);
    } finally {
      await second.kill();
      await first.kill();
    }
  });

  test("an invalid configuration at start: exit 1, with the problem in the log", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    writeFileSync(f, POOL(["10.9.3.300"]));
    const v = await Vipd.start(["--config", f, "--state-dir", ""]);
    try {
      expect(await Promise.race([v.proc.exited, Bun.sleep(DEADLINE_MS).then(() => "late")])).toBe(1);
      await v.kill();
      const rejected = v.logs.find((l) => l.message === "configuration rejected");
      expect(((rejected?.["problems"] ?? []) as string[])[0]).toStartWith(
        `${f}:5: IPAddressPool/lan: spec.addresses[0]: `,
      );
      expect(v.logs.some((l) => l.message === "API listening")).toBe(false);
    } finally {
      await v.kill();
    }
  });

  test("SIGTERM: exits 0 promptly, also while reloads are being triggered", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    writeFileSync(f, POOL(["10.9.4.10-10.9.4.20"]) + SVC("shop", "web"));
    const v = await Vipd.ready(["--config", f, "--state-dir", join(d, "state")]);
    try {
      writeFileSync(f, POOL(["10.9.4.10-10.9.4.20"]) + SVC("shop", "web") + SVC("shop", "api"));
      v.proc.kill("SIGHUP");
      expect(await v.stop()).toBe(0);
      expect(v.logs.some((l) => l.message === "shutting down" && l["signal"] === "SIGTERM")).toBe(true);
      // The API port is closed.
      await expect(fetch(`${v.base}/readyz`)).rejects.toThrow();
    } finally {
      await v.kill();
    }
  });

  test("SIGTERM or SIGINT while still starting: it finishes starting, then exits 0", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    // A few hundred Services make the start take a moment.
    writeFileSync(
      f,
      POOL(["10.11.0.0/22"]) + Array.from({ length: 300 }, (_, i) => SVC("shop", `s${i}`)).join(""),
    );
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      const v = await Vipd.start(["--config", f, "--state-dir", ""]);
      try {
        // Once it has logged anything its handlers are installed, while the start is likely not over.
        await until("the first log line", () => v.logs.length > 0 || undefined);
        v.proc.kill(sig);
        const code = await Promise.race([v.proc.exited, Bun.sleep(DEADLINE_MS).then(() => "late")]);
        expect(code).toBe(0);
        await v.kill();
        expect(v.logs.find((l) => l.message === "shutting down")?.["signal"]).toBe(sig);
        expect(v.logs.at(-1)?.message).toBe("stopped");
      } finally {
        await v.kill();
      }
    }
  });
});

describe("vipd run: addresses survive a restart", () => {
  test("b allocated first, then a added: after restarts a and b keep their IPs, whatever the order", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const state = join(d, "state");
    const pool = POOL(["10.9.5.10-10.9.5.20", "fd09:5::10-fd09:5::20"]);
    const dual = ", annotations: {}";
    const dualSpec = (s: string) =>
      s.replace("type: LoadBalancer", "type: LoadBalancer\n  ipFamilyPolicy: RequireDualStack");

    writeFileSync(f, pool + dualSpec(SVC("shop", "b", dual)));
    let v = await Vipd.ready(["--config", f, "--state-dir", state]);
    try {
      expect(await v.ips()).toEqual({ "shop/b": ["10.9.5.10", "fd09:5::10"] });
      expect(await v.stop()).toBe(0);

      // a sorts before b: without the state file it would take b's addresses.
      writeFileSync(f, pool + dualSpec(SVC("shop", "a", dual)) + dualSpec(SVC("shop", "b", dual)));
      v = await Vipd.ready(["--config", f, "--state-dir", state]);
      const want = { "shop/a": ["10.9.5.11", "fd09:5::11"], "shop/b": ["10.9.5.10", "fd09:5::10"] };
      expect(await v.ips()).toEqual(want);
      expect(await v.stop()).toBe(0);

      // Again, with the order in the file reversed and a third Service before both.
      writeFileSync(
        f,
        pool + dualSpec(SVC("shop", "b", dual)) + dualSpec(SVC("shop", "a", dual)) + SVC("ops", "zero"),
      );
      v = await Vipd.ready(["--config", f, "--state-dir", state]);
      expect(await v.ips()).toEqual({ ...want, "ops/zero": ["10.9.5.12"] });
      expect(await v.stop()).toBe(0);

      // The control: the same config with an empty state directory re-addresses them.
      v = await Vipd.ready(["--config", f, "--state-dir", join(d, "fresh")]);
      const fresh = await v.ips();
      expect(fresh["shop/a"]).not.toEqual(want["shop/a"]);
      expect(fresh["shop/b"]).not.toEqual(want["shop/b"]);
      expect(await v.stop()).toBe(0);
    } finally {
      await v.kill();
    }
  });

  // Changed from "kept but reported as stranded": as MetalLB, an address no pool allows is not
  // adopted; the Service is re-addressed at the restart and the API and log say why.
  test("a state file naming an address the pool no longer has: that Service re-addressed and told why, the others untouched", async () => {
    const d = tempDir();
    const f = join(d, "vipd.yaml");
    const state = join(d, "state");
    writeFileSync(f, POOL(["10.9.6.10-10.9.6.20"]) + SVC("shop", "a") + SVC("shop", "b"));
    let v = await Vipd.ready(["--config", f, "--state-dir", state]);
    try {
      expect(await v.ips()).toEqual({ "shop/a": ["10.9.6.10"], "shop/b": ["10.9.6.11"] });
      expect(await v.stop()).toBe(0);
      // The pool shrinks while vipd is down; a's address is no longer in it. b keeps its address
      // (still valid); a gets a new one, before the newcomer c.
      writeFileSync(
        f,
        POOL(["10.9.6.11-10.9.6.20"]) + SVC("shop", "a") + SVC("shop", "b") + SVC("shop", "c"),
      );
      v = await Vipd.ready(["--config", f, "--state-dir", state]);
      expect(await v.ips()).toEqual({
        "shop/a": ["10.9.6.12"],
        "shop/b": ["10.9.6.11"],
        "shop/c": ["10.9.6.13"],
      });
      const items = (await v.json<{ items: { name: string; warnings: string[] }[] }>("/api/v1/services"))
        .items;
      expect(items.find((x) => x.name === "a")?.warnings).toEqual([
        "released 10.9.6.10: 10.9.6.10 is not in any pool",
      ]);
      expect(items.find((x) => x.name === "b")?.warnings).toEqual([]);
      expect(
        v.logs.some(
          (l) =>
            l["event"] === "IPReleased" &&
            l["service"] === "shop/a" &&
            l.message === "released 10.9.6.10: 10.9.6.10 is not in any pool",
        ),
      ).toBe(true);
    } finally {
      await v.kill();
    }
  });
});
