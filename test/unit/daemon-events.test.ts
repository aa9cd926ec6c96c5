/**
 * The node's events on the event hub (src/node/events.ts): a Daemon with real manifests in a temp
 * directory publishes `config` (generation applied), `assignment` (a Service's addresses, only
 * when they change; a mass change as one summary) and `ownership` (a VIP gained from another
 * node when that node stops being alive) — what GET /api/v1/events streams.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Daemon, type MembershipView } from "../../src/appliance/daemon.ts";
import { EventHub } from "../../src/events/hub.ts";
import { NodeEventPublisher, SUMMARY_OVER } from "../../src/node/events.ts";
import { electionHash } from "../../src/plan/election.ts";
import { createLogger } from "../../src/util/log.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const VIP = "10.0.0.5";
const [OWNER, SELF] = ["a", "b"].sort((x, y) => (electionHash(x, VIP) < electionHash(y, VIP) ? -1 : 1)) as [
  string,
  string,
];

const manifests = (services: number) => `apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: ${SELF} }
spec:
  nodeName: ${SELF}
  members: [{ name: a }, { name: b }]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: ["10.0.0.5-10.0.0.250"] }
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2 }
${Array.from(
  { length: services },
  (_, i) => `---
apiVersion: v1
kind: Service
metadata: { name: s${String(i).padStart(3, "0")}, namespace: shop }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`,
).join("")}`;

describe("the node's events on the hub", () => {
  test("config generations, assignment changes (a mass change summarised), ownership gained", async () => {
    const d = mkdtempSync(join(tmpdir(), `vipd-events-${process.pid}-`));
    dirs.push(d);
    const file = join(d, "vipd.yaml");
    writeFileSync(file, manifests(1));
    let alive = ["a", "b"];
    const membership: MembershipView = { alive: () => alive, ready: () => true, holdReason: () => "start" };
    const hub = new EventHub();
    const daemon = new Daemon({
      configPaths: [d],
      version: "test",
      log: createLogger("daemon", { sink: () => {} }),
      onEvent: new NodeEventPublisher(hub).onEvent,
    });
    daemon.setMembership(membership);
    expect((await daemon.reload("start")).ok).toBe(true);
    const seen = (): Record<string, unknown>[] =>
      hub.replay(`${hub.epoch}-0`).events.map((e) => ({ type: e.type, ...e.data }));
    expect(seen()).toEqual([
      { type: "config", generation: 1, result: "applied", reason: "start" },
      { type: "assignment", service: "shop/s000", addresses: [VIP] },
    ]);
    expect(daemon.l2Elections()[0]?.owner).toBe(OWNER);

    // The owner stops being alive: this node gains the VIP.
    alive = [SELF];
    await daemon.replan("member gone");
    expect(seen().at(-1)).toEqual({ type: "ownership", vip: VIP, from: OWNER, to: SELF, reason: "acquired" });

    // A reload that assigns many Services at once: one summary, not one event per Service.
    writeFileSync(file, manifests(SUMMARY_OVER + 10));
    expect((await daemon.reload("SIGHUP")).ok).toBe(true);
    const last = seen().slice(-3);
    expect(last[0]).toMatchObject({ type: "config", generation: 2 });
    expect(last[1]).toEqual({
      type: "assignment",
      summary: true,
      changed: SUMMARY_OVER + 9,
      services: SUMMARY_OVER + 10,
    });
    // The new VIPs' owners (this node or the other): one summary too.
    expect(last[2]).toMatchObject({ type: "ownership", summary: true });
    const o = last[2] as unknown as { acquired: number; moved: number; released: number };
    expect(o.acquired + o.moved + o.released).toBe(SUMMARY_OVER + 9);
    await daemon.close();
  });
});
