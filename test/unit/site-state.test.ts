/**
 * The site reducer (src/site/state.ts) with the real allocator (src/site/allocate.ts), three or
 * four members on a simulated network (messages delivered in order per pair, dropped to a member
 * that is down or on the other side of a partition) and a simulated clock. Each test is one of
 * the stories: the history that used to make two nodes disagree, a restart with an empty
 * state dir, the allocator killed, two PUTs at once, a partition and its heal, a member that was
 * down while the config changed.
 */
import { describe, expect, test } from "bun:test";
import { siteAllocate } from "../../src/site/allocate.ts";
import type { SiteMessage } from "../../src/site/codec.ts";
import {
  allocatorOf,
  createSite,
  type Effect,
  isConsistent,
  type ProposeResult,
  quorum,
  type SiteOptions,
  type SiteState,
  step,
} from "../../src/site/state.ts";
import { type SiteAssignment, type Snapshot, tableDigest } from "../../src/site/table.ts";
import { siteView, withHeartbeats } from "../../src/site/view.ts";

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: [198.51.100.10-198.51.100.20] }
`;

/** The site configuration with these Services (default namespace). */
function cfg(...services: string[]): string {
  return [
    POOL,
    ...services.map(
      (s) => `apiVersion: v1
kind: Service
metadata: { name: ${s}, namespace: default }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`,
    ),
  ].join("---\n");
}

const allocate = siteAllocate(() => undefined);

interface Member {
  opts: SiteOptions;
  state: SiteState;
  up: boolean;
  disk: Snapshot | undefined;
  applied: Snapshot[];
  replies: Map<string, ProposeResult>;
  logs: { level: string; message: string; fields: Record<string, unknown> }[];
}

class Sim {
  now = 0;
  readonly m = new Map<string, Member>();
  private queue: { from: string; to: string; msg: SiteMessage }[] = [];
  /** Members in different groups cannot hear each other; empty: no partition. */
  groups: string[][] = [];
  readonly names: string[];

  constructor(names: string[], local: string) {
    this.names = names;
    for (const n of names) this.start(n, local, undefined);
  }

  options(self: string): SiteOptions {
    return {
      self,
      members: this.names,
      statusMs: 100,
      deadMs: 400,
      startupMs: 1000,
      requestMs: 200,
      proposeTimeoutMs: 2000,
      allocate,
    };
  }

  /** Starts (or restarts) `name` with what its disk holds (`disk`; undefined: empty state dir). */
  start(name: string, local: string, disk: Snapshot | undefined): void {
    this.m.set(name, {
      opts: this.options(name),
      state: createSite(this.now, disk, local),
      up: true,
      disk,
      applied: [],
      replies: new Map(),
      logs: [],
    });
  }

  kill(name: string): void {
    const x = this.get(name);
    x.up = false;
  }

  get(name: string): Member {
    const x = this.m.get(name);
    if (!x) throw new Error(`no member ${name}`);
    return x;
  }

  private reachable(a: string, b: string): boolean {
    if (this.groups.length === 0) return true;
    return this.groups.some((g) => g.includes(a) && g.includes(b));
  }

  private run(name: string, effects: Effect[]): void {
    const x = this.get(name);
    for (const e of effects) {
      if (e.type === "send") this.queue.push({ from: name, to: e.to, msg: e.msg });
      else if (e.type === "persist") x.disk = e.snapshot;
      else if (e.type === "apply") {
        // Persisted before applied: the reducer orders the effects so.
        expect(x.disk).toBe(e.snapshot);
        // Only a ready member's data path runs the site's snapshot (a starting one runs nothing
        // of it, and the driver reports every apply as the version the data path runs).
        expect(x.state.phase).toBe("ready");
        x.applied.push(e.snapshot);
      } else if (e.type === "reply") x.replies.set(e.id, e.result);
      else x.logs.push({ level: e.level, message: e.message, fields: e.fields });
    }
  }

  private feed(name: string, ev: Parameters<typeof step>[1]): void {
    const x = this.get(name);
    if (!x.up) return;
    const r = step(x.state, ev, x.opts);
    x.state = r.state;
    this.run(name, r.effects);
  }

  propose(name: string, id: string, base: number, config: string, heard?: string[]): void {
    this.feed(name, { type: "propose", now: this.now, id, base, config, heard });
  }

  private deliver(): void {
    for (let guard = 0; guard < 10_000 && this.queue.length > 0; guard++) {
      const q = this.queue.shift();
      if (!q) break;
      if (!this.get(q.to).up || !this.reachable(q.from, q.to)) continue;
      this.feed(q.to, { type: "message", now: this.now, from: q.from, msg: q.msg });
    }
  }

  /** Advances the clock by `ms` in 50 ms steps: every member ticks, then messages are delivered. */
  advance(ms: number): void {
    this.deliver();
    for (let t = 0; t < ms; t += 50) {
      this.now += 50;
      for (const n of this.names) this.feed(n, { type: "tick", now: this.now });
      this.deliver();
    }
  }

  table(name: string): readonly SiteAssignment[] {
    return this.get(name).state.snapshot?.table ?? [];
  }

  ips(name: string): Record<string, string> {
    return Object.fromEntries(this.table(name).map((r) => [r.key.replace("default/", ""), r.ips.join(",")]));
  }

  upNames(): string[] {
    return this.names.filter((n) => this.get(n).up);
  }

  /** Every up member holds the same version and table (and says the site is consistent). */
  expectAgreed(names = this.upNames()): void {
    const first = this.get(names[0] as string).state.snapshot;
    expect(first).toBeDefined();
    for (const n of names) {
      const s = this.get(n).state;
      expect(s.phase).toBe("ready");
      expect(s.snapshot?.generation).toBe(first?.generation as number);
      expect(s.snapshot?.allocator).toBe(first?.allocator as string);
      expect(s.snapshot?.table).toEqual(first?.table as SiteAssignment[]);
      expect(s.snapshot?.config).toBe(first?.config as string);
      expect(isConsistent(s, this.get(n).opts)).toBe(true);
      // What it holds is what its data path was handed last.
      expect(this.get(n).applied.at(-1)).toBe(s.snapshot as Snapshot);
    }
  }
}

describe("a new site", () => {
  test("three members start with the same file: the lowest name makes generation 1, all adopt it", () => {
    const sim = new Sim(["n1", "n2", "n3"], cfg("a", "b"));
    sim.advance(300);
    // Every other member was heard: nobody waits the whole start window.
    sim.expectAgreed();
    expect(sim.get("n2").state.snapshot?.allocator).toBe("n1");
    expect(sim.get("n2").state.snapshot?.generation).toBe(1);
    expect(sim.ips("n3")).toEqual({ a: "198.51.100.10", b: "198.51.100.11" });
    for (const n of sim.names) {
      expect(allocatorOf(sim.get(n).state, sim.get(n).opts)).toBe("n1");
      expect(sim.get(n).applied.length).toBe(1);
    }
  });

  test("a member alone announces nothing until its start window ends, then makes generation 1", () => {
    const sim = new Sim(["n1", "n2", "n3"], cfg("a"));
    sim.kill("n2");
    sim.kill("n3");
    sim.advance(900);
    expect(sim.get("n1").state.phase).toBe("starting");
    expect(sim.get("n1").applied).toEqual([]);
    sim.advance(200);
    expect(sim.get("n1").state.phase).toBe("ready");
    expect(sim.ips("n1")).toEqual({ a: "198.51.100.10" });
  });
});

describe("the history scenario (issue: two nodes, same config, two answers)", () => {
  test("n1 allocated a, b then the config became b, c; n3 starting fresh with b, c adopts n1's table", () => {
    const sim = new Sim(["n1", "n2", "n3"], cfg("a", "b"));
    sim.kill("n3");
    sim.advance(1100);
    expect(sim.ips("n1")).toEqual({ a: "198.51.100.10", b: "198.51.100.11" });
    // Two of three members alive: a majority, so the site takes the write.
    sim.propose("n1", "put1", 1, cfg("b", "c"));
    expect(sim.get("n1").replies.get("put1")).toMatchObject({ ok: true, generation: 2 });
    // n1 keeps b=.11 and gives c the freed .10.
    expect(sim.ips("n1")).toEqual({ b: "198.51.100.11", c: "198.51.100.10" });
    // n3 starts fresh with the same new configuration in its file: alone it would say b=.10, c=.11.
    sim.start("n3", cfg("b", "c"), undefined);
    sim.advance(300);
    sim.expectAgreed();
    expect(sim.ips("n3")).toEqual({ b: "198.51.100.11", c: "198.51.100.10" });
    expect(siteView(sim.get("n3").state, sim.get("n3").opts).localConfigDiffers).toBe(false);
  });
});

function threeReady(services = ["a", "b", "c"]): Sim {
  const sim = new Sim(["n1", "n2", "n3"], cfg(...services));
  sim.advance(300);
  sim.expectAgreed();
  return sim;
}

describe("restarts and failover re-address nothing", () => {
  test("a member restarted with an empty state dir adopts the site's table before it is ready", () => {
    const sim = threeReady();
    sim.propose("n1", "p", 1, cfg("a", "c", "d")); // b released; d takes the lowest free address
    sim.advance(200);
    sim.expectAgreed();
    const before = sim.table("n1");
    // n1 (the allocator, lowest name) loses its disk: with its file alone it would allocate a, c, d
    // as .10, .11, .12.
    sim.kill("n1");
    sim.advance(500);
    sim.start("n1", cfg("a", "c", "d"), undefined);
    sim.advance(300);
    // It never made a table of its own: the only snapshot it applied is the site's.
    expect(sim.get("n1").applied.map((s) => `${s.generation}@${s.allocator}`)).toEqual(["2@n1"]);
    sim.expectAgreed();
    expect(sim.table("n1")).toEqual(before);
    expect(sim.get("n1").state.snapshot?.generation).toBe(2);
    // Ready again, it allocates again (lowest name), continuing from the adopted table.
    expect(allocatorOf(sim.get("n2").state, sim.get("n2").opts)).toBe("n1");
  });

  test("a member restarted with an empty state dir that gets one member's snapshot before it heard the others: persisted at once, applied only once it is ready", () => {
    const sim = threeReady();
    const site = sim.get("n1").state.snapshot as Snapshot;
    sim.kill("n3");
    sim.advance(500);
    // n3 returns and hears n1 first (n2 not yet: their link is cut for a moment).
    sim.groups = [
      ["n1", "n2"],
      ["n1", "n3"],
    ];
    sim.start("n3", cfg("x"), undefined);
    sim.advance(200);
    const n3 = sim.get("n3");
    expect(n3.logs.some((l) => l.message === "site snapshot adopted")).toBe(true);
    expect(n3.state.snapshot).toBe(site);
    expect(n3.disk).toBe(site);
    // Still starting (n2 not heard, start window not over): its data path was handed nothing, so
    // nothing can report the site's generation as running there.
    expect(n3.state.phase).toBe("starting");
    expect(n3.applied).toEqual([]);
    sim.groups = [];
    sim.advance(300);
    expect(n3.state.phase).toBe("ready");
    expect(n3.applied).toEqual([site]);
    sim.expectAgreed();
  });

  test("a member restarted with its state dir, the site unchanged: it applies what it holds when it becomes ready", () => {
    const sim = threeReady();
    const disk = sim.get("n2").disk as Snapshot;
    sim.kill("n2");
    sim.advance(500);
    sim.start("n2", cfg("a", "b", "c"), disk);
    expect(sim.get("n2").applied).toEqual([]);
    sim.advance(300);
    // Nothing newer to adopt: the apply comes with readiness.
    expect(sim.get("n2").state.counters.adopted).toBe(0);
    expect(sim.get("n2").applied).toEqual([disk]);
    sim.expectAgreed();
  });

  test("the allocator killed: the next one continues from the table it adopted", () => {
    const sim = threeReady(["a", "b", "c", "d"]);
    sim.propose("n2", "p1", 1, cfg("a", "c", "d")); // forwarded to n1
    sim.advance(100);
    expect(sim.get("n2").replies.get("p1")).toMatchObject({ ok: true, generation: 2, allocator: "n1" });
    const before = sim.table("n2");
    sim.kill("n1");
    sim.advance(500);
    expect(allocatorOf(sim.get("n3").state, sim.get("n3").opts)).toBe("n2");
    // A new Service: the address b freed (.11) is taken; nobody else moves.
    sim.propose("n3", "p2", 2, cfg("a", "c", "d", "e"));
    sim.advance(100);
    expect(sim.get("n3").replies.get("p2")).toMatchObject({ ok: true, generation: 3, allocator: "n2" });
    sim.expectAgreed(["n2", "n3"]);
    const after = sim.table("n3");
    for (const r of before) expect(after.find((x) => x.key === r.key)?.ips).toEqual(r.ips);
    expect(sim.ips("n3").e).toBe("198.51.100.11");
  });
});

describe("writes", () => {
  test("two PUTs with the same If-Match on two members: exactly one wins, the other is Stale", () => {
    const sim = threeReady();
    sim.propose("n2", "x", 1, cfg("a", "b", "c", "x"));
    sim.propose("n3", "y", 1, cfg("a", "b", "c", "y"));
    sim.advance(200);
    const rx = sim.get("n2").replies.get("x");
    const ry = sim.get("n3").replies.get("y");
    expect([rx?.ok, ry?.ok].filter((x) => x === true).length).toBe(1);
    expect([rx?.error, ry?.error]).toContain("Stale");
    sim.expectAgreed();
    expect(sim.get("n1").state.snapshot?.generation).toBe(2);
    expect(sim.get("n1").state.counters.stale).toBe(1);
  });

  test("the same on the allocator itself and a follower at once", () => {
    const sim = threeReady();
    sim.propose("n3", "f", 1, cfg("f"));
    sim.propose("n1", "l", 1, cfg("l"));
    sim.advance(200);
    expect(sim.get("n1").replies.get("l")?.ok).toBe(true);
    expect(sim.get("n3").replies.get("f")).toMatchObject({ ok: false, error: "Stale", generation: 2 });
    sim.expectAgreed();
  });

  test("an invalid configuration is refused by the allocator and changes nothing", () => {
    const sim = threeReady();
    sim.propose("n2", "bad", 1, "kind: Nonsense\n");
    sim.advance(100);
    expect(sim.get("n2").replies.get("bad")).toMatchObject({ ok: false, error: "Refused" });
    expect(sim.get("n2").state.snapshot?.generation).toBe(1);
  });

  test("a member still starting refuses a PUT (NotReady); a PUT unanswered by the allocator times out", () => {
    const sim = new Sim(["n1", "n2", "n3"], cfg("a"));
    sim.propose("n2", "early", 0, cfg("b"));
    expect(sim.get("n2").replies.get("early")).toMatchObject({ ok: false, error: "NotReady" });
    sim.advance(300);
    sim.groups = [["n1"], ["n2", "n3"]]; // n1 unreachable, not yet declared dead by n2
    sim.propose("n2", "lost", 1, cfg("b"));
    sim.advance(2100);
    expect(sim.get("n2").replies.get("lost")).toMatchObject({ ok: false, error: "NotReady" });
  });

  test("a member that was down while the config changed catches up when it returns", () => {
    const sim = threeReady();
    const disk3 = sim.get("n3").disk;
    sim.kill("n3");
    sim.advance(500);
    sim.propose("n2", "p", 1, cfg("a", "b", "c", "d"));
    sim.advance(100);
    sim.propose("n1", "q", 2, cfg("b", "c", "d"));
    sim.advance(100);
    expect(sim.get("n1").state.snapshot?.generation).toBe(3);
    sim.start("n3", cfg("a", "b", "c"), disk3); // its own disk: generation 1
    sim.advance(300);
    sim.expectAgreed();
    expect(sim.get("n3").state.snapshot?.generation).toBe(3);
    expect(sim.get("n3").state.counters.heals).toBe(0);
    // Its file still holds the old site objects: reported.
    expect(siteView(sim.get("n3").state, sim.get("n3").opts).localConfigDiffers).toBe(true);
  });
});

describe("partitions", () => {
  test("only the side with a majority takes writes; the other refuses (NoQuorum) and changes nothing; at the heal all hold the majority's", () => {
    const sim = threeReady(["a", "b"]); // a=.10, b=.11
    sim.groups = [["n1"], ["n2", "n3"]];
    sim.advance(500);
    // Each side elects its own allocator and keeps what it holds.
    expect(allocatorOf(sim.get("n1").state, sim.get("n1").opts)).toBe("n1");
    expect(allocatorOf(sim.get("n3").state, sim.get("n3").opts)).toBe("n2");
    expect(quorum(sim.get("n1").state, sim.get("n1").opts)).toMatchObject({
      ok: false,
      alive: ["n1"],
      needed: 2,
    });
    // n1 alone (1 of 3) refuses; nothing is persisted or applied.
    const applied = sim.get("n1").applied.length;
    const disk = sim.get("n1").disk;
    sim.propose("n1", "s1", 1, cfg("b", "c"));
    const r = sim.get("n1").replies.get("s1");
    expect(r).toMatchObject({ ok: false, error: "NoQuorum", generation: 1 });
    expect(r?.message).toContain("sees 1 of the site's 3 members alive (n1); a write needs 2");
    expect(sim.get("n1").state.snapshot?.generation).toBe(1);
    expect(sim.get("n1").applied.length).toBe(applied);
    expect(sim.get("n1").disk).toBe(disk);
    expect(sim.get("n1").state.counters.noQuorum).toBe(1);
    // n2's side (2 of 3) takes writes, forwarded or not.
    sim.propose("n3", "s2", 1, cfg("a", "b", "c"));
    sim.advance(100);
    sim.propose("n2", "s3", 2, cfg("a", "b", "c", "d"));
    sim.advance(100);
    expect(sim.get("n3").replies.get("s2")).toMatchObject({ ok: true, generation: 2, allocator: "n2" });
    expect(sim.get("n2").replies.get("s3")).toMatchObject({ ok: true, generation: 3 });
    // Heal: n1 adopts generation 3; its own was an ancestor, so no heal is recorded.
    sim.groups = [];
    sim.advance(500);
    sim.expectAgreed();
    expect(sim.get("n1").state.snapshot).toMatchObject({ generation: 3, allocator: "n2" });
    expect(sim.ips("n1")).toEqual({
      a: "198.51.100.10",
      b: "198.51.100.11",
      c: "198.51.100.12",
      d: "198.51.100.13",
    });
    expect(sim.get("n1").state.counters.heals).toBe(0);
    // n1 allocates again (lowest name) and continues from the majority's table.
    expect(allocatorOf(sim.get("n2").state, sim.get("n2").opts)).toBe("n1");
  });

  test("just after a split the site channel still counts the others; live membership's heartbeats, which notice sooner, narrow the quorum", () => {
    const sim = threeReady(["a"]);
    sim.groups = [["n1"], ["n2", "n3"]];
    sim.advance(100); // less than the site channel's deadMs: n1 still counts n2 and n3
    expect(quorum(sim.get("n1").state, sim.get("n1").opts).ok).toBe(true);
    // Membership no longer hears them (its dead-after is shorter): the write is refused.
    sim.propose("n1", "early", 1, cfg("a", "x"), []);
    expect(sim.get("n1").replies.get("early")).toMatchObject({ ok: false, error: "NoQuorum" });
    expect(sim.get("n1").state.snapshot?.generation).toBe(1);
    // The members membership hears count only if the site channel hears them too.
    expect(quorum(sim.get("n1").state, sim.get("n1").opts, ["n2"])).toMatchObject({
      ok: true,
      alive: ["n1", "n2"],
    });
    sim.advance(400);
    expect(quorum(sim.get("n1").state, sim.get("n1").opts, ["n2", "n3"])).toMatchObject({
      ok: false,
      alive: ["n1"],
    });
  });

  test("a two-member site split in two takes writes on neither side; four split 2|2 neither", () => {
    const two = new Sim(["n1", "n2"], cfg("a"));
    two.advance(300);
    two.expectAgreed();
    two.groups = [["n1"], ["n2"]];
    two.advance(500);
    two.propose("n1", "p1", 1, cfg("a", "x"));
    two.propose("n2", "p2", 1, cfg("a", "y"));
    two.advance(100);
    expect(two.get("n1").replies.get("p1")).toMatchObject({ ok: false, error: "NoQuorum" });
    expect(two.get("n2").replies.get("p2")).toMatchObject({ ok: false, error: "NoQuorum" });
    two.groups = [];
    two.advance(500);
    two.expectAgreed();
    expect(two.get("n2").state.snapshot?.generation).toBe(1);

    const four = new Sim(["n1", "n2", "n3", "n4"], cfg("a"));
    four.advance(300);
    four.expectAgreed();
    four.groups = [
      ["n1", "n2"],
      ["n3", "n4"],
    ];
    four.advance(500);
    four.propose("n2", "q1", 1, cfg("a", "x"));
    four.propose("n4", "q2", 1, cfg("a", "y"));
    four.advance(100);
    expect(four.get("n2").replies.get("q1")).toMatchObject({ ok: false, error: "NoQuorum" });
    expect(four.get("n4").replies.get("q2")).toMatchObject({ ok: false, error: "NoQuorum" });
  });

  test("two sides that each made a snapshot (a new site started split): the lower allocator name wins, changes listed", () => {
    const sim = new Sim(["n1", "n2", "n3"], cfg("a", "y"));
    sim.groups = [["n1"], ["n2", "n3"]];
    sim.start("n1", cfg("a", "x"), undefined);
    // Each side waits its start window, then its lowest member makes generation 1.
    sim.advance(1200);
    expect(sim.get("n1").state.snapshot).toMatchObject({ generation: 1, allocator: "n1" });
    expect(sim.get("n3").state.snapshot).toMatchObject({ generation: 1, allocator: "n2" });
    sim.groups = [];
    sim.advance(500);
    sim.expectAgreed();
    expect(sim.get("n3").state.snapshot).toMatchObject({ generation: 1, allocator: "n1" });
    expect(sim.ips("n3")).toEqual({ a: "198.51.100.10", x: "198.51.100.11" });
    const heal = siteView(sim.get("n3").state, sim.get("n3").opts).lastHeal;
    expect(heal).toMatchObject({ from: "1@n2", to: "1@n1" });
    expect(heal?.changes).toEqual([{ service: "default/y", from: ["198.51.100.11"], to: [] }]);
    expect(sim.get("n3").state.counters).toMatchObject({ heals: 1, readdressed: 1 });
    expect(
      sim
        .get("n3")
        .logs.some((l) => l.level === "warn" && /re-addressed by the partition heal/.test(l.message)),
    ).toBe(true);
    expect(sim.get("n1").state.counters.heals).toBe(0);
  });
});

describe("what a peer holds: the fresher of its site status and its heartbeat", () => {
  test("a heartbeat sent after the last status wins; an older one does not; liveness stays the site channel's", () => {
    const sim = threeReady(["a"]);
    const n1 = sim.get("n1");
    const sentOf = (n: string) => n1.state.peers.get(n)?.versionSent ?? -1n;
    const d = tableDigest(n1.state.snapshot?.table ?? []);
    expect(sentOf("n2")).toBe(-1n); // the simulated network stamps no clock
    const beats = new Map([
      ["n2", { generation: 7, allocator: "n1", digest: "00112233aabbccdd", sent: 5n }],
      ["n3", { generation: 1, allocator: "n1", digest: d, sent: -2n }],
    ]);
    const merged = withHeartbeats(n1.state, beats);
    const v = siteView(merged, n1.opts);
    const m2 = v.members.find((m) => m.name === "n2");
    expect(m2).toMatchObject({ generation: 7, digest: "00112233aabbccdd", via: "heartbeat", alive: true });
    expect(v.members.find((m) => m.name === "n3")).toMatchObject({ generation: 1, via: "site" });
    // n2 reports another generation: not consistent.
    expect(isConsistent(merged, n1.opts)).toBe(false);
    expect(isConsistent(n1.state, n1.opts)).toBe(true);
    // A status stamped later than the heartbeat wins again.
    const r = step(
      merged,
      {
        type: "message",
        now: sim.now,
        from: "n2",
        sent: 6n,
        msg: { type: "status", generation: 1, allocator: "n1", digest: d, ready: true },
      },
      n1.opts,
    );
    const again = withHeartbeats(r.state, beats);
    expect(siteView(again, n1.opts).members.find((m) => m.name === "n2")).toMatchObject({
      generation: 1,
      via: "site",
    });
    expect(isConsistent(again, n1.opts)).toBe(true);
  });
});

describe("adoption is exact", () => {
  test("a follower's table equals the allocator's, digest and all, over a run of random changes", () => {
    const sim = threeReady(["a"]);
    const letters = "abcdefghijkl".split("");
    let gen = 1;
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 30; i++) {
      const services = letters.filter(() => rnd() % 2 === 0);
      const via = sim.names[rnd() % 3] as string;
      sim.propose(via, `r${i}`, gen, cfg(...services));
      sim.advance(100);
      expect(sim.get(via).replies.get(`r${i}`)?.ok).toBe(true);
      gen++;
      sim.expectAgreed();
      const d = tableDigest(sim.table("n1"));
      for (const n of sim.names) expect(siteView(sim.get(n).state, sim.get(n).opts).digest).toBe(d);
    }
  });
});
