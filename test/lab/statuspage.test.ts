/**
 * The status page (`/`) and the API reference (`/docs`) in a real headless Chromium, served by
 * Bun.serve on 127.0.0.1 (port 0) from the API app over the in-memory runtime: the person
 * enters a token, sees VIPs, owners, pools, peers and sessions, and the page follows changes.
 * Every request the browser makes must go to that server; no script or CSP error may occur.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { type ApiServer, serveApi } from "../../src/api/serve.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "../unit/api-runtime-fake.ts";

const TOKEN = "status-page-token";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let profile = "";
let ctx: BrowserContext | undefined;
const servers: ApiServer[] = [];

function runtime(): FakeRuntime {
  const rt = new FakeRuntime();
  rt.drivers = [
    { name: "xdp", healthy: true },
    { name: "bgp", healthy: false, detail: "peer 192.0.2.9 unreachable" },
  ];
  rt.serviceList = [
    { namespace: "web", name: "front", ips: ["192.168.10.5", "fd00:10::5"], pool: "lan", warnings: [] },
    { namespace: "web", name: "<b>pending</b>", ips: [], reason: "no pool has a free address", warnings: [] },
  ];
  rt.l2List = [{ ip: "192.168.10.5", node: "node-a", interface: "eth0", mac: "02:00:00:00:00:0a" }];
  rt.bgpList = [
    {
      address: "192.0.2.1",
      asn: 64512,
      state: "Established",
      uptimeSeconds: 3725,
      prefixesSent: 2,
      prefixesReceived: 0,
    },
    {
      address: "192.0.2.9",
      asn: 64513,
      state: "Active",
      prefixesSent: 0,
      prefixesReceived: 0,
      lastError: "Hold timer expired",
    },
  ];
  rt.bfdList = [{ peer: "192.0.2.1", interface: "eth0", state: "Up", uptimeSeconds: 60 }];
  rt.xdpState = {
    interfaces: [{ name: "eth0", mode: "native", programId: 42, counters: { arp_replied: "7" } }],
  };
  return rt;
}

function serve(rt: FakeRuntime, readOpen = false): ApiServer {
  const app = createApp(rt, {
    tokens: [{ role: "read", hash: hashToken(TOKEN) }],
    metricsOpen: false,
    readOpen,
    log: createLogger("api", { sink: () => {} }),
  });
  const s = serveApi(app, { listen: "127.0.0.1:0" });
  servers.push(s);
  return s;
}

/** A fresh tab that records problems and every URL it requests. */
async function openTab(): Promise<{ page: Page; problems: string[]; urls: string[] }> {
  const page = await ctx!.newPage();
  const problems: string[] = [];
  const urls: string[] = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // A 401 the page expects shows up as a console error of the fetch; anything else is a problem.
    if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("request", (r) => urls.push(r.url()));
  page.on("response", (r) => {
    if (r.status() >= 400 && r.status() !== 401) problems.push(`response ${r.status()} ${r.url()}`);
  });
  return { page, problems, urls };
}

/** The one DOM call the page-side predicate makes (this file is not compiled with the DOM lib). */
declare const document: { querySelector(selector: string): { textContent: string | null } | null };

/**
 * Waits until the text of `selector` matches `pattern`. The predicate is a function, not a
 * string: the page's CSP forbids eval, which is part of what is tested here.
 */
const waitText = (page: Page, selector: string, pattern: RegExp, timeout = 10_000) =>
  page.waitForFunction(
    ([sel, source, flags]) =>
      new RegExp(source!, flags).test(document.querySelector(sel!)?.textContent ?? ""),
    [selector, pattern.source, pattern.flags],
    { timeout },
  );

const cellTexts = (page: Page, id: string) =>
  page.$$eval(`#${id} tbody tr`, (rows) => rows.map((r) => [...r.children].map((c) => c.textContent ?? "")));

beforeAll(async () => {
  profile = mkdtempSync(join(tmpdir(), `vipd-statuspage-${process.pid}-`));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    timeout: 60_000,
  });
}, 90_000);

afterAll(async () => {
  await ctx?.close().catch(() => {});
  for (const s of servers) await s.stop().catch(() => {});
  if (profile) rmSync(profile, { recursive: true, force: true });
}, 30_000);

