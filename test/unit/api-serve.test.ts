/**
 * serveApi on real loopback sockets: plain HTTP, TLS, and mutual TLS with client certificates
 * verified against a CA (certificates made by openssl for this run, in a temporary directory).
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { createApp } from "../../src/api/app.ts";
import { hashToken } from "../../src/api/auth.ts";
import { parseListen, serveApi, tlsFromFiles } from "../../src/api/serve.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const TOKEN = "serve-test-token";
let dir = "";
const pem = (name: string) => readFileSync(join(dir, name), "utf8");

function openssl(...args: string[]): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), `vipd-api-tls-${process.pid}-`));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=vipd-test-ca",
  );
  openssl("req", ...ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1");
  writeFileSync(join(dir, "srv.ext"), "subjectAltName=IP:127.0.0.1\n");
  openssl(
    "x509",
    "-req",
    "-in",
    "srv.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "srv.pem",
    "-days",
    "2",
    "-extfile",
    "srv.ext",
  );
  openssl("req", ...ec, "-keyout", "cli.key", "-out", "cli.csr", "-subj", "/CN=fleet-manager");
  openssl(
    "x509",
    "-req",
    "-in",
    "cli.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-out",
    "cli.pem",
    "-days",
    "2",
  );
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "rogue.key",
    "-out",
    "rogue.pem",
    "-days",
    "2",
    "-subj",
    "/CN=rogue",
  );
}, 30_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function app() {
  return createApp(new FakeRuntime(), {
    tokens: [{ role: "admin", hash: hashToken(TOKEN) }],
    metricsOpen: true,
    log: createLogger("api", { sink: () => {} }),
  });
}

async function attempt(url: URL, tls?: Record<string, string>): Promise<number | string> {
  try {
    const res = await fetch(url, { tls, headers: { Authorization: `Bearer ${TOKEN}` } } as RequestInit);
    await res.arrayBuffer();
    return res.status;
  } catch (e) {
    return (e as { code?: string }).code ?? "error";
  }
}

describe("serveApi", () => {
  test("parses listen addresses and refuses bad ones", () => {
    expect(parseListen("127.0.0.1:8080")).toEqual({ hostname: "127.0.0.1", port: 8080 });
    expect(parseListen("[::1]:0")).toEqual({ hostname: "::1", port: 0 });
    expect(parseListen("localhost:9")).toEqual({ hostname: "localhost", port: 9 });
    for (const s of ["127.0.0.1", ":80", "::1:80", "h:70000", "h:-1"])
      expect(() => parseListen(s), s).toThrow(/listen/);
  });

  test("plain HTTP on loopback, with JSON 413 from the app however large the body", async () => {
    const s = serveApi(app(), { listen: "127.0.0.1:0" });
    try {
      expect(s.url.protocol).toBe("http:");
      expect(await attempt(new URL("api/v1/status", s.url))).toBe(200);
      const put = (size: number) =>
        fetch(new URL("api/v1/config", s.url), {
          method: "PUT",
          body: "#".repeat(size),
          headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/yaml", "If-Match": "*" },
        });
      const res = await put(1024 * 1024 + 1);
      expect(res.status).toBe(413);
      expect(((await res.json()) as { error: string }).error).toBe("PayloadTooLarge");
      // Bun's own limit (a bare 413) is set far above the app's, so the app answers this one too.
      const huge = await put(4 * 1024 * 1024).then(
        async (r) => [r.status, ((await r.json()) as { error: string }).error],
        (e: { code?: string }) => e.code ?? "error",
      );
      expect([[413, "PayloadTooLarge"], "ECONNRESET"]).toContainEqual(huge);
    } finally {
      await s.stop();
    }
  });

  test("TLS: clients that trust the CA connect; others fail the handshake", async () => {
    const s = serveApi(app(), { listen: "127.0.0.1:0", tls: { cert: pem("srv.pem"), key: pem("srv.key") } });
    try {
      expect(s.url.protocol).toBe("https:");
      expect(await attempt(new URL("livez", s.url), { ca: pem("ca.pem") })).toBe(200);
      // Not trusted: a certificate verification error, never a response.
      expect(String(await attempt(new URL("livez", s.url)))).toMatch(/CERT|SIGNATURE|VERIFY/);
    } finally {
      await s.stop();
    }
  });

  test("TLS: a method outside Bun's parser table gets 501 JSON, on any request of a connection", async () => {
    const s = serveApi(app(), { listen: "127.0.0.1:0", tls: { cert: pem("srv.pem"), key: pem("srv.key") } });
    try {
      const text = await new Promise<string>((resolve) => {
        let t = "";
        const c = tls.connect({ host: "127.0.0.1", port: s.port, ca: pem("ca.pem") });
        const timer = setTimeout(() => c.destroy(), 10_000);
        c.on("secureConnect", async () => {
          c.write("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
          await Bun.sleep(100);
          c.write("get /livez HTTP/1.1\r\nHost: x\r\n\r\n");
        });
        c.on("data", (d: Buffer) => {
          t += d.toString("latin1");
        });
        c.on("error", () => {});
        c.on("close", () => {
          clearTimeout(timer);
          resolve(t);
        });
      });
      expect(text.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 501"]);
      expect(text).toContain('{"error":"NotImplemented","message":"method \\"get\\" is not implemented');
    } finally {
      await s.stop();
    }
  });

  test("mutual TLS: only a client certificate signed by the configured CA gets in", async () => {
    const s = serveApi(app(), {
      listen: "127.0.0.1:0",
      tls: { cert: pem("srv.pem"), key: pem("srv.key"), ca: pem("ca.pem"), requestClientCert: true },
    });
    try {
      const url = new URL("api/v1/status", s.url);
      expect(await attempt(url, { ca: pem("ca.pem"), cert: pem("cli.pem"), key: pem("cli.key") })).toBe(200);
      expect(await attempt(url, { ca: pem("ca.pem") })).not.toBe(200);
      expect(
        await attempt(url, { ca: pem("ca.pem"), cert: pem("rogue.pem"), key: pem("rogue.key") }),
      ).not.toBe(200);
    } finally {
      await s.stop();
    }
  });

  test("tlsFromFiles reads NodeSettings' PEM files; a client CA turns on mutual TLS", async () => {
    const tls = tlsFromFiles({
      certFile: join(dir, "srv.pem"),
      keyFile: join(dir, "srv.key"),
      clientCAFile: join(dir, "ca.pem"),
    });
    expect(tls.requestClientCert).toBe(true);
    const s = serveApi(app(), { listen: "127.0.0.1:0", tls });
    try {
      const url = new URL("livez", s.url);
      expect(await attempt(url, { ca: pem("ca.pem"), cert: pem("cli.pem"), key: pem("cli.key") })).toBe(200);
      expect(await attempt(url, { ca: pem("ca.pem") })).not.toBe(200);
    } finally {
      await s.stop();
    }
    expect(
      tlsFromFiles({ certFile: join(dir, "srv.pem"), keyFile: join(dir, "srv.key") }).requestClientCert,
    ).toBeUndefined();
    expect(() => tlsFromFiles({ certFile: join(dir, "missing.pem"), keyFile: join(dir, "srv.key") })).toThrow(
      /api\.tls\.certFile: cannot read/,
    );
  });

  test("requestClientCert without a CA is a configuration error", () => {
    expect(() =>
      serveApi(app(), {
        listen: "127.0.0.1:0",
        tls: { cert: pem("srv.pem"), key: pem("srv.key"), requestClientCert: true },
      }),
    ).toThrow(/needs tls.ca/);
  });
});
