/**
 * Layer-2 failover and failback benchmark (needs root): `bun bench/failover.ts [--rounds 5]`
 *
 * Three real `vipd run` nodes, a client on the VIP's segment and a Linux router namespace (default
 * neighbour sysctls) with a second client behind it (test/support/cluster-lab/cluster-lab.ts), default
 * timers (heartbeat 50 ms, dead after 200 ms, rise 1 s). The clients, in both placements, every
 * 10 ms: the real `ping`, IPv4 and IPv6 (test/support/cluster-lab/ping.ts), answered by the owner's
 * kernel, and a UDP probe of the VIP's service (test/support/cluster-lab/probe.ts), answered by the node's
 * service (which a crash kills with vipd: only the probe sees a crash as such). All of them send
 * to whatever MAC their neighbour cache (or the router's) holds, as real clients do, so a node
 * that takes a VIP without announcing it, or an old owner that stops before the new one
 * announced, shows as a gap.
 *
 * Per round the VIP's owner is killed (-9: vipd only, the node's service keeps running), crashes
 * (vipd and the service killed together), is stopped (SIGSTOP) or loses its link (at the switch
 * port); the takeover gap is each client's longest silence from just before the event until the
 * new owner has settled. Then the old owner returns (restart, SIGCONT, link up) and takes its VIP
 * back: the failback gap is measured the same way, until it has settled and its hand-over hold
 * ended. The kinds are interleaved, `--rounds` of each.
 *
 * Baseline, measured in the same run: the longest silence in a window of the same length with no
 * event (the noise floor of this shared machine and of the 10 ms ping). Medians and worst per
 * event kind, for takeover and failback. Raw gaps go to bench/results/failover.json
 * (bench/lib/results.ts). The last line is `max failover ms: N`, the worst gap of any client in
 * any takeover or failback. Every loop is bounded in count and time.
 */

import {
  absNow,
  ClusterLab,
  type LabNode,
  type Probe,
  until,
  VIP,
  VIP6,
} from "../test/support/cluster-lab/cluster-lab.ts";
import { Pinger } from "../test/support/cluster-lab/ping.ts";
import { destroyLabsOnSignal } from "../test/support/netns.ts";
import { startRecording } from "./lib/results.ts";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const ROUNDS = Math.min(100, Math.max(1, arg("rounds", 5)));
const KINDS = ["kill -9", "crash", "SIGSTOP", "link down"] as const;
type Kind = (typeof KINDS)[number];
const PLACEMENTS = ["segment", "router"] as const;
type Placement = (typeof PLACEMENTS)[number];
const WINDOW_MS = 1500;
/** After the owner settled: the old owner's hand-over hold (300 ms) is over well before this. */
const AFTER_MS = 700;

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
const slug = (k: Kind) => k.replace(/[^a-z0-9]+/gi, "").toLowerCase();

/** What the benchmark needs of a client: reply times (ms) and its longest silence. */
interface Client {
  since(t: number): number[];
  maxGap(from: number, to: number): number;
  count(): number;
  stop(): Promise<void>;
}

const pingClient = (p: Pinger): Client => ({
  since: (t) => p.since(t),
  maxGap: (a, b) => p.maxGap(a, b),
  count: () => p.replies.length,
  stop: () => p.stop(),
});

/** The UDP probe of the service, with the edges of the window counted as answers (as Pinger does). */
const probeClient = (c: ClusterLab, p: Probe): Client => ({
  since: (t) => p.since(t).map((x) => x.t),
  maxGap: (from, to) => {
    const xs = [from, ...p.answers.filter((a) => a.t > from && a.t < to).map((a) => a.t), to];
    let g = 0;
    for (let i = 1; i < xs.length; i++) g = Math.max(g, (xs[i] as number) - (xs[i - 1] as number));
    return g;
  },
  count: () => p.answers.length,
  stop: async () => {
    await c.lab.stop(p.proc, "SIGTERM", 1000);
    await p.done.catch(() => {});
  },
});

