/**
 * The site driver (src/site/driver.ts) with real TCP sockets: three members in this process on
 * loopback, each with its own state dir, the real allocator. Covers the new site, a PUT on any
 * member reaching all, two PUTs at once, forged and replayed messages from a raw socket, a
 * restart with an empty state dir, a member down during a change, and the allocator stopping.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { siteAllocate } from "../../src/site/allocate.ts";
import { decodeHello, encodeMessage, Framer, frame } from "../../src/site/codec.ts";
import { SITE_FILE, SiteDriver, type SiteMember } from "../../src/site/driver.ts";
import type { Snapshot } from "../../src/site/table.ts";
import { createLogger } from "../../src/util/log.ts";

const KEY = new TextEncoder().encode("site-shared-key-0123456789abcdef");

const POOL = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec: { addresses: [198.51.100.10-198.51.100.20] }
`;
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

const NAMES = ["n1", "n2", "n3"];

interface Node {
  name: string;
  dir: string;
  driver: SiteDriver;
  applied: Snapshot[];
}

class Site {
  readonly members: SiteMember[] = NAMES.map((name) => ({ name, address: "127.0.0.1", port: 1 }));
  readonly nodes = new Map<string, Node>();
  readonly dirs = new Map<string, string>();

  async start(name: string, local: string, opts: { emptyDir?: boolean } = {}): Promise<Node> {
    let dir = this.dirs.get(name);
    if (dir === undefined || opts.emptyDir) {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = mkdtempSync(join(tmpdir(), `vipd-site-${name}-`));
      this.dirs.set(name, dir);
    }
    const applied: Snapshot[] = [];
    const me = this.members.find((m) => m.name === name) as SiteMember;
    const driver = new SiteDriver({
      self: name,
      members: this.members,
      key: KEY,
      port: me.port === 1 ? 0 : (me.port as number),
      listen: "127.0.0.1",
      stateDir: dir,
      local,
      allocate: siteAllocate(() => undefined),
      apply: (s) => {
        applied.push(s);
      },
      log: createLogger("site", { level: "error" }),
      statusMs: 50,
      deadMs: 300,
      startupMs: 600,
      requestMs: 100,
      proposeTimeoutMs: 2000,
    });
    await driver.start();
    me.port = driver.port;
    const node = { name, dir, driver, applied };
    this.nodes.set(name, node);
    return node;
  }

  get(name: string): Node {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  async stop(name: string): Promise<void> {
    await this.nodes.get(name)?.driver.stop();
    this.nodes.delete(name);
  }

  async stopAll(): Promise<void> {
    for (const n of [...this.nodes.keys()]) await this.stop(n);
    for (const d of this.dirs.values()) rmSync(d, { recursive: true, force: true });
  }

  /** Waits (bounded) until `cond` holds. */
  async until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
    const end = performance.now() + ms;
    while (!cond()) {
      if (performance.now() > end) throw new Error(`timed out waiting: ${what}`);
      await Bun.sleep(10);
    }
  }

  agreed(names = [...this.nodes.keys()]): boolean {
    const views = names.map((n) => this.get(n).driver.view());
    const g = views[0];
    return views.every(
      (v) => v.phase === "ready" && v.consistent && v.generation === g?.generation && v.digest === g?.digest,
    );
  }

  ips(name: string): Record<string, string> {
    const t = this.get(name).driver.snapshot()?.table ?? [];
    return Object.fromEntries(t.map((r) => [r.key.replace("default/", ""), r.ips.join(",")]));
  }
}

let site: Site;
afterEach(async () => {
  await site?.stopAll();
});

async function threeAgreed(services = ["a", "b", "c"]): Promise<Site> {
  site = new Site();
  // Listeners first (port 0), so each knows the others' ports before they talk.
  for (const n of NAMES) await site.start(n, cfg(...services));
  await site.until(() => site.agreed(), "three members agree");
  return site;
}

