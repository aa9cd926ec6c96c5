/**
 * Layer-2 ownership across three real `vipd run` nodes in network namespaces on one bridge, plus
 * a client (test/support/cluster-lab/cluster-lab.ts). Each node serves a UDP responder that names itself,
 * reached through local delivery, so the client sees WHO answers the VIP. The story: the nodes
 * agree on one owner; the owner is killed (-9), stopped (SIGSTOP) or loses its link, and another
 * node answers, the client's neighbour entry moves and traffic continues; the old owner
 * returning never makes two owners; a forced failover moves the VIP through the API; forged and
 * replayed heartbeats are refused and do not keep a dead node alive. Needs root.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeHeartbeat } from "../../src/cluster/heartbeat.ts";
import {
  absNow,
  ClusterLab,
  type LabNode,
  type Probe,
  until,
  VIP,
  VIP6,
} from "../support/cluster-lab/cluster-lab.ts";

setDefaultTimeout(120_000);

let c: ClusterLab;
beforeAll(async () => {
  c = await ClusterLab.create({ tag: "l2c" });
  await c.startAll();
}, 120_000);
afterAll(async () => {
  await c?.destroy();
});

interface ElectionItem {
  ip: string;
  owner?: string;
  candidates: string[];
  notOwner: { node: string; reason: string; message: string }[];
}

async function elections(n: LabNode): Promise<ElectionItem[]> {
  return (await c.api<{ items: ElectionItem[] }>(n, "/api/v1/l2/elections"))?.items ?? [];
}

/** A metric sample's value from a node's /metrics ("" labels: the whole line prefix). */
async function metric(n: LabNode, prefix: string): Promise<number> {
  const text = await c.metrics(n);
  const line = text.split("\n").find((l) => l.startsWith(`${prefix} `));
  return line === undefined ? 0 : Number(line.slice(prefix.length + 1));
}

/**
 * Samples the holders of the VIP (every running node's XDP map, through its API) until `ms`
 * passed, and returns how many consecutive samples at most showed two or more holders.
 */
async function worstDoubleOwnership(ms: number): Promise<{ run: number; samples: number }> {
  const t0 = Date.now();
  const end = t0 + ms;
  let run = 0;
  let worst = 0;
  let samples = 0;
  const trace: string[] = [];
  while (Date.now() < end) {
    const h = await c.holders();
    trace.push(`${Date.now() - t0}ms [${h.join(",")}]`);
    samples++;
    run = h.length > 1 ? run + 1 : 0;
    worst = Math.max(worst, run);
    await Bun.sleep(50);
  }
  if (worst > 1) {
    // Say what happened: the samples and every node's ownership decisions.
    const decisions = c.nodes.map(
      (n) =>
        `${n.name}:\n  ${n.logs
          .filter((l) => /owner changed|plan recomputed|driver failed/.test(l))
          .slice(-12)
          .join("\n  ")}`,
    );
    console.error(`double ownership:\n${trace.join("\n")}\n${decisions.join("\n")}`);
  }
  return { run: worst, samples };
}

/** After a failover event at `t`: the probe is answered by `by`, and the neighbour entry moved. */
async function expectTakenOver(p: Probe, t: number, old: string): Promise<string> {
  const by = await until("another node to answer the VIP", async () => {
    const a = p.since(t).filter((x) => x.node !== old);
    return a.length >= 5 ? (a.at(-1)?.node as string) : undefined;
  });
  expect(by).not.toBe(old);
  // Traffic continues: every answer in the last stretch comes from the new owner.
  await Bun.sleep(300);
  const recent = p.since(absNow() - 250);
  expect(recent.length).toBeGreaterThan(5);
  expect(new Set(recent.map((x) => x.node))).toEqual(new Set([by]));
  expect(c.nodeByMac(await c.clientNeigh())).toBe(by);
  return by;
}

