/**
 * Paged lists (src/api/paging.ts through the state routes, with app.request): `limit` and
 * `continue` as Kubernetes lists have them, a default and a maximum page, 400 JSON for a bad
 * limit or token, and following the tokens gives every item exactly once even when the list
 * changes between pages.
 */

import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { encodeContinue, PAGE_DEFAULT, PAGE_MAX, paginate, parsePage } from "../../src/api/paging.ts";
import type { ServiceView } from "../../src/api/runtime.ts";
import { ServiceList } from "../../src/api/schemas.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const READER = "paging-read-token";
const TOKENS = [{ name: "dash", role: "read" as const, hash: hashToken(READER) }];
const auth = { Authorization: `Bearer ${READER}` };

const svc = (i: number): ServiceView => ({
  namespace: `ns-${i % 7}`,
  name: `svc-${String(i).padStart(6, "0")}`,
  ips: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
  pool: "lan",
  warnings: [],
});

function setup(n: number) {
  const rt = new FakeRuntime();
  rt.serviceList = Array.from({ length: n }, (_, i) => svc(i)).reverse(); // not in key order
  const app = createApp(rt, {
    tokens: TOKENS,
    metricsOpen: false,
    log: createLogger("api", { level: "error", sink: () => {} }),
  });
  const get = async (query: string) => {
    const res = await app.request(`/api/v1/services${query}`, { headers: auth });
    return {
      res,
      body: (await res.json()) as {
        items: ServiceView[];
        metadata?: { continue: string; remainingItemCount: number };
      },
    };
  };
  return { rt, app, get };
}

const key = (s: ServiceView) => `${s.namespace}/${s.name}`;

