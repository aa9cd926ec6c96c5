/**
 * One site, one truth: three real `vipd run` nodes in network namespaces on one bridge
 * (test/support/cluster-lab), each with its own file and state dir, agree on one configuration
 * and one assignment table (src/site). The stories, in order, on one lab:
 * - the history that used to make two nodes disagree (n1 allocated a, b, the config became b, c;
 *   n2 and n3 start fresh with b, c): all three agree with n1;
 * - two PUTs with the same If-Match on two members at once: exactly one wins, the other is 412;
 * - forged and replayed site messages: refused and counted, nothing changes;
 * - kill -9 of the allocator: the next member allocates, nothing is re-addressed;
 * - a config pushed while a member is down: it catches up when it returns;
 * - a member restarted with an empty state dir: it adopts the site's table, re-addresses nothing;
 * - a partition 2|1 and its heal: the one side refuses writes (503 NoQuorum, nothing changed), the
 *   two side takes them; after the heal all three hold the majority side's generation.
 * The members' heartbeats carry their generation and digest too (heartbeat version 3): the site
 * view says where each member's came from.
 * Needs root.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN, ClusterLab, type LabNode, SUBNET, until } from "../support/cluster-lab/cluster-lab.ts";

setDefaultTimeout(240_000);

const API = "http://127.0.0.1:7473";
const AUTH = `authorization: Bearer ${ADMIN_TOKEN}`;
const ROOT = join(import.meta.dir, "../..");

/** The site objects: a pool of eleven IPv4 addresses, its L2Advertisement, and these Services. */
function siteObjects(...services: string[]): string {
  return [
    `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: ["${SUBNET}.100-${SUBNET}.110"] }
`,
    `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: { name: lan-l2, namespace: metallb-system }
spec: { ipAddressPools: [lan] }
`,
    ...services.map(
      (s) => `apiVersion: v1
kind: Service
metadata: { name: ${s}, namespace: default }
spec: { type: LoadBalancer, ports: [{ port: 80 }] }
`,
    ),
  ].join("---\n");
}

const ip = (n: number) => `${SUBNET}.${n}`;

let c: ClusterLab;
let nodeSettings: Map<string, string>;

/** Replaces a node's file: its own NodeSettings (as the cluster lab wrote them) and these site objects. */
function writeSite(node: LabNode, objects: string): void {
  writeFileSync(join(node.dir, "config", "vipd.yaml"), `${nodeSettings.get(node.name)}\n---\n${objects}`);
}

interface SiteView {
  phase: string;
  allocator: string | null;
  generation: number;
  applied: number;
  madeBy: string | null;
  digest: string;
  consistent: boolean;
  localConfigDiffers: boolean;
  members: { name: string; alive: boolean; generation: number; digest: string; via: string | null }[];
  lastHeal: { from: string; to: string; changes: { service: string; from: string[]; to: string[] }[] } | null;
  counters: Record<string, number>;
}

const site = (n: LabNode) => c.api<SiteView>(n, "/api/v1/site");

/**
 * Service name → its addresses, as the node's API lists them. A node that does not answer is an
 * error, not an empty list (which would compare equal to another unanswered call).
 */
async function services(n: LabNode): Promise<Record<string, string>> {
  const r = await c.api<{ items: { name: string; ips: string[] }[] }>(n, "/api/v1/services", 3);
  if (r === undefined) throw new Error(`${n.name}: GET /api/v1/services did not answer`);
  return Object.fromEntries(r.items.map((s) => [s.name, s.ips.join(",")]));
}

const running = () => c.nodes.filter((n) => n.proc !== undefined);

/** Waits until every running node is ready, consistent, at one generation, and runs it; returns it. */
async function agreed(nodes = running(), ms = 45_000): Promise<SiteView> {
  let seen = "";
  try {
    return await until(
      "the site to agree",
      async () => {
        const views = await Promise.all(nodes.map((n) => site(n)));
        seen = JSON.stringify(
          views.map((v) => v && [v.phase, v.generation, v.applied, v.madeBy, v.digest, v.consistent]),
        );
        const first = views[0];
        if (first === undefined) return undefined;
        const ok = views.every(
          (v) =>
            v?.phase === "ready" &&
            v.consistent &&
            v.generation === first.generation &&
            v.applied === v.generation &&
            v.digest === first.digest &&
            v.members.filter((m) => m.alive).length === nodes.length,
        );
        return ok ? first : undefined;
      },
      ms,
    );
  } catch (e) {
    const tails = nodes.map((n) => `${n.name}: ${n.logs.slice(-8).join("\n  ")}`).join("\n");
    throw new Error(`${(e as Error).message}; last seen ${seen}\n${tails}`);
  }
}

