/**
 * bench/report.ts: results files in, docs/benchmarks.md and SVG plots out. Small fixtures written
 * here (one per kind of series: distributions, curves, an ungrouped baseline reference, an unknown
 * benchmark); every SVG is parsed as XML; loaded and quiet machines; missing and malformed inputs;
 * the history file; the command line end to end in a temporary folder.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOMParser, type Element } from "@xmldom/xmldom";
import {
  buildReport,
  headlineRows,
  isLoaded,
  type Loaded,
  loadResults,
  parseResults,
  plotsFor,
  README_BEGIN,
  README_END,
  type Results,
  ResultsError,
  readHistory,
  withReadmeTable,
  withRecord,
} from "../../bench/report.ts";

/** Rendering and a bun subprocess take seconds on a loaded 2-core machine. */
const SLOW = 60_000;

const tmp = mkdtempSync(join(tmpdir(), "vipd-bench-report-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function machine(load: number, cores = 2) {
  return {
    cores,
    cpuModel: "Test CPU",
    kernel: "6.1.0-test",
    bun: "1.4.5",
    gitRevision: "abcdef123456",
    loadBefore: [load, load, load] as [number, number, number],
    loadDuring: [load, load * 0.9],
    // Deliberately wrong for the loaded case: the report recomputes it from the load figures.
    loaded: false,
  };
}

function fixture(name: string, load: number, extra: Partial<Results> = {}): Results {
  const base: Record<string, Results> = {
    bfd: {
      name: "bfd",
      startedAt: "2026-12-01T10:00:00.000Z",
      durationS: 120,
      machine: machine(load),
      samples: { "detection.from SIGSTOP": [120, 130, 151, null], "tx gap.while Up": [40, 45, 50] },
      baseline: { "detection.from SIGSTOP": [118, 131, 149], "tx gap.while Up": [41, 44, 49] },
      figures: { "p99 detection ms": 151, "FRR p99 detection ms": 149, "p99 vipd/FRR": 1.013 },
      goals: [{ figure: "p99 detection ms", op: "<=", value: 165, text: "p99 ≤ 165 ms" }],
      units: { detection: "ms", "tx gap": "ms" },
    },
    bgp: {
      name: "bgp",
      startedAt: "2026-12-01T10:05:00.000Z",
      durationS: 60,
      machine: machine(load),
      samples: {
        "time to all routes.seconds": [0.6, 0.7],
        "routes in table.run 1": [
          [0, 0],
          [0.2, 5000],
          [0.6, 10000],
        ],
        "routes in table.run 2": [
          [0, 0],
          [0.3, 4000],
          [0.7, 10000],
        ],
      },
      baseline: {
        "time to all routes.seconds": [5.1, 5.4],
        "routes in table.run 1": [
          [0, 0],
          [2, 3000],
          [5.1, 10000],
        ],
      },
      figures: { "vipd/gobgp time": 0.125, "vipd seconds": 0.65, "gobgp seconds": 5.25 },
      goals: [{ figure: "vipd/gobgp time", op: "<=", value: 0.2, text: "at most 1/5 of GoBGP's time" }],
      units: { "routes in table": "routes" },
      params: { routes: 10000 },
    },
    failover: {
      name: "failover",
      startedAt: "2026-12-01T10:10:00.000Z",
      durationS: 300,
      machine: machine(load),
      samples: {
        "takeover.crash.same": [250, 260, 255],
        "takeover.SIGSTOP.other": [240, 270],
        "failback.crash.same": [20, 30],
      },
      baseline: { silence: [12, 15, 30] },
      figures: { "median failover ms": 255, "max failover ms": 270 },
      goals: [
        { figure: "median failover ms", op: "<=", value: 500, text: "median ≤ 500 ms" },
        { figure: "max failover ms", op: "<=", value: 1000, text: "worst < 1 s" },
      ],
      units: { takeover: "ms", failback: "ms", silence: "ms" },
    },
    stall: {
      name: "stall",
      startedAt: "2026-12-01T10:20:00.000Z",
      durationS: 30,
      machine: machine(load),
      samples: { "lateness.p99": [3, 4, 5] },
      baseline: {},
      figures: { "worst stall ms": 5 },
    },
  };
  return { ...base[name]!, ...extra };
}

function writeResults(dir: string, results: Results[]): void {
  mkdirSync(dir, { recursive: true });
  for (const r of results) writeFileSync(join(dir, `${r.name}.json`), JSON.stringify(r));
}

/** Parses an SVG strictly (any XML error throws) and returns its document element. */
function parseSvg(svg: string): Element {
  const errors: string[] = [];
  const doc = new DOMParser({
    onError: (level, msg) => {
      if (level !== "warning") errors.push(msg);
    },
  }).parseFromString(svg, "image/svg+xml");
  if (errors.length) throw new Error(`invalid SVG: ${errors.join("; ")}`);
  const root = doc.documentElement!;
  return root;
}

function texts(el: Element): string {
  return (el.textContent ?? "").replace(/\s+/g, " ");
}

describe("parseResults", () => {
  test("accepts a well-formed file (NaN figures written as null stay null)", () => {
    const r = parseResults(JSON.stringify(fixture("bfd", 0.5)), "x/bfd.json");
    expect(r.figures["p99 detection ms"]).toBe(151);
    expect(
      parseResults(
        JSON.stringify({ ...fixture("bfd", 0.5), figures: { ...fixture("bfd", 0.5).figures, x: null } }),
        "bfd.json",
      ).figures["x"],
    ).toBeNull();
  });

  const bad: [string, string, RegExp][] = [
    ["not JSON", "{", /^bench\/results\/bfd\.json: not JSON/],
    ["no machine", JSON.stringify({ ...fixture("bfd", 1), machine: undefined }), /bfd\.json: machine: /],
    [
      "cores missing",
      JSON.stringify({ ...fixture("bfd", 1), machine: { ...machine(1), cores: "2" } }),
      /machine\.cores/,
    ],
    [
      "a series of strings",
      JSON.stringify({ ...fixture("bfd", 1), samples: { "detection.x": ["fast"] } }),
      /samples\.detection\.x/,
    ],
    ["wrong name", JSON.stringify({ ...fixture("bfd", 1), name: "bgp" }), /name: "bgp" does not match/],
    [
      "a goal on no figure",
      JSON.stringify({ ...fixture("bfd", 1), goals: [{ figure: "nope", op: "<=", value: 1, text: "t" }] }),
      /goals: figure "nope"/,
    ],
    ["an array", "[]", /\(top level\)/],
  ];
  for (const [what, text, re] of bad) {
    test(`rejects ${what} with file and field`, () => {
      expect(() => parseResults(text, "bench/results/bfd.json")).toThrow(ResultsError);
      expect(() => parseResults(text, "bench/results/bfd.json")).toThrow(re);
    });
  }
});

describe("plots", () => {
  test("one plot per group; curves as lines; the ungrouped baseline joins every distribution group", () => {
    const bgp = plotsFor(fixture("bgp", 0.5));
    expect(bgp.map((p) => [p.group, p.kind])).toEqual([
      ["time to all routes", "distribution"],
      ["routes in table", "curve"],
    ]);
    const fo = plotsFor(fixture("failover", 0.5));
    expect(fo.map((p) => p.group)).toEqual(["takeover", "failback"]);
    for (const p of fo) expect(p.table).toContain("no event: silence");
    expect(fo[0]!.table).toContain("| vipd: crash.same | 3 | 250 | 255 | 260 |");
  });

  test(
    "every plot renders to a well-formed SVG that states goal, baseline and load",
    async () => {
      const loaded: Loaded[] = ["bfd", "bgp", "failover", "stall"].map((n) => ({
        name: n,
        file: `${n}.json`,
        status: "ok",
        results: fixture(n, 0.5),
      }));
      const report = await buildReport(loaded, [], { assetsRel: "benchmarks" });
      expect([...report.svgs.keys()].sort()).toEqual(
        [
          "bfd-detection.svg",
          "bfd-tx-gap.svg",
          "bgp-routes-in-table.svg",
          "bgp-time-to-all-routes.svg",
          "failover-failback.svg",
          "failover-takeover.svg",
          "stall-lateness.svg",
        ].sort(),
      );
      for (const [file, svg] of report.svgs) {
        const root = parseSvg(svg);
        expect(root.nodeName).toBe("svg");
        expect(Number(root.getAttribute("width"))).toBeGreaterThan(300);
        expect(report.markdown).toContain(`](benchmarks/${file})`);
        const t = texts(root);
        expect(t).toContain("baseline:");
        expect(t).toContain("quiet: load average at most 0.5 on 2 cores");
      }
      const detection = texts(parseSvg(report.svgs.get("bfd-detection.svg")!));
      expect(detection).toContain("goal: p99 ≤ 165 ms (met)");
      expect(detection).toContain("FRR: from SIGSTOP");
      expect(detection).not.toContain("LOADED");
      // The curve has a path per run (vipd's two, GoBGP's one).
      const curve = parseSvg(report.svgs.get("bgp-routes-in-table.svg")!);
      const lines = [...(curve.getElementsByTagName("path") as unknown as Element[])].filter((p) =>
        (p.getAttribute("aria-roledescription") ?? "").includes("line"),
      );
      expect(lines.length).toBe(3);
      expect(report.markdown).toContain(
        "| bfd | BFD detection p99 (50 ms × 3) | 151 ms | p99 ≤ 165 ms (met) | FRR 149 ms | 1.01 | quiet (0.5 / 2 cores) |",
      );
      expect(report.markdown).toContain(
        "| failover | takeover gap, median (worst) over every kind and client | 255 ms (270 ms) | worst < 1 s (met) | no event: longest silence median 15 ms, worst 30 ms | 17× the silence |",
      );
      // A benchmark the report does not know: generic section and headline row from its first figure.
      expect(report.markdown).toContain("## stall (`bench/stall.ts`)");
      expect(report.markdown).toContain("| stall | worst stall ms | 5 |");
    },
    SLOW,
  );

  test(
    "a run on a loaded machine (load above the core count) is flagged in plot and tables",
    async () => {
      const r = fixture("bfd", 3.1);
      expect(isLoaded(r)).toBe(true);
      expect(isLoaded(fixture("bfd", 2))).toBe(false);
      const report = await buildReport([{ name: "bfd", file: "bfd.json", status: "ok", results: r }], [], {
        assetsRel: ".",
      });
      const t = texts(parseSvg(report.svgs.get("bfd-detection.svg")!));
      expect(t).toContain("(run on a LOADED machine)");
      expect(t).toContain("LOADED: load average up to 3.1 on 2 cores");
      expect(report.markdown).toContain("**loaded** (3.1 / 2 cores)");
      expect(report.markdown).toMatch(/\| bfd \| `abcdef123456` .* \| \*\*yes\*\* \|/);
    },
    SLOW,
  );
});

describe("inputs on disk", () => {
  test(
    "missing files say 'not run'; a malformed one is rejected and the rest still reported",
    async () => {
      const dir = join(tmp, "mixed");
      writeResults(dir, [fixture("bfd", 0.5), fixture("stall", 0.5)]);
      writeFileSync(join(dir, "bgp.json"), JSON.stringify({ ...fixture("bgp", 0.5), figures: "fast" }));
      const loaded = loadResults(dir);
      expect(loaded.map((l) => [l.name, l.status])).toEqual([
        ["failover", "missing"],
        ["bfd", "ok"],
        ["bgp", "rejected"],
        ["arp", "missing"],
        ["ipam", "missing"],
        ["k8s", "missing"],
        ["stall", "ok"],
      ]);
      const report = await buildReport(loaded, [], { assetsRel: "benchmarks" });
      expect(report.errors).toHaveLength(1);
      expect(report.errors[0]).toMatch(/bgp\.json: figures: /);
      expect(report.markdown).toContain("| failover | not run |");
      expect(report.markdown).toContain("| bgp | rejected (malformed results) |");
      expect(report.markdown).toMatch(/Not run: no `.*arp\.json`/);
      expect(report.svgs.has("bfd-detection.svg")).toBe(true);
    },
    SLOW,
  );

  test(
    "an empty or absent results folder gives a report of 'not run' rows",
    async () => {
      const loaded = loadResults(join(tmp, "does-not-exist"));
      expect(loaded.every((l) => l.status === "missing")).toBe(true);
      const report = await buildReport(loaded, [], { assetsRel: "benchmarks" });
      expect(report.svgs.size).toBe(0);
      expect(report.markdown.match(/\| not run \|/g)?.length).toBe(6);
    },
    SLOW,
  );
});

describe("history", () => {
  const loaded: Loaded[] = [
    { name: "bfd", file: "bfd.json", status: "ok", results: fixture("bfd", 0.5) },
    { name: "bgp", file: "bgp.json", status: "ok", results: fixture("bgp", 4) },
  ];

  test("--record adds one row of headline figures; the same label replaces its row", () => {
    const h1 = withRecord([], loaded, "v0.1.0", new Date("2026-12-01T00:00:00Z"));
    expect(h1).toHaveLength(1);
    expect(h1[0]!.loaded).toBe(true);
    expect(h1[0]!.figures).toEqual({
      "bfd: BFD detection p99 (50 ms × 3) (ms)": 151,
      "bgp: 10,000 routes into BIRD's kernel table (s)": 0.65,
    });
    const h2 = withRecord(h1, loaded, "v0.2.0");
    expect(h2.map((h) => h.label)).toEqual(["v0.1.0", "v0.2.0"]);
    expect(withRecord(h2, loaded, "v0.1.0").map((h) => h.label)).toEqual(["v0.2.0", "v0.1.0"]);
    expect(headlineRows(loaded).map((r) => r.key)).toEqual(Object.keys(h1[0]!.figures));
    expect(() => withRecord([], [{ name: "bfd", file: "bfd.json", status: "missing" }])).toThrow(
      /no results/,
    );
  });

  test(
    "the history is plotted and tabulated; a malformed history file is rejected",
    async () => {
      const h = withRecord(withRecord([], loaded, "v0.1.0"), loaded, "v0.2.0");
      const report = await buildReport(loaded, h, { assetsRel: "benchmarks" });
      const root = parseSvg(report.svgs.get("history.svg")!);
      expect(texts(root)).toContain("v0.2.0");
      expect(report.markdown).toContain("| figure | v0.1.0 (loaded) | v0.2.0 (loaded) |");
      const path = join(tmp, "history.json");
      writeFileSync(path, JSON.stringify([{ label: "x", figures: {} }]));
      expect(() => readHistory(path)).toThrow(/history\.json: 0\.revision/);
      expect(readHistory(join(tmp, "none.json"))).toEqual([]);
    },
    SLOW,
  );
});

test("--readme replaces only the table between the README's markers, and needs them", () => {
  const readme = `# x\n\n## Status\n\nText before.\n\n${README_BEGIN}\n| old |\n${README_END}\n\nKnown gaps: y.\n`;
  const out = withReadmeTable(readme, "| new |");
  expect(out).toBe(
    `# x\n\n## Status\n\nText before.\n\n${README_BEGIN}\n| new |\n${README_END}\n\nKnown gaps: y.\n`,
  );
  expect(withReadmeTable(out, "| new |")).toBe(out);
  expect(() => withReadmeTable("# no markers\n", "| t |")).toThrow(/markers/);
});

test(
  "bench/lib/results.ts writes what the report reads; load is sampled while the main thread is busy",
  () => {
    const dir = join(tmp, "recorded");
    const lib = join(import.meta.dir, "..", "..", "bench", "lib", "results.ts");
    const code = `
    const { startRecording } = await import(${JSON.stringify(lib)});
    const rec = startRecording("selftest");
    const t = Date.now();
    while (Date.now() - t < 4000) {} // a benchmark's busy loop: no timer of this thread fires
    console.log(await rec.finish({
      samples: { "x.a": [1, 2, 3], "curve.run 1": [[0, 0], [1, 5]] },
      baseline: { "x.a": [2, 3] },
      figures: { f: 1, nan: Number.NaN },
      goals: [{ figure: "f", op: ">=", value: 1, text: "f at least 1" }],
    }));`;
    const p = Bun.spawnSync(["bun", "-e", code], {
      env: { ...process.env, VIPD_BENCH_RESULTS: dir },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(p.stderr.toString()).toBe("");
    expect(p.stdout.toString().trim()).toBe(join(dir, "selftest.json"));
    const r = parseResults(readFileSync(join(dir, "selftest.json"), "utf8"), "selftest.json");
    expect(r.figures["nan"]).toBeNull();
    expect(r.machine.cores).toBeGreaterThan(0);
    expect(r.machine.bun).toBe(Bun.version);
    // One sample from the Worker at least, besides the one taken at finish.
    expect(r.machine.loadDuring.length).toBeGreaterThanOrEqual(2);
    expect(r.machine.loaded).toBe(isLoaded(r));
    expect(plotsFor(r).map((p) => [p.group, p.kind])).toEqual([
      ["x", "distribution"],
      ["curve", "curve"],
    ]);
  },
  SLOW,
);

describe("bun bench/report.ts", () => {
  const script = join(import.meta.dir, "..", "..", "bench", "report.ts");
  const run = (...args: string[]) => {
    const p = Bun.spawnSync(["bun", script, ...args], { stdout: "pipe", stderr: "pipe" });
    return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
  };

  test(
    "writes the page, its plots and (with --record) the history; stale plots go",
    () => {
      const dir = join(tmp, "cli");
      writeResults(join(dir, "results"), [fixture("bfd", 0.5), fixture("failover", 0.5)]);
      mkdirSync(join(dir, "docs", "benchmarks"), { recursive: true });
      writeFileSync(join(dir, "docs", "benchmarks", "old-plot.svg"), "<svg/>");
      const r = run(
        "--results",
        join(dir, "results"),
        "--out",
        join(dir, "docs", "benchmarks.md"),
        "--history",
        join(dir, "docs", "benchmarks", "history.json"),
        "--record",
        "--label",
        "v1",
      );
      expect(r.err).toBe("");
      expect(r.code).toBe(0);
      expect(r.out).toContain("bgp: not run");
      const files = readdirSync(join(dir, "docs", "benchmarks")).sort();
      expect(files).toEqual([
        "bfd-detection.svg",
        "bfd-tx-gap.svg",
        "failover-failback.svg",
        "failover-takeover.svg",
        "history.json",
        "history.svg",
      ]);
      const md = readFileSync(join(dir, "docs", "benchmarks.md"), "utf8");
      expect(md).toContain("![Layer-2 failover: takeover](benchmarks/failover-takeover.svg)");
      expect(JSON.parse(readFileSync(join(dir, "docs", "benchmarks", "history.json"), "utf8"))[0].label).toBe(
        "v1",
      );
    },
    SLOW,
  );

  test(
    "a malformed results file: a clear message, exit 1, the page still written",
    () => {
      const dir = join(tmp, "cli-bad");
      writeResults(join(dir, "results"), [fixture("bfd", 0.5)]);
      writeFileSync(join(dir, "results", "k8s.json"), '{"name": "k8s", "samples": ');
      const r = run(
        "--results",
        join(dir, "results"),
        "--out",
        join(dir, "benchmarks.md"),
        "--history",
        join(dir, "history.json"),
      );
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/rejected .*k8s\.json: not JSON/);
      expect(r.err).not.toContain("at ");
      expect(readFileSync(join(dir, "benchmarks.md"), "utf8")).toContain(
        "| k8s | rejected (malformed results) |",
      );
    },
    SLOW,
  );
});
