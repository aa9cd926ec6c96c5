/**
 * Layer-2 failover benchmark (needs root): `bun bench/failover.ts [--rounds 10]`
 *
 * Three real `vipd run` nodes and a client on one bridge (src/cluster/lab/cluster-lab.ts),
 * default timers (heartbeat 50 ms, dead after 200 ms, rise 1 s). The client sends a UDP probe to
 * the VIP every 10 ms; each node's responder answers with its name. Per round the VIP's owner
 * is killed (-9: vipd only, the node's service keeps running), crashes (vipd and the service
 * killed together), is stopped (SIGSTOP) or loses its link; the failover gap is the longest silence
 * between answers from just before the event to the first answer from the new owner. Then the old
 * owner returns (restart, SIGCONT, link up) and takes its VIP back: that hand-back gap is
 * reported too. The kinds are interleaved, `--rounds` of each.
 *
 * Baseline, measured in the same run: the longest silence in a window of the same length with no
 * event (the noise floor of this shared machine and of the 10 ms probe). Medians, worst, ratios.
 * The last line is `max failover ms: N`. Every loop is bounded in count and time.
 */

import { absNow, ClusterLab, type Probe, until } from "../src/cluster/lab/cluster-lab.ts";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const ROUNDS = Math.min(100, Math.max(1, arg("rounds", 10)));
const KINDS = ["kill -9", "crash", "SIGSTOP", "link down"] as const;
type Kind = (typeof KINDS)[number];
const WINDOW_MS = 1500;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0
    ? Number.NaN
    : s.length % 2
      ? (s[m] as number)
      : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const fmt = (x: number) => x.toFixed(0).padStart(5);

async function stopProbe(c: ClusterLab, p: Probe): Promise<void> {
  await c.lab.stop(p.proc, "SIGTERM", 1000);
  await p.done.catch(() => {});
}

/** Brings every node back: link up, SIGCONT, restart what is not running. */
async function restore(c: ClusterLab): Promise<void> {
  for (const n of c.nodes) {
    await c.lab.run(n.ns, ["ip", "link", "set", "eth0", "up"], { allowFail: true });
    if (n.stopped) {
      n.proc?.kill("SIGCONT");
      n.stopped = false;
    }
    if (n.responder === undefined) c.startResponder(n);
    if (n.proc === undefined) c.start(n);
  }
}

async function main(): Promise<number> {
  const c = await ClusterLab.create({ tag: "l2b" });
  const failover: Record<Kind, number[]> = { "kill -9": [], crash: [], SIGSTOP: [], "link down": [] };
  const handback: Record<Kind, number[]> = { "kill -9": [], crash: [], SIGSTOP: [], "link down": [] };
  const baseline: number[] = [];
  const failures: string[] = [];
  const deadline = Date.now() + 30 * 60_000;
  try {
    await c.startAll();
    for (let round = 0; round < ROUNDS && Date.now() < deadline; round++) {
      for (const kind of KINDS) {
        const owner = c.node(await c.settled(30_000));
        const p = c.probe(10, 20_000);
        try {
          await until("probe answers", async () => p.answers.length > 30, 10_000);
          // Baseline: a quiet window of the same length, just before the event.
          const b0 = absNow();
          await Bun.sleep(WINDOW_MS);
          baseline.push(p.maxGap(b0, b0 + WINDOW_MS));

          const t = absNow();
          if (kind === "kill -9") {
            owner.proc?.kill("SIGKILL");
            await owner.proc?.exited;
            owner.proc = undefined;
          } else if (kind === "crash") {
            await c.crash(owner);
          } else if (kind === "SIGSTOP") {
            owner.proc?.kill("SIGSTOP");
            owner.stopped = true;
          } else {
            await c.lab.run(owner.ns, ["ip", "link", "set", "eth0", "down"]);
          }
          const first = await until(
            "an answer from another node",
            async () => p.since(t).find((a) => a.node !== owner.name),
            10_000,
          );
          const gap = p.maxGap(t - 200, first.t);
          failover[kind].push(gap);
          await Bun.sleep(500);

          // The old owner returns and takes its VIP back once.
          const r = absNow();
          if (kind === "kill -9") c.start(owner);
          else if (kind === "crash") {
            c.startResponder(owner);
            c.start(owner);
          } else if (kind === "SIGSTOP") {
            owner.proc?.kill("SIGCONT");
            owner.stopped = false;
          } else await c.lab.run(owner.ns, ["ip", "link", "set", "eth0", "up"]);
          await until(
            "the old owner to answer again",
            async () => p.since(r).find((a) => a.node === owner.name),
            15_000,
          );
          await Bun.sleep(300);
          handback[kind].push(p.maxGap(r, absNow()));
          console.log(
            `round ${round + 1} ${kind.padEnd(9)} owner ${owner.name}: failover gap ${fmt(gap)} ms (to ${first.node}), hand-back gap ${fmt(handback[kind].at(-1) as number)} ms`,
          );
        } catch (e) {
          // Reported, counted, and the cluster restored; the run goes on.
          failures.push(`round ${round + 1} ${kind}: ${(e as Error).message.split("\n")[0]}`);
          console.log(`round ${round + 1} ${kind.padEnd(9)} owner ${owner.name}: FAILED: ${failures.at(-1)}`);
          console.log(`  probe: ${p.answers.length} answers, last ${JSON.stringify(p.answers.at(-1))}`);
          for (const n of c.nodes)
            console.log(
              `  ${n.name} log tail:\n    ${n.logs
                .filter((l) => !l.includes('"request"'))
                .slice(-5)
                .join("\n    ")}`,
            );
          await restore(c);
        } finally {
          await stopProbe(c, p);
        }
      }
    }
  } finally {
    await c.destroy();
  }

  const base = median(baseline);
  console.log("");
  console.log(
    `baseline (no event, ${WINDOW_MS} ms windows): median longest silence ${fmt(base)} ms, worst ${fmt(Math.max(...baseline))} ms (n=${baseline.length})`,
  );
  console.log("kind       n   median  worst   median/baseline   hand-back median  worst");
  let worst = 0;
  for (const k of KINDS) {
    const xs = failover[k];
    const w = Math.max(...xs);
    worst = Math.max(worst, w);
    console.log(
      `${k.padEnd(9)} ${String(xs.length).padStart(3)}  ${fmt(median(xs))}  ${fmt(w)}   ${(median(xs) / base).toFixed(1).padStart(8)}x          ${fmt(median(handback[k]))}  ${fmt(Math.max(...handback[k]))}`,
    );
  }
  for (const f of failures) console.log(`failed: ${f}`);
  console.log(`rounds failed: ${failures.length}`);
  console.log(`max failover ms: ${Math.round(worst)}`);
  return 0;
}

process.exit(await main());
