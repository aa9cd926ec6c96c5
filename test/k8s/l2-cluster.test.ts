/**
 * Layer-2 failover in Kubernetes mode, for real: three `vipd k8s` speakers, each in its own
 * network namespace on one bridge with XDP on its eth0, against a real kube-apiserver v1.20.2
 * under RBAC, as the k3s addon's ServiceAccount (test/k8s/l2lab.ts explains how the namespaces
 * reach it), and a client that arpings the VIP.
 *
 * With a cluster key the speakers run authenticated heartbeats among the Nodes (members and
 * addresses from the Node objects): kill -9 of the owner moves the VIP to another node within a
 * couple of seconds although the dead node's Node object still says Ready; forged heartbeats
 * (wrong key) do not make the dead node alive. With Lease fencing the new owner answers only
 * after the old owner's Lease expired, and at no moment do two nodes hold the VIP. Last, a
 * membership partition on a shared segment (one speaker with another key): without fencing two
 * nodes answer ARP for the VIP; with fencing only the Lease holder does. Needs root; fails (never
 * skips) when the API server, XDP or namespaces are unavailable.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { PATHS, parseKubeTime } from "../../src/k8s/client.ts";
import { leaseName } from "../../src/k8s/fence.ts";
import { until } from "../support/until.ts";
import { NAMESPACE, realCluster, type TestCluster } from "./harness.ts";
import { K8sL2Lab, type K8sNode, VIP } from "./l2lab.ts";
import { create, l2adv, pool, service } from "./vipd.ts";

setDefaultTimeout(120_000);

let c: TestCluster;
let lab: K8sL2Lab;
const KEY_ARGS = (l: K8sL2Lab) => ["--cluster-key-file", l.keyFile];

beforeAll(async () => {
  // RBAC on, the k3s addon applied: the speakers run with its ServiceAccount's rights only.
  c = await realCluster({ rbac: true });
  lab = await K8sL2Lab.create(c, { tag: "k8l2", nodes: 3 });
  await lab.createNodes();
  await create(c, pool("lan", [`${VIP}/32`]));
  await create(c, l2adv("lan-l2"));
  await create(c, service("web"));
}, 180_000);

afterAll(async () => {
  await lab?.destroy();
  await c?.close();
});

/** Waits until every running node sees every running node Alive and ready. */
async function allAlive(): Promise<void> {
  await until(
    "every speaker to see every other one Alive and ready",
    async () => {
      const names = new Set(lab.live().map((n) => n.name));
      for (const n of lab.live()) {
        const m = await lab.members(n);
        if (m.filter((x) => names.has(x.name) && x.state === "Alive" && x.ready).length !== names.size)
          return false;
      }
      return true;
    },
    30_000,
  );
}