/** Brings every node back: link up, SIGCONT, restart what is not running. */
async function restore(c: ClusterLab): Promise<void> {
  for (const n of c.nodes) {
    await c.link(n, true);
    if (n.stopped) {
      n.proc?.kill("SIGCONT");
      n.stopped = false;
    }
    // A responder that exited by itself (not by a crash round) is started again, and said so.
    if (n.responder !== undefined && n.responder.exitCode !== null) {
      console.log(`  ${n.name}: its UDP responder had exited (code ${n.responder.exitCode}); started again`);
      n.responder = undefined;
    }
    if (n.responder === undefined) c.startResponder(n);
    if (n.proc === undefined) c.start(n);
  }
}

/** The node owning the VIP by its own account (election and XDP map), among running nodes but `not`. */
async function newOwner(c: ClusterLab, not: LabNode): Promise<string> {
  return until(
    "another node to own the VIP",
    async () => {
      for (const n of c.nodes) {
        if (n === not || n.proc === undefined || n.stopped) continue;
        const e = await c.api<{ items: { ip: string; owner?: string }[] }>(n, "/api/v1/l2/elections");
        if (e?.items.find((x) => x.ip === VIP)?.owner !== n.name) continue;
        const l2 = await c.api<{ items: { ip: string; handingOver?: boolean }[] }>(
          n,
          "/api/v1/l2/announcements",
        );
        if (l2?.items.some((x) => x.ip === VIP && x.handingOver !== true)) return n.name;
      }
      return undefined;
    },
    10_000,
  );
}

/** Each client's longest silence in [from, settled + AFTER_MS], waiting (≤ 10 s) until all answer again. */
async function gaps(
  pings: [Placement, Client][],
  from: number,
  settled: number,
): Promise<[Placement, number][]> {
  const end = settled + AFTER_MS;
  while (absNow() < end) await Bun.sleep(50);
  const t = absNow();
  await until(
    "every client to be answered again",
    async () => pings.every(([, p]) => p.since(end).length > 0),
    10_000,
  ).catch(() => {});
  return pings.map(([pl, p]) => {
    const first = p.since(end)[0] ?? t + 10_000;
    return [pl, p.maxGap(from, Math.max(end, first))];
  });
}