describe("three vipd nodes share a VIP on layer 2", () => {
  test("they agree on one owner; the API shows the ordered candidates and why each other node is not the owner", async () => {
    type Members = { items: { name: string; self: boolean; state: string; ready: boolean }[] };
    // What each node's API should show once all three are candidates everywhere (each has heard
    // every other one for riseMs): the same owner first among three, the two others lower in the
    // order, and every member Alive and ready, itself listed first. Polled, because a node that
    // became a candidate a moment ago may still move the VIP to itself (it may be first in the
    // order); a check that throws says what it saw, and the last one is in the timeout's message.
    const check = async (owner: string): Promise<true> => {
      for (const n of c.nodes) {
        const [e] = await elections(n);
        const m = await c.api<Members>(n, "/api/v1/cluster/members");
        const want = c.nodes
          .map((x) => x.name)
          .sort((a, b) => (a === n.name ? -1 : b === n.name ? 1 : a < b ? -1 : 1))
          .map((x) => [x, x === n.name, "Alive", true]);
        const got = {
          ip: e?.ip,
          owner: e?.owner,
          candidates: e?.candidates,
          notOwner: e?.notOwner.map((x) => [x.node, x.reason]).sort(),
          members: m?.items.map((x) => [x.name, x.self, x.state, x.ready]),
        };
        const others = c.nodes.map((x) => x.name).filter((x) => x !== owner);
        if (
          got.ip !== VIP ||
          got.owner !== owner ||
          got.candidates?.length !== 3 ||
          got.candidates[0] !== owner ||
          JSON.stringify(got.notOwner) !== JSON.stringify(others.map((x) => [x, "LowerInOrder"])) ||
          JSON.stringify(got.members) !== JSON.stringify(want)
        )
          throw new Error(`${n.name} shows ${JSON.stringify(got)} (owner agreed by all: ${owner})`);
      }
      return true;
    };
    const owner = await until(
      "one owner, three candidates and every member Alive and ready on every node",
      async () => {
        const o = await c.settled();
        await check(o);
        return o;
      },
    );
    // The dual-stack Service's IPv6 address follows the first one.
    const [, v6] = await elections(c.nodes[0] as LabNode);
    expect(v6?.ip).toBe(VIP6);
    expect(v6?.owner).toBe(owner);
    expect(c.nodeByMac(await c.ndpAnswerer())).toBe(owner);
    // Only the owner answers ARP, and the client reaches the owner's responder.
    expect((await c.arpAnswerers()).map((m) => c.nodeByMac(m))).toEqual([owner]);
    const p = c.probe(10, 1500);
    await p.done;
    expect(p.answers.length).toBeGreaterThan(20);
    expect(new Set(p.answers.map((a) => a.node))).toEqual(new Set([owner]));
  });

  test("kill -9 of the owner (vipd and the node's service): another node answers, the neighbour entry moves; the dead node's leftovers stay silent", async () => {
    const old = c.node(await c.settled());
    const p = c.probe(10, 8000);
    await until("probe answers", async () => p.answers.length > 20);
    const t = absNow();
    // Both die: the client is answered again only if another node takes over.
    await c.crash(old);
    const by = await expectTakenOver(p, t, old.name);
    // The killed node's XDP entry and local route are still installed, but its liveness stamp
    // went stale (2 × deadAfterMs), and the kernel does not answer ARP for a VIP held only as a
    // route on lo: a broadcast ARP request is answered by the new owner alone.
    await Bun.sleep(500);
    expect((await c.arpAnswerers()).map((m) => c.nodeByMac(m))).toEqual([by]);
    expect(c.nodeByMac(await c.ndpAnswerer())).toBe(by);
    const counters = await c.lab.run(old.ns, ["ip", "route", "show", "table", "local", "proto", "201"]);
    expect(counters.stdout).toContain(VIP);
    await p.done;

    // The killed node comes back: it owns nothing until it is ready and Alive to the others;
    // then, as the natural owner, it takes the VIP back once. Never two owners for long.
    c.startResponder(old);
    c.start(old);
    const watch = await worstDoubleOwnership(4000);
    expect(watch.samples).toBeGreaterThan(10);
    expect(watch.run).toBeLessThanOrEqual(1);
    await c.allReady();
    expect(await c.settled()).toBe(old.name);
    expect(c.nodeByMac(await until("neighbour entry", () => c.clientNeigh()))).toBeDefined();
  });

  test("SIGSTOP of the owner: another node answers; SIGCONT does not make two owners", async () => {
    const old = c.node(await c.settled());
    const p = c.probe(10, 10_000);
    await until("probe answers", async () => p.answers.length > 20);
    const t = absNow();
    old.proc?.kill("SIGSTOP");
    old.stopped = true;
    const by = await expectTakenOver(p, t, old.name);
    await Bun.sleep(500);
    // The stopped process's XDP program went stale: only the new owner answers ARP.
    expect((await c.arpAnswerers()).map((m) => c.nodeByMac(m))).toEqual([by]);

    old.proc?.kill("SIGCONT");
    old.stopped = false;
    // Resumed, it sees it was paused, owns nothing until ready, then takes its VIP back once.
    const watch = await worstDoubleOwnership(4000);
    expect(watch.run).toBeLessThanOrEqual(1);
    await c.allReady();
    const owner = await c.settled();
    await p.done;
    // The client's neighbour entry ends on the owner's MAC, and the owner answers.
    await until(
      "neighbour entry on the owner's MAC",
      async () => c.nodeByMac(await c.clientNeigh()) === owner,
    );
    const tail = p.answers.slice(-20);
    expect(new Set(tail.map((a) => a.node))).toEqual(new Set([owner]));
  });

  test("link down on the owner: another node answers; link up does not make two owners", async () => {
    const old = c.node(await c.settled());
    const p = c.probe(10, 10_000);
    await until("probe answers", async () => p.answers.length > 20);
    const t = absNow();
    await c.lab.run(old.ns, ["ip", "link", "set", "eth0", "down"]);
    await expectTakenOver(p, t, old.name);
    await Bun.sleep(500);
    // Isolated, the old owner believes the others dead and owns the VIP itself (a partition).
    await c.lab.run(old.ns, ["ip", "link", "set", "eth0", "up"]);
    // Healed, the smaller side steps back at once; the VIP goes home once, after riseMs.
    const watch = await worstDoubleOwnership(4000);
    expect(watch.run).toBeLessThanOrEqual(1);
    await c.allReady();
    const owner = await c.settled();
    await p.done;
    await until(
      "neighbour entry on the owner's MAC",
      async () => c.nodeByMac(await c.clientNeigh()) === owner,
    );
    expect(new Set(p.answers.slice(-20).map((a) => a.node))).toEqual(new Set([owner]));
  });

  test("forced failover: only the owner may decline; the VIP moves to the next candidate or the named one, and back on cancel", async () => {
    const owner = c.node(await c.settled());
    const [e] = await elections(owner);
    const [, second, third] = e?.candidates ?? [];
    if (second === undefined || third === undefined) throw new Error("expected three candidates");
    const before = await metric(owner, 'vipd_l2_ownership_changes_total{change="released"}');

    // Asked of a node that does not own it: refused, nothing changes.
    const wrong = await c.post<{ error: string }>(c.node(second), "/api/v1/l2/failover", { ip: VIP });
    expect(wrong.code).toBe(409);
    expect(wrong.body.error).toBe("NotOwner");
    // Not an eligible candidate: refused.
    const bad = await c.post<{ error: string }>(owner, "/api/v1/l2/failover", { ip: VIP, node: "nobody" });
    expect(bad.code).toBe(422);

    // To the named (third) candidate: every node agrees, through the heartbeats.
    const p = c.probe(10, 6000);
    await until("probe answers", async () => p.answers.length > 20);
    const ok = await c.post<{ to?: string }>(owner, "/api/v1/l2/failover", { ip: VIP, node: third });
    expect(ok.code).toBe(200);
    expect(ok.body.to).toBe(third);
    expect(await c.settled()).toBe(third);
    for (const n of c.nodes) {
      const [x] = await elections(n);
      expect(x?.notOwner.find((r) => r.node === owner.name)?.reason).toBe("Declined");
    }
    await until("the client to be answered by the named node", async () => p.answers.at(-1)?.node === third);
    expect(c.nodeByMac(await c.clientNeigh())).toBe(third);
    // Counted per address: both of the dual-stack Service's addresses left this node.
    expect(await metric(owner, 'vipd_l2_ownership_changes_total{change="released"}')).toBe(before + 2);

    // Withdrawn: the VIP goes back to its natural owner.
    const back = await c.post<{ cancelled: boolean }>(owner, "/api/v1/l2/failover", {
      ip: VIP,
      cancel: true,
    });
    expect(back.body.cancelled).toBe(true);
    expect(await c.settled()).toBe(owner.name);
    await p.done;
  });

  test("a forged heartbeat (wrong key) and a replayed captured one are refused, counted, and do not keep a dead node alive", async () => {
    const owner = c.node(await c.settled());
    const other = c.nodes.find((n) => n !== owner) as LabNode;
    const victim = c.nodes.find((n) => n !== owner && n !== other) as LabNode;
    // Capture one real heartbeat from the victim on the wire (to `other`).
    const pcap = join(c.work, "hb.pcap");
    await c.lab.run(
      other.ns,
      [
        "tcpdump",
        "-i",
        "eth0",
        "-c",
        "1",
        "-w",
        pcap,
        "udp",
        "dst",
        "port",
        "7946",
        "and",
        "src",
        "host",
        victim.ip,
      ],
      { timeoutMs: 10_000 },
    );
    const raw = readFileSync(pcap);
    // pcap: 24-byte file header, 16-byte record header, Ethernet 14, IPv4 20, UDP 8, payload.
    const captured = new Uint8Array(raw.subarray(24 + 16 + 14 + 20 + 8));
    expect(String.fromCharCode(...captured.subarray(0, 4))).toBe("VIPH");

    // The victim dies.
    victim.proc?.kill("SIGKILL");
    await victim.proc?.exited;
    victim.proc = undefined;
    const up = `vipd_cluster_member_up{member="${victim.name}"}`;
    await until("the victim to be dead to the others", async () => (await metric(other, up)) === 0);

    const badMac = 'vipd_cluster_heartbeats_dropped_total{reason="BadMac"}';
    const replay = 'vipd_cluster_heartbeats_dropped_total{reason="Replay"}';
    const [mac0, replay0] = [await metric(other, badMac), await metric(other, replay)];
    // A stranger keeps sending heartbeats "from" the victim: one signed with the wrong key, and
    // the captured (genuine, but old) one, 40 times each over 2 s.
    const forged = encodeHeartbeat(
      { node: victim.name, seq: 2n ** 62n, intervalMs: 50, leaving: false, ready: true },
      new TextEncoder().encode("not-the-site-key-0123456789abcdef"),
    );
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    const sender = `
      const s = await Bun.udpSocket({});
      const pk = [${JSON.stringify(hex(forged))}, ${JSON.stringify(hex(captured))}].map((h) => Buffer.from(h, "hex"));
      for (let i = 0; i < 40; i++) { for (const p of pk) s.send(p, 7946, ${JSON.stringify(other.ip)}); await Bun.sleep(50); }
      s.close();`;
    await c.lab.run("client", [process.execPath, "-e", sender], { timeoutMs: 20_000 });
    await until("the refusals to be counted", async () => (await metric(other, replay)) >= replay0 + 40);
    expect(await metric(other, badMac)).toBeGreaterThanOrEqual(mac0 + 40);
    // The victim stays dead: nobody elects it.
    expect(await metric(other, up)).toBe(0);
    const [x] = await elections(other);
    expect(x?.notOwner.find((r) => r.node === victim.name)?.reason).toBe("NotAlive");
    const members = await c.api<{ items: { name: string; state: string }[] }>(
      other,
      "/api/v1/cluster/members",
    );
    expect(members?.items.find((m) => m.name === victim.name)?.state).toBe("Dead");

    c.start(victim);
    await c.allReady();
    await c.settled();
  });
});
