/**
 * Site convergence: a PUT on one member until every member has applied the same generation.
 * Three members, each its own process (`bun bench/site.ts --member NAME PORTS...`) running the
 * site driver (src/site/driver.ts: TCP site channel on loopback, the real allocator, site.json
 * written atomically before each apply). The parent sends 20 configuration changes, one at a
 * time, each through a member chosen in turn (so most are forwarded to the allocator), and takes
 * the time from the request to the last member's "applied" (absolute clock, one host).
 *
 * What it does not include: the data path (XDP map, gratuitous ARP) a member programs after it
 * applies — bench/failover.ts measures that.
 *
 * Closing line: `site converge ms p50: N` (goal p50 ≤ 100 ms, max ≤ 300 ms).
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { siteAllocate } from "../src/site/allocate.ts";
import { SiteDriver } from "../src/site/driver.ts";
import { createLogger } from "../src/util/log.ts";
import { startRecording } from "./lib/results.ts";

const KEY = new TextEncoder().encode("bench-site-key-0123456789abcdef!");
const NAMES = ["n1", "n2", "n3"];
const CHANGES = 20;
const abs = () => performance.timeOrigin + performance.now();

function cfg(n: number): string {
  const pool = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: [198.51.100.0/24] }
`;
  const svcs = Array.from(
    { length: n },
    (_, i) => `apiVersion: v1
kind: Service
metadata: { name: s${i}, namespace: default }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`,
  );
  return [pool, ...svcs].join("---\n");
}

/** A member process: lines on stdin are commands, events go to stdout as JSON lines. */
async function member(name: string, ports: number[]): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `vipd-bench-site-${name}-`));
  const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const driver = new SiteDriver({
    self: name,
    members: NAMES.map((n, i) => ({ name: n, address: "127.0.0.1", port: ports[i] })),
    key: KEY,
    port: ports[NAMES.indexOf(name)] as number,
    listen: "127.0.0.1",
    stateDir: dir,
    local: cfg(1),
    allocate: siteAllocate(() => undefined),
    apply: (s) => {
      out({ ev: "applied", name, generation: s.generation, t: abs() });
    },
    log: createLogger(`site-${name}`, { level: "warn" }),
    statusMs: 100,
    startupMs: 2000,
  });
  await driver.start();
  const ready = setInterval(() => {
    if (driver.consistent()) {
      clearInterval(ready);
      out({ ev: "ready", name, generation: driver.view().generation });
    }
  }, 20);
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of Bun.stdin.stream()) {
    buf += dec.decode(chunk, { stream: true });
    const lines = buf.split("\n");
    buf = lines.pop() ?? "";
    for (const l of lines) {
      const cmd = JSON.parse(l) as { op: "propose"; base: number; services: number } | { op: "stop" };
      if (cmd.op === "stop") {
        await driver.stop();
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      }
      void driver.propose(cmd.base, cfg(cmd.services)).then((r) => out({ ev: "result", name, ...r }));
    }
  }
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}

async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    out.push(l.port);
    l.stop(true);
  }
  return out;
}

async function main(): Promise<number> {
  const rec = startRecording("site");
  const ports = await freePorts(3);
  const events: Record<string, unknown>[] = [];
  const procs: Subprocess<"pipe", "pipe", "inherit">[] = [];
  const waiters: (() => void)[] = [];
  const cleanup = () => {
    for (const p of procs) p.kill("SIGKILL");
  };
  process.on("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  process.on("SIGTERM", () => {
    cleanup();
    process.exit(143);
  });
  try {
    for (const name of NAMES) {
      const p = Bun.spawn([process.execPath, import.meta.path, "--member", name, ...ports.map(String)], {
        stdin: "pipe",
        stdout: "pipe",
        stderr: "inherit",
      });
      procs.push(p);
      void (async () => {
        const dec = new TextDecoder();
        let buf = "";
        for await (const chunk of p.stdout) {
          buf += dec.decode(chunk, { stream: true });
          const lines = buf.split("\n");
          buf = lines.pop() ?? "";
          for (const l of lines) {
            events.push(JSON.parse(l) as Record<string, unknown>);
            for (const w of waiters.splice(0)) w();
          }
        }
      })();
    }
    const until = async (cond: () => boolean, what: string, ms = 15_000) => {
      const end = performance.now() + ms;
      while (!cond()) {
        if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    };
    await until(
      () => NAMES.every((n) => events.some((e) => e.ev === "ready" && e.name === n)),
      "the site to form",
    );
    const gen0 = Number(events.find((e) => e.ev === "ready")?.generation ?? 1);
    const converge: number[] = [];
    const answer: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const base = gen0 + i;
      const target = base + 1;
      const via = NAMES[i % NAMES.length] as string;
      const p = procs[i % NAMES.length] as Subprocess<"pipe", "pipe", "inherit">;
      const t0 = abs();
      p.stdin.write(`${JSON.stringify({ op: "propose", base, services: 2 + (i % 7) })}\n`);
      p.stdin.flush();
      await until(
        () =>
          NAMES.every((n) =>
            events.some((e) => e.ev === "applied" && e.name === n && e.generation === target),
          ) && events.some((e) => e.ev === "result" && e.name === via && e.generation === target),
        `generation ${target} everywhere`,
      );
      const applied = events
        .filter((e) => e.ev === "applied" && e.generation === target)
        .map((e) => Number(e.t));
      converge.push(Math.max(...applied) - t0);
      const res = events.find((e) => e.ev === "result" && e.name === via && e.generation === target);
      if (res?.ok !== true) throw new Error(`change ${i} via ${via} failed: ${JSON.stringify(res)}`);
      answer.push(abs() - t0);
    }
    const p50 = percentile(converge, 50);
    const max = Math.max(...converge);
    console.log(
      `changes: ${CHANGES} over 3 members (one process each, loopback TCP), via n1, n2, n3 in turn`,
    );
    console.log(
      `converge ms (PUT → last member applied): p50 ${p50.toFixed(1)} p90 ${percentile(converge, 90).toFixed(1)} max ${max.toFixed(1)}`,
    );
    console.log(
      `answer ms (PUT → proposer's result seen by the bench): p50 ${percentile(answer, 50).toFixed(1)}`,
    );
    for (const pr of procs) pr.stdin.write(`${JSON.stringify({ op: "stop" })}\n`);
    for (const pr of procs) pr.stdin.flush();
    await Promise.race([Promise.all(procs.map((pr) => pr.exited)), Bun.sleep(3000)]);
    await rec.finish({
      samples: { "converge.ms": converge, "answer.ms": answer },
      baseline: {},
      figures: { "site converge ms p50": p50, "site converge ms max": max },
      goals: [
        { figure: "site converge ms p50", op: "<=", value: 100, text: "median convergence ≤ 100 ms" },
        { figure: "site converge ms max", op: "<=", value: 300, text: "worst convergence ≤ 300 ms" },
      ],
      units: { "converge.ms": "ms", "answer.ms": "ms" },
      params: { members: 3, changes: CHANGES },
    });
    console.log(`site converge ms p50: ${p50.toFixed(1)}`);
    return 0;
  } finally {
    cleanup();
  }
}

if (process.argv[2] === "--member") {
  await member(process.argv[3] as string, process.argv.slice(4).map(Number));
} else {
  process.exit(await main());
}
