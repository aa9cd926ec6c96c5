/**
 * The plan applier's owner-change log (src/node/applier.ts): a few owner changes are logged one
 * line each; a large takeover (a start or a reload of 10,000 Services) gives one summary line with
 * the counts, the per-VIP lines going to debug, and the counter still counts every change.
 */
import { describe, expect, test } from "bun:test";
import { OWNER_LOG_DETAIL, PlanApplier } from "../../src/node/applier.ts";
import type { L2Election } from "../../src/plan/plan.ts";
import { EMPTY_NODE_PLAN, type NodePlan } from "../../src/plan/resolve.ts";
import { createLogger } from "../../src/util/log.ts";

const election = (i: number, owner: string): L2Election => ({
  ip: `10.0.${i >> 8}.${i & 255}`,
  services: [`ns/s${i}`],
  owner,
  candidates: [owner],
  notOwner: [],
});
const plan = (n: number, owner: string): NodePlan => ({
  ...EMPTY_NODE_PLAN,
  elections: Array.from({ length: n }, (_, i) => election(i, owner)),
});

function applierWithLog() {
  const lines: { level: string; message: string; [k: string]: unknown }[] = [];
  const log = createLogger("test", { level: "debug", sink: (l) => lines.push(JSON.parse(l)) });
  const a = new PlanApplier({ node: () => "n1", log, retry: () => {} });
  a.install(EMPTY_NODE_PLAN);
  return { a, lines };
}

describe("owner changes in the log", () => {
  test("a few changes: one info line each", () => {
    const { a, lines } = applierWithLog();
    a.install(plan(3, "n1"));
    expect(lines.filter((l) => l.level === "info").map((l) => l.message)).toEqual(
      Array(3).fill("layer-2 owner changed"),
    );
    expect(a.ownerChanges.acquired).toBe(3);
  });

  test("many changes: one info summary with the counts, each change at debug", () => {
    const { a, lines } = applierWithLog();
    const n = OWNER_LOG_DETAIL * 50;
    a.install(plan(n, "n1"));
    a.install(plan(n, "n2"));
    const info = lines.filter((l) => l.level === "info");
    expect(info.map((l) => l.message)).toEqual(Array(2).fill("layer-2 owner changed for many VIPs"));
    expect(info[0]).toMatchObject({ acquired: n, released: 0, moved: 0 });
    expect(info[1]).toMatchObject({ acquired: 0, released: n, moved: 0 });
    expect(lines.filter((l) => l.level === "debug")).toHaveLength(2 * n);
    expect(a.ownerChanges).toEqual({ acquired: n, released: n, moved: 0 });
  });
});