describe("site driver over loopback TCP", () => {
  test("a new site agrees on generation 1; each member persisted it before applying", async () => {
    await threeAgreed();
    for (const n of NAMES) {
      const node = site.get(n);
      expect(node.driver.view()).toMatchObject({
        generation: 1,
        madeBy: "n1",
        allocator: "n1",
        consistent: true,
      });
      const file = join(node.dir, SITE_FILE);
      expect(existsSync(file)).toBe(true);
      const disk = JSON.parse(readFileSync(file, "utf8"));
      expect(disk.table).toEqual(node.applied.at(-1)?.table as unknown as object);
    }
    expect(site.ips("n3")).toEqual({ a: "198.51.100.10", b: "198.51.100.11", c: "198.51.100.12" });
  });

  test("a PUT on a follower: the allocator commits, every member applies the same generation", async () => {
    await threeAgreed();
    const r = await site.get("n3").driver.propose(1, cfg("b", "c", "d"));
    expect(r).toMatchObject({ ok: true, generation: 2, allocator: "n1" });
    // The proposer has applied it when the answer comes.
    expect(site.get("n3").applied.at(-1)?.generation).toBe(2);
    await site.until(() => site.agreed(), "all at generation 2");
    expect(site.ips("n2")).toEqual({ b: "198.51.100.11", c: "198.51.100.12", d: "198.51.100.10" });
  });

  test("two PUTs with the same base on two members at once: exactly one wins", async () => {
    await threeAgreed();
    const [x, y] = await Promise.all([
      site.get("n2").driver.propose(1, cfg("a", "x")),
      site.get("n3").driver.propose(1, cfg("a", "y")),
    ]);
    expect([x.ok, y.ok].filter(Boolean).length).toBe(1);
    expect([x.error, y.error]).toContain("Stale");
    await site.until(() => site.agreed(), "agreement after the race");
    expect(site.get("n1").driver.view().generation).toBe(2);
  });

  test("forged and replayed messages are refused and counted", async () => {
    await threeAgreed();
    const n2 = site.get("n2").driver;
    const port = site.members[1]?.port as number;
    const other = new TextEncoder().encode("not-the-site-key-0123456789abcde");
    /** A raw connection to n2: resolves its Hello nonce. */
    const dial = async () => {
      const framer = new Framer();
      let resolveNonce: (n: Uint8Array) => void = () => {};
      const nonce = new Promise<Uint8Array>((r) => {
        resolveNonce = r;
      });
      const sock = await Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          data: (_s, buf) => {
            for (const f of framer.push(buf).frames) {
              const n = decodeHello(f);
              if (n) resolveNonce(n);
            }
          },
        },
      });
      return { sock, nonce: await nonce };
    };
    const dropped = (reason: string) => n2.drops.get(reason as never) ?? 0;
    const c1 = await dial();
    const forged = encodeMessage(
      { from: "n1", to: "n2", counter: 1n, nonce: c1.nonce, msg: { type: "request" } },
      other,
    );
    c1.sock.write(frame(forged));
    await site.until(() => dropped("BadMac") === 1, "the forged message is counted");
    const real = encodeMessage(
      { from: "n1", to: "n2", counter: 5n, nonce: c1.nonce, msg: { type: "request" } },
      KEY,
    );
    const before = n2.received.get("request") ?? 0;
    c1.sock.write(frame(real));
    await site.until(() => (n2.received.get("request") ?? 0) === before + 1, "a genuine message is taken");
    c1.sock.write(frame(real)); // the same bytes again
    await site.until(() => dropped("Replay") === 1, "the replay on the same connection is counted");
    const c2 = await dial();
    c2.sock.write(frame(real)); // recorded on c1, played on c2
    await site.until(() => dropped("StaleNonce") === 1, "the replay on another connection is counted");
    expect(n2.received.get("request")).toBe(before + 1);
    const m = n2.metrics().find((f) => f.name === "vipd_site_messages_dropped_total");
    expect(m?.samples.find((s) => s.labels?.reason === "BadMac")?.value).toBe(1);
    c1.sock.end();
    c2.sock.end();
    // Nothing changed.
    expect(site.agreed()).toBe(true);
  });

  test("a member restarted with an empty state dir adopts the table; nothing is re-addressed", async () => {
    await threeAgreed(["a", "b", "c", "d"]);
    expect((await site.get("n2").driver.propose(1, cfg("a", "c", "d"))).ok).toBe(true);
    await site.until(() => site.agreed(), "generation 2 everywhere");
    const before = site.ips("n1");
    await site.stop("n1");
    // Its file holds the new config: alone it would allocate a, c, d as .10, .11, .12.
    const n1 = await site.start("n1", cfg("a", "c", "d"), { emptyDir: true });
    await site.until(() => site.agreed(["n1", "n2", "n3"]), "n1 adopted");
    expect(site.ips("n1")).toEqual(before);
    expect(n1.applied.map((s) => s.generation)).toEqual([2]);
    expect(n1.driver.view().allocator).toBe("n1");
  });

  test("a member down while the config changes catches up when it returns", async () => {
    await threeAgreed();
    await site.stop("n3");
    expect((await site.get("n1").driver.propose(1, cfg("a", "b", "c", "d"))).ok).toBe(true);
    expect((await site.get("n2").driver.propose(2, cfg("b", "c", "d"))).ok).toBe(true);
    const n3 = await site.start("n3", cfg("a", "b", "c"));
    await site.until(() => site.agreed(), "n3 caught up");
    expect(n3.driver.view().generation).toBe(3);
    expect(n3.driver.view().localConfigDiffers).toBe(true);
    expect(site.ips("n3")).toEqual(site.ips("n1"));
  });

  test("the allocator stops: the next member allocates, continuing from the same table", async () => {
    await threeAgreed(["a", "b", "c"]);
    expect((await site.get("n1").driver.propose(1, cfg("a", "c"))).ok).toBe(true);
    await site.until(() => site.agreed(), "generation 2");
    const before = site.ips("n2");
    await site.stop("n1");
    await site.until(() => site.get("n3").driver.view().allocator === "n2", "n2 allocates");
    const r = await site.get("n3").driver.propose(2, cfg("a", "c", "e"));
    expect(r).toMatchObject({ ok: true, generation: 3, allocator: "n2" });
    await site.until(() => site.agreed(["n2", "n3"]), "n2 and n3 agree");
    const after = site.ips("n3");
    expect(after.a).toBe(before.a as string);
    expect(after.c).toBe(before.c as string);
    expect(after.e).toBe("198.51.100.11");
  });
});