/** The ETag of the site configuration, as a node's API gives it. */
async function etag(n: LabNode): Promise<string> {
  const r = await c.lab.run(n.ns, [
    "curl",
    "-sf",
    "-D",
    "-",
    "-o",
    "/dev/null",
    "-H",
    AUTH,
    `${API}/api/v1/config`,
  ]);
  const m = /^etag:\s*(.+?)\s*$/im.exec(r.stdout);
  if (!m) throw new Error(`no ETag from ${n.name}: ${r.stdout}`);
  return m[1] as string;
}

let bodies = 0;
/** PUT /api/v1/config on a node; returns the HTTP status and body. */
async function put(n: LabNode, objects: string, ifMatch: string): Promise<{ code: number; body: string }> {
  const file = join(c.work, `body-${bodies++}.yaml`);
  writeFileSync(file, objects);
  const r = await c.lab.run(
    n.ns,
    [
      "curl",
      "-s",
      "--max-time",
      "90",
      "-X",
      "PUT",
      "-H",
      AUTH,
      "-H",
      "content-type: application/yaml",
      "-H",
      `if-match: ${ifMatch}`,
      "--data-binary",
      `@${file}`,
      "-w",
      "\n%{http_code}",
      `${API}/api/v1/config`,
    ],
    { allowFail: true, timeoutMs: 95_000 },
  );
  const i = r.stdout.lastIndexOf("\n");
  const code = Number(r.stdout.slice(i + 1));
  if (!(code > 0)) {
    // No answer at all: say what the nodes were doing.
    const tails = c.nodes.map((x) => `${x.name}: ${x.logs.slice(-15).join("\n  ")}`).join("\n");
    throw new Error(`PUT on ${n.name}: no HTTP answer (curl exit ${r.code}, ${r.stderr.trim()})\n${tails}`);
  }
  return { code, body: r.stdout.slice(0, i) };
}

async function metric(n: LabNode, prefix: string): Promise<number> {
  const line = (await c.metrics(n)).split("\n").find((l) => l.startsWith(`${prefix} `));
  return line === undefined ? 0 : Number(line.slice(prefix.length + 1));
}

function restart(n: LabNode): void {
  c.startResponder(n);
  c.start(n);
}

beforeAll(async () => {
  c = await ClusterLab.create({ tag: "site" });
  nodeSettings = new Map(
    c.nodes.map((n) => [
      n.name,
      readFileSync(join(n.dir, "config", "vipd.yaml"), "utf8").split("\n---\n")[0] as string,
    ]),
  );
}, 120_000);
afterAll(async () => {
  await c?.destroy();
});