/** Waits until the running nodes agree on one owner, which alone holds the VIP and answers ARP. */
async function settled(): Promise<string> {
  let seen = "";
  try {
    return await until(
      "one agreed owner that alone holds and answers the VIP",
      async () => {
        const owners = await Promise.all(lab.live().map(async (n) => (await lab.election(n))?.owner));
        const h = await lab.holders();
        const arp = await lab.arpAnswerers(VIP, 2);
        seen = `owners [${owners.join(", ")}], holders [${h.join(", ")}], ARP [${arp.join(", ")}]`;
        const o = owners[0];
        if (o === undefined || owners.some((x) => x !== o)) return undefined;
        return h.length === 1 && h[0] === o && arp.length === 1 && arp[0] === o ? o : undefined;
      },
      40_000,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last seen: ${seen}\n${lab.tails()}`);
  }
}

async function nodeReady(name: string): Promise<string | undefined> {
  const n = await c.admin.get(`${PATHS.nodes()}/${name}`);
  return (n.status as { conditions?: { type: string; status: string }[] }).conditions?.find(
    (x) => x.type === "Ready",
  )?.status;
}

async function metric(n: K8sNode, prefix: string): Promise<number> {
  const line = (await lab.metrics(n)).split("\n").find((l) => l.startsWith(`${prefix} `));
  return line === undefined ? 0 : Number(line.slice(prefix.length + 1));
}

describe("vipd k8s with a cluster key: heartbeat membership among the Nodes", () => {
  let owner = "";

  test("members come from the Node list (InternalIP); the speakers agree on one owner that answers ARP", async () => {
    for (const n of lab.nodes) lab.start(n, KEY_ARGS(lab));
    await allAlive();
    owner = await settled();
    for (const n of lab.nodes) {
      const m = await lab.members(n);
      expect(m.map((x) => x.name).sort()).toEqual(["n1", "n2", "n3"]);
      expect(m.find((x) => x.name === n.name)?.state).toBe("Alive");
      const e = await lab.election(n);
      expect(e?.owner).toBe(owner);
      expect(e?.candidates).toHaveLength(3);
    }
  });

  test("kill -9 of the owner: another node answers ARP within seconds, while its Node is still Ready", async () => {
    const old = lab.node(owner);
    const t0 = Date.now();
    await lab.kill9(old);
    const by = await until(
      "another node to answer ARP for the VIP",
      async () => {
        const a = await lab.arpAnswerers(VIP, 1);
        return a.length === 1 && a[0] !== owner ? a[0] : undefined;
      },
      // Kubernetes alone would need the Node to go NotReady (40 s by default); this is membership.
      8000,
    );
    console.log(`k8s l2: kill -9 of ${owner}: ${by} answered ARP after ${Date.now() - t0} ms`);
    expect(await nodeReady(owner)).toBe("True");
    // Usually `by` itself; another node when a loaded machine paused one of them for a moment
    // (a paused node holds back for riseMs + deadAfterMs by design, and then takes its VIPs back).
    const now = await settled();
    if (process.env.VIPD_TEST_LOG)
      console.log(
        lab.nodes
          .map(
            (n) =>
              `${n.name}:\n  ${n.logs
                .filter((l) => /membership changed|owner changed/.test(l))
                .slice(-10)
                .join("\n  ")}`,
          )
          .join("\n"),
      );
    expect(now).not.toBe(owner);
    for (const n of lab.live()) {
      const e = await lab.election(n);
      expect(e?.owner).toBe(now);
      expect(e?.notOwner.find((x) => x.node === owner)?.reason).toBe("NotAlive");
      expect(["Dead", "Unknown"]).toContain(
        (await lab.members(n)).find((x) => x.name === owner)?.state as string,
      );
    }
  });

  test("forged heartbeats (wrong key) do not make the dead node alive; the shared key does", async () => {
    const live = lab.live();
    const target = live[0] as K8sNode;
    const BAD = 'vipd_cluster_heartbeats_dropped_total{reason="BadMac"}';
    /** The states `target` shows for the dead node while `send` runs, and just after. */
    const statesDuring = async (send: () => Promise<void>): Promise<Set<string>> => {
      const states = new Set<string>();
      let done = false;
      const p = send().finally(() => {
        done = true;
      });
      while (!done) {
        states.add((await lab.members(target)).find((x) => x.name === owner)?.state ?? "absent");
        await Bun.sleep(20);
      }
      await p;
      states.add((await lab.members(target)).find((x) => x.name === owner)?.state ?? "absent");
      return states;
    };
    const wrong = crypto.getRandomValues(new Uint8Array(32));
    const before = await Promise.all(live.map((n) => metric(n, BAD)));
    const forged = await statesDuring(() =>
      Promise.all(live.map((n) => lab.sendHeartbeats(n, owner, wrong, 30, 50))).then(() => {}),
    );
    // Dead (or Unknown, had the observer itself been paused): never Rising, never Alive.
    expect([...forged].filter((s) => s !== "Dead" && s !== "Unknown")).toEqual([]);
    for (const [i, n] of live.entries()) {
      // Counted in the timing worker; /metrics shows the main thread's copy, which follows with
      // the worker's next snapshot (every 250 ms): polled, not read once.
      const want = (before[i] as number) + 30;
      const counted = await until(
        `${n.name} to count the 30 forged heartbeats`,
        async () => {
          const v = await metric(n, BAD);
          return v >= want ? v : undefined;
        },
        5_000,
      ).catch(() => metric(n, BAD));
      expect(counted).toBeGreaterThanOrEqual(want);
      expect((await lab.election(n))?.notOwner.find((x) => x.node === owner)?.reason).toBe("NotAlive");
    }
    // The control: the same datagrams with the shared key are taken, and the node starts rising.
    const genuine = await statesDuring(() => lab.sendHeartbeats(target, owner, lab.key, 15, 50));
    expect([...genuine].some((s) => s === "Rising" || s === "Alive")).toBe(true);
  });

  test("the killed node returns: it rises, and the VIP ends with exactly one owner", async () => {
    lab.start(lab.node(owner), KEY_ARGS(lab));
    await allAlive();
    await settled();
  });

  test("forced failover: only the owner may decline; the VIP moves to the named node, and back on cancel", async () => {
    owner = await settled();
    const other = lab.nodes.find((n) => n.name !== owner) as K8sNode;
    const refused = await lab.post(other, "/api/v1/l2/failover", { ip: VIP });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: "NotOwner" });
    const unknown = await lab.post(lab.node(owner), "/api/v1/l2/failover", { ip: "10.87.0.222" });
    expect(unknown.status).toBe(404);

    const r = await lab.post(lab.node(owner), "/api/v1/l2/failover", { ip: VIP, node: other.name });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ip: VIP, from: owner, to: other.name, declined: [VIP] });
    expect(await settled()).toBe(other.name);
    // Every node agrees (the decline travels with the owner's heartbeats) and says why.
    for (const n of lab.live()) {
      const e = await lab.election(n);
      expect(e?.owner).toBe(other.name);
      expect(e?.notOwner.find((x) => x.node === owner)?.reason).toBe("Declined");
    }
    expect(
      await metric(lab.node(owner), 'vipd_l2_ownership_changes_total{change="released"}'),
    ).toBeGreaterThan(0);

    const back = await lab.post(lab.node(owner), "/api/v1/l2/failover", { ip: VIP, cancel: true });
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ ip: VIP, cancelled: true, declined: [] });
    expect(await settled()).toBe(owner);
  });

  test("heartbeats over the Nodes' IPv6 InternalIPs (--cluster-address-family ipv6)", async () => {
    for (const n of lab.live()) await lab.stop(n);
    for (const n of lab.nodes) lab.start(n, [...KEY_ARGS(lab), "--cluster-address-family", "ipv6"]);
    await allAlive();
    await settled();
    const sent = await Promise.all(lab.nodes.map((n) => metric(n, "vipd_cluster_heartbeats_sent_total")));
    expect(sent.every((x) => x > 0)).toBe(true);
    // Members are reached at their v6 address: the log of the start names them.
    const started = lab.nodes[0]?.logs.find((l) => l.includes("live membership on")) ?? "";
    for (const n of lab.nodes) expect(started).toContain(`${n.name}@${n.ip6}`);
  });
});

describe("vipd k8s with Lease fencing (--l2-lease-fencing)", () => {
  const DURATION = 3;
  let owner = "";

  test("the owner holds the VIP's Lease; the others show it as the VIP's holder", async () => {
    for (const n of lab.live()) await lab.stop(n);
    for (const n of lab.nodes)
      lab.start(n, [...KEY_ARGS(lab), "--l2-lease-fencing", "--l2-lease-duration", String(DURATION)]);
    await allAlive();
    owner = await settled();
    const lease = await c.admin.get(`${PATHS.leases(NAMESPACE)}/${leaseName(VIP)}`);
    expect((lease.spec as { holderIdentity?: string }).holderIdentity).toBe(owner);
    expect((lease.spec as { leaseDurationSeconds?: number }).leaseDurationSeconds).toBe(DURATION);
    expect((await lab.election(lab.node(owner)))?.lease?.state).toBe("Held");
  });

  test("forced failover with fencing: the owner hands the Lease over at once; never two holders", async () => {
    const path = `${PATHS.leases(NAMESPACE)}/${leaseName(VIP)}`;
    const to = lab.nodes.find((n) => n.name !== owner) as K8sNode;
    const before = await c.admin.get(path);
    const renewed = parseKubeTime((before.spec as { renewTime?: string }).renewTime);
    const r = await lab.post(lab.node(owner), "/api/v1/l2/failover", { ip: VIP, node: to.name });
    expect(r.status).toBe(200);
    let worst = 0;
    const t0 = Date.now();
    let spec: { holderIdentity?: string; acquireTime?: string } = {};
    while (Date.now() - t0 < 20_000) {
      const [h, arp, lease] = await Promise.all([lab.holders(), lab.arpAnswerers(VIP, 1), c.admin.get(path)]);
      worst = Math.max(worst, h.length, arp.length);
      spec = lease.spec as typeof spec;
      if (spec.holderIdentity === to.name && h.length === 1 && h[0] === to.name) break;
      await Bun.sleep(30);
    }
    expect(spec.holderIdentity).toBe(to.name);
    expect(worst).toBe(1);
    // Handed over, not waited out: taken before the old holder's last renewal could expire.
    expect(parseKubeTime(spec.acquireTime)).toBeLessThan(renewed + DURATION * 1000);
    expect(await settled()).toBe(to.name);
    const back = await lab.post(lab.node(owner), "/api/v1/l2/failover", { ip: VIP, cancel: true });
    expect(back.status).toBe(200);
    expect(await settled()).toBe(owner);
  });

  test("kill -9 of the owner: the new owner waits for the Lease to expire; never two holders", async () => {
    const path = `${PATHS.leases(NAMESPACE)}/${leaseName(VIP)}`;
    await lab.kill9(lab.node(owner));
    const killedAt = Date.now();
    // The last renewal the dead owner made: nobody may take over before it expired.
    const last = await c.admin.get(path);
    const renewed = parseKubeTime((last.spec as { renewTime?: string }).renewTime);
    expect((last.spec as { holderIdentity?: string }).holderIdentity).toBe(owner);

    let waited: { holder?: string; state: string } | undefined;
    let firstAnswer: { node: string; at: number } | undefined;
    let worst = 0;
    const trace: string[] = [];
    const end = killedAt + 20_000;
    while (Date.now() < end) {
      const [h, arp, views] = await Promise.all([
        lab.holders(),
        lab.arpAnswerers(VIP, 1),
        Promise.all(lab.live().map(async (n) => (await lab.election(n))?.lease)),
      ]);
      const at = Date.now();
      trace.push(`${at - killedAt}ms holders [${h}] arp [${arp}] leases ${JSON.stringify(views)}`);
      worst = Math.max(worst, h.length, arp.length);
      for (const v of views) if (v?.state === "Waiting") waited = v;
      if (firstAnswer === undefined && arp.length > 0 && arp[0] !== owner)
        firstAnswer = { node: arp[0] as string, at };
      if (firstAnswer !== undefined && at - firstAnswer.at > 1000) break;
      await Bun.sleep(30);
    }
    if (worst > 1 || firstAnswer === undefined) console.error(trace.join("\n"));
    expect(worst).toBe(1);
    expect(firstAnswer).toBeDefined();
    // The successor said whom it waited for, then took the Lease only once it had expired.
    expect(waited?.holder).toBe(owner);
    const after = await c.admin.get(path);
    const spec = after.spec as { holderIdentity?: string; acquireTime?: string; leaseTransitions?: number };
    expect(spec.holderIdentity).toBe(firstAnswer?.node as string);
    expect(parseKubeTime(spec.acquireTime)).toBeGreaterThanOrEqual(renewed + DURATION * 1000);
    expect(firstAnswer?.at as number).toBeGreaterThanOrEqual(renewed + DURATION * 1000);
    console.log(
      `k8s l2 fencing: ${firstAnswer?.node} answered ${(firstAnswer?.at as number) - killedAt} ms after kill -9 (Lease ${DURATION} s, last renewal ${killedAt - renewed} ms before the kill)`,
    );
  });

  test("SIGTERM of the owner hands its Lease back: the successor need not wait it out", async () => {
    const cur = await settled();
    const path = `${PATHS.leases(NAMESPACE)}/${leaseName(VIP)}`;
    await lab.stop(lab.node(cur));
    const released = await c.admin.get(path);
    const holder = (released.spec as { holderIdentity?: string }).holderIdentity;
    // Released ("") or already taken by the successor.
    expect(holder).not.toBe(cur);
    const next = await settled();
    expect(next).not.toBe(cur);
  });
});

describe("membership partitioned (one speaker with another key), the segment shared", () => {
  const DURATION = 3;
  const wrongKey = () => {
    const path = `${lab.work}/other.key`;
    writeFileSync(path, crypto.getRandomValues(new Uint8Array(32)), { mode: 0o600 });
    return path;
  };

  /** Starts n2 and n3 with the shared key and n1 with another one; waits until each side is settled. */
  async function partition(extra: string[]): Promise<void> {
    for (const n of lab.live()) await lab.stop(n);
    const other = wrongKey();
    lab.start(lab.node("n1"), ["--cluster-key-file", other, ...extra]);
    for (const n of ["n2", "n3"]) lab.start(lab.node(n), [...KEY_ARGS(lab), ...extra]);
    await until(
      "n2 and n3 Alive to each other, n1 alone",
      async () => {
        const m1 = await lab.members(lab.node("n1"));
        const m2 = await lab.members(lab.node("n2"));
        const m3 = await lab.members(lab.node("n3"));
        const alive = (m: typeof m1, n: string) => m.find((x) => x.name === n)?.state === "Alive";
        return alive(m2, "n3") && alive(m3, "n2") && m1.length === 3 && !alive(m1, "n2") && !alive(m1, "n3")
          ? true
          : undefined;
      },
      30_000,
    );
  }

  test("without fencing each side elects its own owner: two nodes answer ARP for the VIP", async () => {
    await partition([]);
    const both = await until(
      "both sides to answer",
      async () => {
        const a = await lab.arpAnswerers(VIP, 3);
        return a.length === 2 ? a : undefined;
      },
      30_000,
    );
    expect(both).toContain("n1");
  });

  test("with Lease fencing only the Lease holder answers; the other side says whom it waits for", async () => {
    // Every holder the Lease names from the start of this test (a waiting node's view may lag by
    // its last read: it may name a holder from just before the sampling loop, even the previous
    // test's, which must still be a real holder).
    const path = `${PATHS.leases(NAMESPACE)}/${leaseName(VIP)}`;
    const holdersSeen = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const lease = await c.admin.get(path).catch(() => undefined);
        const cur = (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
        if (cur) holdersSeen.add(cur);
        await Bun.sleep(50);
      }
    })();
    try {
      await partition(["--l2-lease-fencing", "--l2-lease-duration", String(DURATION)]);
      // n1 elects itself (it hears nobody); the n2/n3 side elects one of them. One holds the Lease.
      const holder = await until(
        "one node answering, holding the Lease",
        async () => {
          const lease = await c.admin
            .get(`${PATHS.leases(NAMESPACE)}/${leaseName(VIP)}`)
            .catch(() => undefined);
          const h = (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
          const a = await lab.arpAnswerers(VIP, 2);
          return h !== undefined && h !== "" && a.length === 1 && a[0] === h ? h : undefined;
        },
        30_000,
      );
      // Two elections disagree (n1 picks itself), which is what fencing is for.
      const owners = await until(
        "n1 to elect itself and the other side one of its own",
        async () => {
          const o = await Promise.all(lab.nodes.map(async (n) => (await lab.election(n))?.owner));
          return o[0] === "n1" && o[1] !== undefined && o[1] === o[2] && o[1] !== "n1" ? o : undefined;
        },
        20_000,
      );
      expect(new Set(owners).size).toBe(2);
      // For two Lease durations: never two answers, never two holders, and the elected node without
      // the Lease reports Waiting for the holder. (On a loaded machine a holder may miss a renewal
      // and the Lease pass to the other side: allowed, as long as there is never more than one.)
      let worst = 0;
      holdersSeen.add(holder);
      const waiting: [string, string][] = [];
      const trace: string[] = [];
      const t0 = Date.now();
      while (Date.now() - t0 < 2 * DURATION * 1000) {
        const [h, a, lease] = await Promise.all([
          lab.holders(),
          lab.arpAnswerers(VIP, 1),
          c.admin.get(path).catch(() => undefined),
        ]);
        const cur = (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
        if (cur) holdersSeen.add(cur);
        worst = Math.max(worst, h.length, a.length);
        const views: string[] = [];
        for (const n of lab.nodes) {
          const e = await lab.election(n);
          views.push(`${n.name}:${e?.owner}/${e?.lease?.state ?? "-"}/${e?.lease?.holder ?? "-"}`);
          if (e?.owner === n.name && e.lease?.state === "Waiting" && e.lease.holder !== undefined)
            waiting.push([n.name, e.lease.holder]);
        }
        trace.push(`${Date.now() - t0}ms lease ${cur} xdp [${h}] arp [${a}] ${views.join(" ")}`);
      }
      sampling = false;
      await sampler;
      const unknownHolder = waiting.some(([, h]) => !holdersSeen.has(h));
      if (worst > 1 || waiting.length === 0 || holdersSeen.size > 1 || unknownHolder)
        console.error(`holders seen: ${[...holdersSeen].join(", ")}\n${trace.join("\n")}`);
      expect(worst).toBe(1);
      expect(waiting.length).toBeGreaterThan(0);
      for (const [n, h] of waiting) {
        expect(n).not.toBe(h);
        expect(holdersSeen.has(h)).toBe(true);
      }
    } finally {
      sampling = false;
      await sampler;
    }
  });
});
