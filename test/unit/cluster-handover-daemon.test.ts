/**
 * Make before break in the Daemon (src/appliance/daemon.ts + src/plan/handover.ts), without root:
 * real manifests in a temp directory, a membership in memory, a driver that records every plan.
 *
 * The story: the owner hands its VIP to another node (a forced failover). Its plan no longer owns
 * the VIP but keeps it in `l2Handover` — still programmed, still answering — and it waits for the
 * new owner. The new owner says "settled" in a heartbeat sent too early (before it could have
 * known): that does not count. It says so later: the old owner lets go. A node that is not ready
 * (paused) never holds; a hold with no acknowledgment ends at its deadline. And the node itself
 * tells its members it is not settled until a plan it regains a VIP in is applied.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Daemon, type MembershipView } from "../../src/appliance/daemon.ts";
import type { Decline } from "../../src/cluster/heartbeat.ts";
import type { Driver } from "../../src/drivers/driver.ts";
import { electionHash } from "../../src/plan/election.ts";
import { HANDOVER_ACK_MARGIN_MS, HANDOVER_HOLD_MS } from "../../src/plan/handover.ts";
import type { Plan } from "../../src/plan/plan.ts";
import { createLogger } from "../../src/util/log.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const VIP = "10.0.0.5";
const NODES = ["a", "b", "c"];
const [FIRST, SECOND] = [...NODES].sort((x, y) => (electionHash(x, VIP) < electionHash(y, VIP) ? -1 : 1)) as [
  string,
  string,
];

/** Everyone alive; this node's readiness, its settled flag and the peers' acknowledgments as set. */
class Members implements MembershipView {
  own: Decline[] = [];
  isReady = true;
  /** Per peer: the wall-clock ms of its latest settled heartbeat. */
  readonly settledAt = new Map<string, number>();
  readonly settledFlags: boolean[] = [];
  awaiting = new Set<string>();
  constructor(private readonly self: string) {}
  alive() {
    return this.isReady ? NODES : NODES.filter((n) => n !== this.self);
  }
  ready() {
    return this.isReady;
  }
  holdReason() {
    return "pause" as const;
  }
  declines() {
    return new Map<string, readonly Decline[]>(this.own.length > 0 ? [[this.self, this.own]] : []);
  }
  setDeclines(d: readonly Decline[]) {
    this.own = [...d];
  }
  setSettled(s: boolean) {
    this.settledFlags.push(s);
  }
  settledSince(node: string, wallMs: number) {
    return (this.settledAt.get(node) ?? Number.NEGATIVE_INFINITY) >= wallMs;
  }
  awaitSettled(nodes: ReadonlySet<string>) {
    this.awaiting = new Set(nodes);
  }
}

async function daemonAs(self: string, m: Members, clock: { t: number }) {
  const d = mkdtempSync(join(tmpdir(), `vipd-handover-${process.pid}-`));
  dirs.push(d);
  writeFileSync(
    join(d, "vipd.yaml"),
    `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: ${self} }
spec:
  nodeName: ${self}
  members: [${NODES.map((n) => `{ name: ${n} }`).join(", ")}]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: ["${VIP}/32"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`,
  );
  const daemon = new Daemon({
    configPaths: [d],
    version: "test",
    log: createLogger("daemon", { sink: () => {} }),
    now: () => clock.t,
  });
  const plans: Plan[] = [];
  const rec: Driver = {
    name: "rec",
    apply: async (p) => {
      plans.push(p);
    },
    health: () => ({ name: "rec", healthy: true }),
    close: async () => {},
  };
  daemon.addDriver(rec);
  daemon.setMembership(m);
  expect((await daemon.reload("start")).ok).toBe(true);
  return { daemon, plans };
}

const owned = (p: Plan | undefined) => p?.l2.map((e) => e.ip);
const handingOver = (p: Plan | undefined) => (p?.l2Handover ?? []).map((e) => `${e.ip}→${e.owner}`);

