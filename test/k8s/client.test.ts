/**
 * The client wrapper and the informer against the faithful test API server, through
 * @kubernetes/client-node over TLS: the quirks they own (merge-patch content type, MicroTime,
 * TLS settings honoured), and the watch behaviour (410 → relist, BOOKMARK, inactivity restart,
 * backoff while the server is gone, no loss across any of it).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Kube, KubeError, loadKubeConfig, microTime, PATHS } from "../../src/k8s/client.ts";
import { Informer } from "../../src/k8s/informer.ts";
import { until } from "../support/until.ts";
import { fakeCluster } from "./harness.ts";
import { service } from "./vipd.ts";

let c: Awaited<ReturnType<typeof fakeCluster>>;
beforeAll(async () => {
  c = await fakeCluster({ bookmarkMs: 200 });
});
afterAll(async () => {
  await c.close();
});

const svcs = (ns = "default") => PATHS.services(ns);

describe("Kube (the client wrapper)", () => {
  test("merge patches go as application/merge-patch+json; a JSON patch body is refused by the server as the client's default would be", async () => {
    await c.admin.create(svcs(), service("mp"));
    const patched = await c.admin.mergePatch(`${svcs()}/mp`, { metadata: { annotations: { a: "1" } } });
    expect(patched.metadata.annotations).toEqual({ a: "1" });
    // What @kubernetes/client-node sends for a patch unless told otherwise: JSON Patch. The
    // server applies it as JSON Patch, so a merge-patch body sent that way is a 400/422, not a merge.
    const err = await c.admin
      .request(
        "PATCH",
        `${svcs()}/mp`,
        { metadata: { annotations: { b: "2" } } },
        "application/json-patch+json",
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeError);
  });

  test("MicroTime has six decimals; the server refuses a Lease with a plain time (400)", async () => {
    expect(microTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).toBe("2026-01-02T03:04:05.678000Z");
    const bad = await c.admin
      .create(PATHS.leases("default"), {
        metadata: { name: "bad" },
        spec: { renewTime: new Date().toISOString() },
      })
      .catch((e: unknown) => e);
    expect((bad as KubeError).status).toBe(400);
    const ok = await c.admin.create(PATHS.leases("default"), {
      metadata: { name: "good" },
      spec: { renewTime: microTime(Date.now()) },
    });
    expect(ok.metadata.name).toBe("good");
  });

  test("the status subresource: 422 for an ingress that is not an IP; 409 for a stale resourceVersion; writes to the object keep its status", async () => {
    await c.admin.create(svcs(), service("st"));
    const bad = await c.admin
      .mergePatch(`${svcs()}/st/status`, { status: { loadBalancer: { ingress: [{ ip: "nope" }] } } })
      .catch((e: unknown) => e);
    expect((bad as KubeError).status).toBe(422);
    const s1 = await c.admin.mergePatch(`${svcs()}/st/status`, {
      status: { loadBalancer: { ingress: [{ ip: "192.0.2.1" }] } },
    });
    const s2 = await c.admin.mergePatch(`${svcs()}/st`, {
      metadata: { labels: { x: "y" } },
      status: { loadBalancer: { ingress: [] } },
    });
    expect((s2.status as { loadBalancer: unknown }).loadBalancer).toEqual({ ingress: [{ ip: "192.0.2.1" }] });
    const stale = await c.admin.replace(`${svcs()}/st`, { ...s1 }).catch((e: unknown) => e);
    expect((stale as KubeError).status).toBe(409);
  });

  test("TLS settings are honoured: a kubeconfig with another CA is refused, a wrong token is 401", async () => {
    const other = join(c.pki.dir, "other-kubeconfig");
    const text = (await Bun.file(c.kubeconfig).text()).replace(
      /certificate-authority-data: .*/,
      `certificate-authority-data: ${Buffer.from(OTHER_CA).toString("base64")}`,
    );
    writeFileSync(other, text);
    const err = await new Kube(loadKubeConfig(other)).get("/api/v1/namespaces").catch((e: unknown) => e);
    expect(String(err)).toMatch(/certificate|self.signed|verify|issuer/i);
    const tok = join(c.pki.dir, "bad-token");
    writeFileSync(tok, (await Bun.file(c.kubeconfig).text()).replace(/token: .*/, "token: wrong"));
    expect(
      ((await new Kube(loadKubeConfig(tok)).get("/api/v1/namespaces").catch((e: unknown) => e)) as KubeError)
        .status,
    ).toBe(401);
  });

  test("rate limiting: beyond the burst, requests wait for tokens (none is sent early, none is lost)", async () => {
    const k = new Kube(loadKubeConfig(c.kubeconfig), { qps: 5, burst: 5 });
    const all = Promise.all(Array.from({ length: 8 }, () => k.get("/api/v1/namespaces/default")));
    await Bun.sleep(0);
    // The burst went out at once; the rest are queued for tokens (5 per second).
    expect(k.requests.GET).toBe(5);
    await all;
    expect(k.requests.GET).toBe(8);
  });
});