describe("paged lists", () => {
  test("default page, then every page by its continue token: each item once, in key order", async () => {
    const { get } = setup(2500);
    const first = await get("");
    expect(first.res.status).toBe(200);
    expect(ServiceList.parse(first.body).items).toHaveLength(PAGE_DEFAULT);
    expect(first.body.metadata?.remainingItemCount).toBe(2500 - PAGE_DEFAULT);
    const seen: string[] = first.body.items.map(key);
    let token = first.body.metadata?.continue;
    let pages = 1;
    while (token !== undefined) {
      const next = await get(`?continue=${encodeURIComponent(token)}`);
      expect(next.res.status).toBe(200);
      seen.push(...next.body.items.map(key));
      token = next.body.metadata?.continue;
      pages += 1;
      expect(pages).toBeLessThanOrEqual(3);
    }
    expect(pages).toBe(3);
    expect(seen).toHaveLength(2500);
    expect(new Set(seen).size).toBe(2500);
    expect(seen).toEqual([...seen].sort());
  });

  test("a list that fits in one page comes whole in the runtime's order, without metadata; limit picks the page size", async () => {
    const { get } = setup(3);
    expect((await get("")).body).toEqual({ items: [svc(2), svc(1), svc(0)] });
    const one = await get("?limit=1");
    expect(one.body.items).toEqual([svc(0)]); // paged: in key order (ns-0/svc-000000 first)
    expect(one.body.metadata?.remainingItemCount).toBe(2);
    const rest = await get(`?limit=5&continue=${one.body.metadata!.continue}`);
    expect(rest.body.items).toHaveLength(2);
    expect(rest.body.metadata).toBeUndefined();
  });

  test("100,000 Services are never one body: the default page is 1000 items, the largest 10000", async () => {
    const { rt, get } = setup(100_000);
    const all = rt.serviceList;
    rt.services = () => all; // the fake's deep copy of 100k items would be the slow part

    const def = await get("");
    const defBytes = JSON.stringify(def.body).length;
    expect(def.body.items).toHaveLength(1000);
    expect(defBytes).toBeLessThan(200_000);
    const max = await get(`?limit=${PAGE_MAX}`);
    expect(max.body.items).toHaveLength(PAGE_MAX);
    expect(max.body.metadata?.remainingItemCount).toBe(90_000);
    expect(JSON.stringify(max.body).length).toBeLessThan(2_000_000);
  });

  test("items added or removed between pages: nothing present throughout is lost or repeated", async () => {
    const { rt, get } = setup(30);
    const p1 = await get("?limit=10");
    const sentFirst = p1.body.items.map(key);
    // Remove one already sent and one not yet sent; add one before and one after the cursor.
    const removedLater = key(svc(29));
    rt.serviceList = rt.serviceList.filter((s) => key(s) !== sentFirst[0] && key(s) !== removedLater);
    rt.serviceList.push({ ...svc(1000), namespace: "aa" }, { ...svc(1001), namespace: "zz" });
    const seen = [...sentFirst];
    let token = p1.body.metadata?.continue;
    while (token !== undefined) {
      const p = await get(`?limit=10&continue=${token}`);
      seen.push(...p.body.items.map(key));
      token = p.body.metadata?.continue;
    }
    expect(new Set(seen).size).toBe(seen.length); // nothing repeated
    const throughout = Array.from({ length: 30 }, (_, i) => key(svc(i))).filter(
      (k) => k !== sentFirst[0] && k !== removedLater,
    );
    for (const k of throughout) expect(seen).toContain(k); // nothing lost
    expect(seen).toContain("zz/svc-001001"); // added after the cursor: listed
    expect(seen).not.toContain("aa/svc-001000"); // added before the cursor: not (as Kubernetes)
  });

  test("a bad limit or continue is a 400 JSON error and lists nothing", async () => {
    const { get, app } = setup(5);
    for (const q of [
      "?limit=0",
      "?limit=-1",
      "?limit=abc",
      `?limit=${PAGE_MAX + 1}`,
      "?limit=1.5",
      "?limit=",
    ]) {
      const { res, body } = await get(q);
      expect(res.status, q).toBe(400);
      expect(body as unknown, q).toEqual({ error: "BadRequest", message: expect.stringContaining("?limit") });
    }
    const pools = encodeContinue("pools", "lan");
    for (const t of ["garbage!", "", "eyJ2IjoxfQ", pools, Buffer.from("not json").toString("base64url")]) {
      const { res, body } = await get(`?continue=${encodeURIComponent(t)}`);
      expect(res.status, t).toBe(400);
      expect(body as unknown, t).toEqual({
        error: "BadRequest",
        message: expect.stringContaining("?continue"),
      });
    }
    // The other lists page the same way, each with its own tokens.
    const res = await app.request("/api/v1/pools?limit=0", { headers: auth });
    expect(res.status).toBe(400);
    for (const path of [
      "/api/v1/l2/announcements",
      "/api/v1/bgp/peers",
      "/api/v1/bfd/sessions",
      "/api/v1/l2/elections",
      "/api/v1/cluster/members",
    ]) {
      const r = await app.request(`${path}?limit=${PAGE_MAX + 1}`, { headers: auth });
      expect(r.status, path).toBe(400);
      const ok = await app.request(`${path}?limit=1`, { headers: auth });
      expect(ok.status, path).toBe(200);
    }
  });

  test("the other lists page by their own keys (pools by name, peers by address)", async () => {
    const rt = new FakeRuntime();
    rt.bgpList = ["10.0.0.3", "10.0.0.1", "10.0.0.2"].map((address) => ({
      address,
      asn: 64512,
      state: "Established" as const,
      prefixesSent: 0,
      prefixesReceived: 0,
    }));
    const app = createApp(rt, {
      tokens: TOKENS,
      metricsOpen: false,
      log: createLogger("api", { level: "error", sink: () => {} }),
    });
    const addresses: string[] = [];
    let q = "?limit=2";
    for (let i = 0; i < 3; i++) {
      const body = (await (await app.request(`/api/v1/bgp/peers${q}`, { headers: auth })).json()) as {
        items: { address: string }[];
        metadata?: { continue: string };
      };
      addresses.push(...body.items.map((p) => p.address));
      if (body.metadata === undefined) break;
      q = `?limit=2&continue=${body.metadata.continue}`;
    }
    expect(addresses).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  });

  test("paginate and parsePage as pure functions", () => {
    expect(parsePage("x", undefined, undefined)).toEqual({ limit: PAGE_DEFAULT, after: null });
    expect(parsePage("x", "7", encodeContinue("x", "k"))).toEqual({ limit: 7, after: "k" });
    const p = paginate("x", ["b", "a", "c"], (s) => s, { limit: 2, after: null });
    expect(p.items).toEqual(["a", "b"]);
    expect(parsePage("x", undefined, p.metadata!.continue).after).toBe("b");
    expect(paginate("x", ["b", "a", "c"], (s) => s, { limit: 2, after: "b" })).toEqual({ items: ["c"] });
    expect(paginate("x", ["b", "a", "c"], (s) => s, { limit: 3, after: null })).toEqual({
      items: ["b", "a", "c"],
    });
    expect(paginate("x", [], (s: string) => s, { limit: 2, after: "zzz" })).toEqual({ items: [] });
  });
});