async function main(): Promise<number> {
  const rec = startRecording("failover");
  destroyLabsOnSignal();
  const c = await ClusterLab.create({ tag: "l2b", router: true });
  const takeover = new Map<string, number[]>();
  const failback = new Map<string, number[]>();
  const push = (m: Map<string, number[]>, key: string, v: number) => m.set(key, [...(m.get(key) ?? []), v]);
  const baseline: number[] = [];
  const failures: string[] = [];
  const deadline = Date.now() + 30 * 60_000;
  try {
    await c.startAll();
    for (let round = 0; round < ROUNDS && Date.now() < deadline; round++) {
      for (const kind of KINDS) {
        const owner = c.node(await c.settled(30_000));
        const pings: [Placement, Client][] = [
          ["segment", pingClient(new Pinger(c.lab, "client", VIP, 25))],
          ["segment", pingClient(new Pinger(c.lab, "client", VIP6, 25))],
          ["segment", probeClient(c, c.probe(10, 25_000, "client"))],
          ["router", pingClient(new Pinger(c.lab, "far", VIP, 25))],
          ["router", pingClient(new Pinger(c.lab, "far", VIP6, 25))],
          ["router", probeClient(c, c.probe(10, 25_000, "far"))],
        ];
        try {
          await until("client answers", async () => pings.every(([, p]) => p.count() > 20), 10_000);
          // Baseline: a quiet window of the same length, just before the event.
          const b0 = absNow();
          await Bun.sleep(WINDOW_MS);
          for (const [, p] of pings) baseline.push(p.maxGap(b0, b0 + WINDOW_MS));

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
            await c.link(owner, false);
          }
          const by = await newOwner(c, owner);
          const tk = await gaps(pings, t - 100, absNow());
          for (const [pl, g] of tk) push(takeover, `takeover.${slug(kind)}.${pl}`, g);
          await Bun.sleep(300);

          // The old owner returns and takes its VIP back once.
          const r = absNow();
          if (kind === "kill -9") c.start(owner);
          else if (kind === "crash") {
            c.startResponder(owner);
            c.start(owner);
          } else if (kind === "SIGSTOP") {
            owner.proc?.kill("SIGCONT");
            owner.stopped = false;
          } else await c.link(owner, true);
          await until(
            "the old owner to own the VIP again",
            async () => (await c.settled(15_000)) === owner.name,
            20_000,
          );
          const fb = await gaps(pings, r - 100, absNow());
          for (const [pl, g] of fb) push(failback, `failback.${slug(kind)}.${pl}`, g);
          const show = (xs: [Placement, number][]) =>
            PLACEMENTS.map(
              (pl) => `${pl} ${fmt(Math.max(...xs.filter(([p]) => p === pl).map(([, g]) => g)))}`,
            ).join(" ");
          console.log(
            `round ${round + 1} ${kind.padEnd(9)} owner ${owner.name}: takeover (to ${by}) ${show(tk)} ms; failback ${show(fb)} ms`,
          );
        } catch (e) {
          // Reported, counted, and the cluster restored; the run goes on.
          failures.push(`round ${round + 1} ${kind}: ${(e as Error).message.split("\n")[0]}`);
          console.log(`round ${round + 1} ${kind.padEnd(9)} owner ${owner.name}: FAILED: ${failures.at(-1)}`);
          const names = ["ping v4", "ping v6", "UDP"];
          console.log(
            `  answers per client: ${pings.map(([pl, p], i) => `${pl} ${names[i % 3]} ${p.count()}`).join(", ")}; UDP responders: ${c.nodes
              .map(
                (n) =>
                  `${n.name} ${n.responder === undefined ? "none" : n.responder.exitCode === null ? "running" : `exited ${n.responder.exitCode}`}`,
              )
              .join(", ")}`,
          );
          for (const n of c.nodes)
            console.log(
              `  ${n.name} log tail:\n    ${n.logs
                .filter((l) => !l.includes('"request"'))
                .slice(-5)
                .join("\n    ")}`,
            );
          await restore(c);
        } finally {
          for (const [, p] of pings) await p.stop();
        }
      }
    }
  } finally {
    await c.destroy();
  }

  const base = median(baseline);
  console.log("");
  console.log(
    `baseline (no event, ${WINDOW_MS} ms windows, ping every 10 ms): median longest silence ${fmt(base)} ms, worst ${fmt(Math.max(...baseline))} ms (n=${baseline.length})`,
  );
  console.log("gap ms per client (ping v4, v6, UDP)     n   median  worst   median/baseline");
  let worst = 0;
  const figures: Record<string, number> = {};
  const allFailback: number[] = [];
  for (const [phase, m] of [
    ["takeover", takeover],
    ["failback", failback],
  ] as const) {
    for (const k of KINDS)
      for (const pl of PLACEMENTS) {
        const key = `${phase}.${slug(k)}.${pl}`;
        const xs = m.get(key) ?? [];
        if (xs.length === 0) continue;
        const w = Math.max(...xs);
        worst = Math.max(worst, w);
        if (phase === "failback") allFailback.push(...xs);
        figures[`${key}.median`] = median(xs);
        figures[`${key}.worst`] = w;
        console.log(
          `${`${phase} ${k} (${pl})`.padEnd(38)} ${String(xs.length).padStart(3)}  ${fmt(median(xs))}  ${fmt(w)}   ${(median(xs) / base).toFixed(1).padStart(8)}x`,
        );
      }
  }
  for (const f of failures) console.log(`failed: ${f}`);
  console.log(`rounds failed: ${failures.length}`);
  figures["failback.median"] = median(allFailback);
  figures["max failover ms"] = Math.round(worst);
  figures["rounds failed"] = failures.length;
  const units: Record<string, string> = {};
  for (const k of [...takeover.keys(), ...failback.keys(), "silence"]) units[k] = "ms";
  await rec.finish({
    samples: Object.fromEntries([...takeover, ...failback]),
    baseline: { silence: baseline },
    figures,
    goals: [
      { figure: "max failover ms", op: "<=", value: 1000, text: "every takeover and failback gap < 1 s" },
      { figure: "failback.median", op: "<=", value: 100, text: "failback median ≤ 100 ms" },
    ],
    units,
    params: { rounds: ROUNDS, kinds: [...KINDS], placements: [...PLACEMENTS], pingIntervalMs: 10 },
  });
  console.log(`failback median ms: ${Math.round(median(allFailback))}`);
  console.log(`max failover ms: ${Math.round(worst)}`);
  return 0;
}

process.exit(await main());