describe("status page in Chromium", () => {
  test("asks for a token, then shows VIPs, owners, pools, peers and sessions; follows changes", async () => {
    const rt = runtime();
    const s = serve(rt);
    const { page, problems, urls } = await openTab();
    try {
      await page.goto(s.url.href);
      await waitText(page, "#message", /bearer token/);

      await page.fill("#token", TOKEN);
      await page.click("#save");
      await waitText(page, "#node", /^node-a$/);
      expect(await page.evaluate(() => sessionStorage.getItem("vipd.token"))).toBe(TOKEN);
      expect(await page.textContent("#message")).toBe("");

      expect(await cellTexts(page, "l2")).toEqual([["192.168.10.5", "node-a", "eth0", "02:00:00:00:00:0a"]]);
      expect(await cellTexts(page, "services")).toEqual([
        ["web/front", "192.168.10.5, fd00:10::5", "lan", ""],
        ["web/<b>pending</b>", "—", "", "no pool has a free address"],
      ]);
      // Data is text, never markup.
      expect(await page.$$eval("#services b", (b) => b.length)).toBe(0);
      expect(await cellTexts(page, "pools")).toEqual([
        ["lan", "yes", "IPv4", "1", "255"],
        ["lan", "yes", "IPv6", "1", "18446744073709551615"],
      ]);
      expect(await cellTexts(page, "bgp")).toEqual([
        ["192.0.2.1", "64512", "Established", "1h 2m 5s", "2", "0", ""],
        ["192.0.2.9", "64513", "Active", "", "0", "0", "Hold timer expired"],
      ]);
      expect(await cellTexts(page, "bfd")).toEqual([["192.0.2.1", "eth0", "Up", "", "1m 0s"]]);
      expect(await cellTexts(page, "xdp")).toEqual([["eth0", "native", "42", "arp_replied=7"]]);
      expect(await cellTexts(page, "drivers")).toEqual([
        ["xdp", "yes", ""],
        ["bgp", "no", "peer 192.0.2.9 unreachable"],
      ]);
      expect(await page.textContent("#summary")).toContain("configuration generation 1");

      // The owner moves; the page shows it on its next refresh (every 5 s).
      rt.l2List = [{ ip: "192.168.10.5", node: "node-b", interface: "eth1", mac: "02:00:00:00:00:0b" }];
      await waitText(page, "#l2 tbody td:nth-child(2)", /^node-b$/, 15_000);

      // The token survives a reload of the tab.
      await page.reload();
      await waitText(page, "#node", /^node-a$/);

      // A wrong token is refused and said so.
      await page.fill("#token", "wrong-token");
      await page.click("#save");
      await waitText(page, "#message", /refused/);

      expect(problems).toEqual([]);
      expect(urls.filter((u) => !u.startsWith(s.url.href))).toEqual([]);
    } finally {
      await page.close();
    }
  }, 60_000);

  test("works without a token when reads are open", async () => {
    const s = serve(runtime(), true);
    const { page, problems } = await openTab();
    try {
      await page.goto(s.url.href);
      await waitText(page, "#node", /^node-a$/);
      expect((await cellTexts(page, "l2"))[0]?.[1]).toBe("node-a");
      expect(problems).toEqual([]);
    } finally {
      await page.close();
    }
  }, 60_000);

  test("/docs renders every operation of /openapi.json", async () => {
    const s = serve(runtime());
    const { page, problems, urls } = await openTab();
    try {
      await page.goto(new URL("docs", s.url).href);
      await page.fill("#token", TOKEN);
      await page.click("#save");
      await page.waitForSelector('section[data-op="PUT /api/v1/config"]');
      const ops = await page.$$eval("section.op", (els) => els.map((e) => e.getAttribute("data-op")));
      expect(ops).toContain("GET /api/v1/status");
      expect(ops).toContain("POST /api/v1/config/validate");
      expect(ops).toContain("GET /readyz");
      const put = await page.textContent('section[data-op="PUT /api/v1/config"]');
      expect(put).toContain("application/yaml");
      expect(put).toContain("412");
      const pools = await page.textContent('section[data-op="GET /api/v1/pools"]');
      expect(pools).toContain("assigned");
      expect(problems).toEqual([]);
      expect(urls.filter((u) => !u.startsWith(s.url.href))).toEqual([]);
    } finally {
      await page.close();
    }
  }, 60_000);
});