describe("Informer", () => {
  test("follows changes; ERROR 410 on the open watch → relist without losing or duplicating anything", async () => {
    const ns = "inf410";
    await c.admin.create("/api/v1/namespaces", { metadata: { name: ns } });
    const events: string[] = [];
    const inf = new Informer(new Kube(loadKubeConfig(c.kubeconfig)), svcs(ns), {
      backoffMs: [50, 200],
      onChange: (t, o) => events.push(`${t} ${o.metadata.name}`),
    });
    try {
      inf.start();
      await inf.waitSynced();
      await c.admin.create(svcs(ns), service("a", {}, {}, ns));
      await until("a", () => inf.get(`${ns}/a`));
      c.server.expireWatches();
      // Changes made while the informer relists are not lost.
      await c.admin.create(svcs(ns), service("b", {}, {}, ns));
      await c.admin.delete(`${svcs(ns)}/a`);
      await until(
        "b present, a gone",
        () => inf.get(`${ns}/b`) !== undefined && inf.get(`${ns}/a`) === undefined,
      );
      expect(inf.stats.gone).toBeGreaterThanOrEqual(1);
      expect(inf.stats.lists).toBeGreaterThanOrEqual(2);
      expect(events.filter((e) => e === "ADDED a")).toHaveLength(1);
      expect(events.filter((e) => e === "DELETED a")).toHaveLength(1);
    } finally {
      inf.stop();
    }
  });

  test("BOOKMARK events move the resourceVersion without changing the store", async () => {
    const inf = new Informer(new Kube(loadKubeConfig(c.kubeconfig)), svcs("kube-public"));
    try {
      inf.start();
      await inf.waitSynced();
      const rv0 = Number(inf.resourceVersion);
      await c.admin.create(svcs(), service("elsewhere"));
      await until("bookmark moves rv", () => Number(inf.resourceVersion) > rv0, 5000);
      expect(inf.list()).toEqual([]);
    } finally {
      inf.stop();
    }
  });

  test("a watch with no event for inactivityMs is restarted", async () => {
    // Bookmarks are off for this informer's server-side view: a namespace without changes and
    // a bookmark period longer than the inactivity timeout.
    const quiet = await fakeCluster({ bookmarkMs: 60_000 });
    const inf = new Informer(new Kube(loadKubeConfig(quiet.kubeconfig)), svcs(), { inactivityMs: 300 });
    try {
      inf.start();
      await inf.waitSynced();
      await until("two inactivity restarts", () => inf.stats.inactive >= 2, 5000);
      await quiet.admin.create(svcs(), service("late"));
      await until("still follows changes", () => inf.get("default/late"), 5000);
    } finally {
      inf.stop();
      await quiet.close();
    }
  });

  test("API server gone: the store keeps everything, retries back off, and it resyncs when the server returns", async () => {
    const gone = await fakeCluster();
    const inf = new Informer(new Kube(loadKubeConfig(gone.kubeconfig)), svcs(), { backoffMs: [50, 400] });
    try {
      await gone.admin.create(svcs(), service("kept"));
      inf.start();
      await inf.waitSynced();
      await gone.down();
      await Bun.sleep(1500);
      expect(inf.get("default/kept")).toBeDefined();
      const errors = inf.stats.errors;
      expect(errors).toBeGreaterThan(0);
      // Backoff: far fewer attempts than one per 50 ms.
      expect(errors).toBeLessThan(15);
      await gone.up();
      await gone.admin.create(svcs(), service("after"));
      await until("resynced", () => inf.get("default/after"), 10_000);
      expect(inf.get("default/kept")).toBeDefined();
    } finally {
      inf.stop();
      await gone.close();
    }
  });
});

// A CA that did not sign the test server's certificate.
const OTHER_CA = (() => {
  const dir = `/tmp/vipd-k8s-otherca-${process.pid}`;
  Bun.spawnSync(["mkdir", "-p", dir]);
  Bun.spawnSync(
    [
      "openssl",
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=other",
      "-keyout",
      `${dir}/k`,
      "-out",
      `${dir}/c`,
    ],
    { stderr: "pipe" },
  );
  const pem = readFileSync(`${dir}/c`, "utf8");
  Bun.spawnSync(["rm", "-rf", dir]);
  return pem;
})();