describe("Daemon: make before break", () => {
  test("the old owner keeps answering until the new owner's settled heartbeat, sent after the loss, arrives", async () => {
    const clock = { t: 1_000_000 };
    const m = new Members(FIRST);
    const { daemon, plans } = await daemonAs(FIRST, m, clock);
    expect(owned(plans.at(-1))).toEqual([VIP]);

    const r = await daemon.l2Failover({ ip: VIP, node: SECOND });
    expect(r).toMatchObject({ ok: true, to: SECOND });
    // Not owned any more, but still programmed (answering) for SECOND, which this node waits for.
    expect(owned(plans.at(-1))).toEqual([]);
    expect(handingOver(plans.at(-1))).toEqual([`${VIP}→${SECOND}`]);
    expect([...m.awaiting]).toEqual([SECOND]);

    // A settled heartbeat SECOND sent right at the loss (before it could know it gained the
    // VIP) is no acknowledgment.
    clock.t += 20;
    m.settledAt.set(SECOND, clock.t - 20);
    await daemon.replan(`member ${SECOND} is settled`);
    expect(handingOver(plans.at(-1))).toEqual([`${VIP}→${SECOND}`]);

    // One sent after the margin is: the old owner lets go.
    clock.t += HANDOVER_ACK_MARGIN_MS + 10;
    m.settledAt.set(SECOND, clock.t);
    await daemon.replan(`member ${SECOND} is settled`);
    expect(owned(plans.at(-1))).toEqual([]);
    expect(handingOver(plans.at(-1))).toEqual([]);
    expect([...m.awaiting]).toEqual([]);
    await daemon.close();
  });

  test("without an acknowledgment the hold ends at its deadline", async () => {
    const clock = { t: 2_000_000 };
    const m = new Members(FIRST);
    const { daemon, plans } = await daemonAs(FIRST, m, clock);
    await daemon.l2Failover({ ip: VIP, node: SECOND });
    expect(handingOver(plans.at(-1))).toEqual([`${VIP}→${SECOND}`]);
    clock.t += HANDOVER_HOLD_MS - 1;
    await daemon.replan("membership changed");
    expect(handingOver(plans.at(-1))).toEqual([`${VIP}→${SECOND}`]);
    clock.t += 1;
    await daemon.replan("hand-over hold ended");
    expect(handingOver(plans.at(-1))).toEqual([]);
    await daemon.close();
  });

  test("a node that is not ready (paused) lets go at once: its view is stale", async () => {
    const clock = { t: 3_000_000 };
    const m = new Members(FIRST);
    const { daemon, plans } = await daemonAs(FIRST, m, clock);
    expect(owned(plans.at(-1))).toEqual([VIP]);
    m.isReady = false;
    await daemon.replan("this process was paused");
    expect(owned(plans.at(-1))).toEqual([]);
    expect(handingOver(plans.at(-1))).toEqual([]);
    await daemon.close();
  });

  test("a replan marks this node not settled at once, and settled once its plan is applied", async () => {
    const clock = { t: 4_000_000 };
    const m = new Members(FIRST);
    const { daemon } = await daemonAs(FIRST, m, clock);
    m.settledFlags.length = 0;
    const p = daemon.replan("member b is Alive");
    // Synchronously, before the plan is even computed: the heartbeat sent next says so.
    expect(m.settledFlags).toEqual([false]);
    await p;
    expect(m.settledFlags).toEqual([false, true]);
    // Regaining a VIP by cancelling a forced failover: not settled until applied.
    await daemon.l2Failover({ ip: VIP, node: SECOND });
    m.settledFlags.length = 0;
    await daemon.l2Failover({ ip: VIP, cancel: true });
    expect(m.settledFlags[0]).toBe(false);
    expect(m.settledFlags.at(-1)).toBe(true);
    await daemon.close();
  });
});
