/**
 * The status page of a real `vipd run` process, in headless Chromium: vipd loads the appliance
 * example (pools and Services), assigns addresses, and a person who enters a read token sees the
 * Services with their assigned IPs and the pools with their usage.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type BrowserContext, chromium } from "playwright-core";
import { hashToken } from "../../src/api/auth.ts";
import { until } from "../support/until.ts";

const ROOT = join(import.meta.dir, "..", "..");
const TOKEN = "a-read-token-for-the-page";
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

let dir = "";
let proc: Subprocess | undefined;
let ctx: BrowserContext | undefined;
let base = "";

declare const document: { querySelector(selector: string): { textContent: string | null } | null };

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), `vipd-page-${process.pid}-`));
  const cfg = join(dir, "config");
  mkdirSync(cfg);
  for (const f of ["pools.yaml", "services.yaml"])
    cpSync(join(ROOT, "examples", "appliance", f), join(cfg, f));
  writeFileSync(
    join(cfg, "node.yaml"),
    JSON.stringify({
      apiVersion: "vipd.io/v1alpha1",
      kind: "NodeSettings",
      metadata: { name: "page-node" },
      spec: {
        nodeName: "page-node",
        api: { tokens: [{ name: "viewer", role: "read", hash: hashToken(TOKEN) }] },
      },
    }),
  );
  const port = await freePort();
  base = `http://127.0.0.1:${port}/`;
  const p = Bun.spawn(
    [
      "bun",
      join(ROOT, "src", "main.ts"),
      "run",
      "--config",
      cfg,
      "--api-listen",
      `127.0.0.1:${port}`,
      "--state-dir",
      join(dir, "state"),
    ],
    { stdout: "ignore", stderr: "ignore", stdin: "ignore" },
  );
  proc = p;
  const state = await until(
    "vipd ready",
    async () =>
      p.exitCode !== null
        ? "exited"
        : (await fetch(`${base}readyz`).then(
            (r) => r.ok,
            () => false,
          )) && "ready",
    20_000,
  );
  if (state === "exited") throw new Error(`vipd exited (${p.exitCode}) before it was ready`);
  ctx = await chromium.launchPersistentContext(join(dir, "profile"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    timeout: 60_000,
  });
}, 90_000);

afterAll(async () => {
  await ctx?.close().catch(() => {});
  if (proc && proc.exitCode === null) {
    proc.kill("SIGTERM");
    await Promise.race([proc.exited, Bun.sleep(5000)]);
    if (proc.exitCode === null) proc.kill("SIGKILL");
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

test("a person with a read token sees the Services' assigned IPs and the pools of a running vipd", async () => {
  const page = await ctx!.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(e.message));
  try {
    await page.goto(base);
    await page.fill("#token", TOKEN);
    await page.click("#save");
    await page.waitForFunction(
      () => /page-node/.test(document.querySelector("#node")?.textContent ?? ""),
      null,
      {
        timeout: 15_000,
      },
    );
    await page.waitForFunction(
      () => /10\.77\.0\.110/.test(document.querySelector("#services")?.textContent ?? ""),
      null,
      { timeout: 15_000 },
    );
    const rows = await page.$$eval("#services tbody tr", (trs) =>
      trs.map((r) => [...r.children].map((c) => c.textContent ?? "")),
    );
    expect(rows.map((r) => [r[0], r[1], r[2]])).toEqual([
      ["infra/dns", "10.77.0.110", "site"],
      ["infra/dns-tcp", "10.77.0.110", "site"],
      ["shop/web", "10.77.0.100, fd77::100", "site"],
    ]);
    const pools = await page.$$eval("#pools tbody tr", (trs) =>
      trs.map((r) => [...r.children].map((c) => c.textContent ?? "")),
    );
    expect(pools).toEqual([
      ["site", "yes", "IPv4", "2", "18"],
      ["site", "yes", "IPv6", "1", "15"],
    ]);
    expect(problems).toEqual([]);
  } finally {
    await page.close();
  }
}, 60_000);