describe("a site of three vipd nodes", () => {
  test("the history scenario: n1's table wins over what fresh nodes would allocate", async () => {
    const [n1, n2, n3] = c.nodes as [LabNode, LabNode, LabNode];
    writeSite(n1, siteObjects("a", "b"));
    c.start(n1);
    // Alone: it waits its start window, then makes generation 1 from its file.
    const v1 = await agreed([n1]);
    expect(v1.generation).toBe(1);
    expect(await services(n1)).toEqual({ a: ip(100), b: ip(101) });
    // n2 starts with b, c in its file: it adopts the site's a, b.
    writeSite(n2, siteObjects("b", "c"));
    c.start(n2);
    await agreed([n1, n2]);
    expect(await services(n2)).toEqual({ a: ip(100), b: ip(101) });
    // The config becomes b, c (two of three members alive: a majority): n1 keeps b and gives c
    // the freed .100.
    const r = await put(n1, siteObjects("b", "c"), await etag(n1));
    expect(r.code).toBe(200);
    expect(await services(n1)).toEqual({ b: ip(101), c: ip(100) });
    // n3 starts fresh with b, c in its file (alone it would give b=.100, c=.101).
    writeSite(n3, siteObjects("b", "c"));
    c.start(n3);
    const v = await agreed();
    expect(v).toMatchObject({ generation: 2, madeBy: "n1", allocator: "n1" });
    // n2's and n3's files hold what the site holds; n1's still holds a, b (reported; the site's win).
    expect((await site(n3))?.localConfigDiffers).toBe(false);
    expect((await site(n1))?.localConfigDiffers).toBe(true);
    for (const n of c.nodes) expect(await services(n)).toEqual({ b: ip(101), c: ip(100) });
    // The metrics say so too.
    expect(await metric(n3, "vipd_site_consistent")).toBe(1);
    expect(await metric(n3, "vipd_site_generation")).toBe(2);
    // The heartbeats (every 50 ms here, the site status every 250 ms) carry generation and digest:
    // the view takes the fresher, so most of the time a member's comes from its heartbeat.
    await until("a member's generation to come from its heartbeat", async () => {
      const view = await site(n2);
      const m = view?.members.find((x) => x.via === "heartbeat");
      return m !== undefined && m.generation === 2 && m.digest === v.digest;
    });
  });

  test("two PUTs with the same If-Match on two members at once: exactly one wins, the other gets 412", async () => {
    const [, n2, n3] = c.nodes as [LabNode, LabNode, LabNode];
    const tag = await etag(n2);
    expect(await etag(n3)).toBe(tag);
    const [x, y] = await Promise.all([
      put(n2, siteObjects("b", "c", "x"), tag),
      put(n3, siteObjects("b", "c", "y"), tag),
    ]);
    expect([x.code, y.code].sort()).toEqual([200, 412]);
    const v = await agreed();
    expect(v.generation).toBe(3);
    const s = await services(n2);
    expect(Object.keys(s).sort()).toEqual(x.code === 200 ? ["b", "c", "x"] : ["b", "c", "y"]);
  });

  test("forged and replayed site messages are refused and counted", async () => {
    const n2 = c.nodes[1] as LabNode;
    const before = await agreed();
    // A sender on the segment (the client's namespace) that has recorded a genuine message.
    const script = join(c.work, "inject.ts");
    writeFileSync(
      script,
      `import { decodeHello, encodeMessage, Framer, frame } from "${ROOT}/src/site/codec.ts";
const key = new Uint8Array(await Bun.file(process.argv[2]).arrayBuffer());
const other = new TextEncoder().encode("not-the-site-key-0123456789abcdef");
async function dial() {
  const framer = new Framer();
  let got = (_n) => {};
  const nonce = new Promise((r) => { got = r; });
  const sock = await Bun.connect({ hostname: "${n2.ip}", port: 7946, socket: { data: (_s, b) => {
    for (const f of framer.push(b).frames) { const n = decodeHello(f); if (n) got(n); } } } });
  return { sock, nonce: await nonce };
}
const a = await dial();
const msg = { type: "request" };
a.sock.write(frame(encodeMessage({ from: "n1", to: "n2", counter: 1n, nonce: a.nonce, msg }, other)));
const real = frame(encodeMessage({ from: "n1", to: "n2", counter: 2n, nonce: a.nonce, msg }, key));
a.sock.write(real);
await Bun.sleep(200);
a.sock.write(real);
const b = await dial();
b.sock.write(real);
await Bun.sleep(300);
a.sock.end(); b.sock.end();
`,
    );
    const r = await c.lab.run("client", [process.execPath, script, c.keyFile], {
      allowFail: true,
      timeoutMs: 15_000,
    });
    expect(r.code).toBe(0);
    const dropped = (reason: string) => metric(n2, `vipd_site_messages_dropped_total{reason="${reason}"}`);
    await until("the refusals to be counted", async () => (await dropped("StaleNonce")) >= 1, 5000);
    expect(await dropped("BadMac")).toBe(1);
    expect(await dropped("Replay")).toBe(1);
    expect(await dropped("StaleNonce")).toBe(1);
    expect(n2.logs.some((l) => l.includes("site message refused"))).toBe(true);
    const after = await agreed();
    expect(after.generation).toBe(before.generation);
    expect(after.digest).toBe(before.digest);
  });

  test("kill -9 of the allocator: the next member allocates, nothing is re-addressed; the dead one catches up", async () => {
    const [n1, n2, n3] = c.nodes as [LabNode, LabNode, LabNode];
    const before = await services(n2);
    const gen = (await agreed()).generation;
    await c.crash(n1);
    await until("n2 to allocate", async () => (await site(n3))?.allocator === "n2", 10_000);
    expect(await services(n3)).toEqual(before);
    // A config pushed while n1 is down.
    const next = siteObjects(...Object.keys(before).sort(), "d");
    const r = await put(n3, next, await etag(n3));
    expect(r.code).toBe(200);
    const v = await agreed([n2, n3]);
    expect(v).toMatchObject({ generation: gen + 1, madeBy: "n2" });
    const after = await services(n2);
    for (const [k, ips] of Object.entries(before)) expect(after[k]).toBe(ips);
    expect(after.d).toBeDefined();
    // n1 returns with its state dir (generation `gen`) and its old file: it catches up.
    restart(n1);
    const back = await agreed();
    expect(back.generation).toBe(gen + 1);
    expect(await services(n1)).toEqual(after);
    expect((await site(n1))?.localConfigDiffers).toBe(true);
    // Ready again, the lowest name allocates again, from the table it adopted.
    expect(back.allocator).toBe("n1");
  });

  test("a member restarted with an empty state dir adopts the site's table", async () => {
    const n3 = c.nodes[2] as LabNode;
    const before = await services(n3);
    const gen = (await agreed()).generation;
    await c.crash(n3);
    rmSync(join(n3.dir, "state"), { recursive: true, force: true });
    restart(n3);
    // Agreed means n3 is ready and its data path runs the site's generation (`applied`: handed
    // to the Daemon and installed), so its Services are the site's from then on. (It used to
    // report `applied` for the apply it made while still starting, which installs nothing; a
    // fast machine could read the empty Services in the moment before the real one.)
    const v = await agreed();
    expect(v.generation).toBe(gen);
    expect(await services(n3)).toEqual(before);
    // Its log comes through a pipe, read asynchronously: waited for, not assumed to be in.
    await until(
      "n3 to log that it adopted the site's snapshot",
      () => n3.logs.some((l) => l.includes("site snapshot adopted")),
      5000,
    ).catch((e) => {
      throw new Error(`${(e as Error).message}; n3 logged:\n  ${n3.logs.slice(-20).join("\n  ")}`);
    });
    // It adopted the site's table and made none of its own.
    expect(n3.logs.some((l) => l.includes("new site, generation 1"))).toBe(false);
  });

  test("a partition 2|1: the one side refuses writes (503, nothing changed), the two side takes them; after the heal all hold the majority's", async () => {
    const [n1, n2, n3] = c.nodes as [LabNode, LabNode, LabNode];
    const base = await services(n1);
    const names = Object.keys(base).sort();
    const before = await agreed();
    const gen = before.generation;
    await c.link(n1, false);
    await until("both sides to see the split", async () => {
      const [a, b, d] = await Promise.all([site(n1), site(n2), site(n3)]);
      return (
        a?.members.filter((m) => m.alive).length === 1 &&
        b?.members.filter((m) => m.alive).length === 2 &&
        d?.allocator === "n2"
      );
    });
    // n1 alone (1 of 3) refuses, saying what it sees and what a write needs.
    const refused = await put(n1, siteObjects(...names, "p"), await etag(n1));
    expect(refused.code).toBe(503);
    expect(JSON.parse(refused.body)).toMatchObject({
      error: "NoQuorum",
      sees: ["n1"],
      needed: 2,
      members: 3,
    });
    expect(JSON.parse(refused.body).message).toContain("a write needs 2");
    // Nothing changed on n1: same generation, digest, Services, and its state file says the same.
    const still = await site(n1);
    expect(still).toMatchObject({ generation: gen, digest: before.digest });
    expect(await services(n1)).toEqual(base);
    const disk = JSON.parse(readFileSync(join(n1.dir, "state", "site.json"), "utf8"));
    expect(disk.generation).toBe(gen);
    expect(await metric(n1, 'vipd_site_writes_total{outcome="no_quorum"}')).toBe(1);
    // The two side (2 of 3) takes writes: q through n3 (forwarded to n2, its allocator), then r.
    expect((await put(n3, siteObjects(...names, "q"), await etag(n3))).code).toBe(200);
    expect((await put(n2, siteObjects(...names, "q", "r"), await etag(n2))).code).toBe(200);
    const majority = await agreed([n2, n3]);
    expect(majority).toMatchObject({ generation: gen + 2, madeBy: "n2" });
    await c.link(n1, true);
    const v = await agreed([n1, n2, n3], 30_000);
    expect(v).toMatchObject({ generation: gen + 2, madeBy: "n2", digest: majority.digest });
    expect(await services(n1)).toEqual(await services(n2));
    expect(Object.keys(await services(n1)).sort()).toEqual([...names, "q", "r"].sort());
    // n1's snapshot was an ancestor of the majority's: a catch-up, not a heal.
    expect((await site(n1))?.lastHeal).toBeNull();
    expect(await metric(n1, "vipd_site_heals_total")).toBe(0);
  });
});
