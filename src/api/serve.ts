/**
 * Serves the API app on a socket with Bun.serve: plain HTTP, TLS, or TLS with client
 * certificates required and verified against a CA (mutual TLS).
 *
 * What reaches the app is made whole first, so every answer is the app's JSON:
 * - a request without a Host header (HTTP/1.0 health checks, HAProxy's default) arrives with a
 *   bare path as its URL; it is given this listener's origin, so it is routed by its path;
 * - Bun's own body limit (a bare 413 without a body) is set far above the app's, which refuses
 *   an oversized body itself, with JSON, and counts it;
 * - an exception that escapes the app becomes a JSON 500.
 * With mutual TLS, vipd terminates TLS itself (./tls-front.ts) and passes verified connections to
 * Bun.serve over a private Unix socket: Bun.serve tells the application nothing of a client
 * certificate it refused (oven-sh/bun#14097), the front logs each refusal and the app counts it
 * (vipd_api_tls_rejected_total{reason}); the front also answers the first request of a
 * connection with a method outside Bun's table with 501 JSON. Plain HTTP and TLS without client
 * certificates are served by Bun.serve directly (the front costs each request CPU; docs/api.md),
 * where Bun 1.4.5 still closes the connection, without an answer, for a method name outside its
 * method table (`FOO`, lower-case `get`; oven-sh/bun#6556). Bun answers a bare 400 to HTTP/1.1
 * without Host (RFC 9112 §3.2 requires the 400); every method in its table reaches the app
 * (405 JSON with Allow on a known path).
 *
 * @example
 * const s = serveApi(app, { listen: "127.0.0.1:0" });
 * await fetch(`${s.url}livez`);
 * await s.stop();
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../util/log.ts";
import { type FrontEvent, startTlsFront, type TlsFront } from "./tls-front.ts";

export type { FrontEvent } from "./tls-front.ts";

export interface ServeTls {
  /** PEM certificate chain of the server. */
  cert: string;
  /** PEM private key of the server. */
  key: string;
  /** PEM CA bundle that client certificates must chain to (needed for requestClientCert). */
  ca?: string;
  /** Require a client certificate signed by `ca`; the handshake fails without one. */
  requestClientCert?: boolean;
}

export interface ServeOptions {
  /** `host:port`, `[v6]:port`, or an object; port 0 picks a free one. */
  listen: string | { hostname: string; port: number };
  tls?: ServeTls;
  /** Not used by Bun any more (the app enforces its limit); kept for callers that pass it. */
  bodyLimit?: number;
}

export interface ApiServer {
  /** e.g. `https://127.0.0.1:41234/` */
  url: URL;
  port: number;
  stop(): Promise<void>;
}

/**
 * Reads the PEM files named by NodeSettings' `spec.api.tls` ({certFile, keyFile, clientCAFile?}).
 * A client CA turns on mutual TLS. Throws an Error naming the file that cannot be read.
 */
export function tlsFromFiles(files: {
  certFile: string;
  keyFile: string;
  clientCAFile?: string | undefined;
}): ServeTls {
  const read = (field: string, path: string): string => {
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new Error(`api.tls.${field}: cannot read ${path}: ${(e as Error).message}`);
    }
  };
  const tls: ServeTls = { cert: read("certFile", files.certFile), key: read("keyFile", files.keyFile) };
  if (files.clientCAFile !== undefined) {
    tls.ca = read("clientCAFile", files.clientCAFile);
    tls.requestClientCert = true;
  }
  return tls;
}

/** Parses `host:port` / `[v6]:port`; throws a clear Error on anything else. */
export function parseListen(s: string): { hostname: string; port: number } {
  const m = /^\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})$/.exec(s) ?? /^([^:[\]]+):([0-9]{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new Error(`listen: ${JSON.stringify(s)} is not host:port or [ipv6]:port`);
  }
  return { hostname: m[1]!, port };
}

/** Anything with a fetch handler: the app from createApp, or any Hono app. */
export interface FetchApp {
  fetch(req: Request): Response | Promise<Response>;
  /**
   * What the TLS front refused before any request reached the app (a client certificate, a first
   * request with a method Bun does not know): the app from createApp logs and counts it. Without
   * it, serveApi logs it.
   */
  frontEvent?(e: FrontEvent): void;
}

/** The log line of a front event, for apps without their own frontEvent. */
function logFrontEvent(e: FrontEvent): void {
  const log = createLogger("api");
  if (e.kind === "tlsRejected")
    log.warn("client certificate refused", { peer: e.peer, reason: e.reason, detail: e.detail });
  else if (e.kind === "unknownMethod")
    log.warn("request refused", { peer: e.peer, method: e.method, status: 501, error: "NotImplemented" });
  else log.error("cannot pass a verified connection to the API", { peer: e.peer, error: e.detail });
}

export function serveApi(app: FetchApp, opts: ServeOptions): ApiServer {
  const { hostname, port } = typeof opts.listen === "string" ? parseListen(opts.listen) : opts.listen;
  const t = opts.tls;
  if (t?.requestClientCert && !t.ca)
    throw new Error("tls.requestClientCert needs tls.ca to verify clients against");
  let origin = "";
  // Mutual TLS: vipd terminates TLS itself (./tls-front.ts) to see, log and count refused client
  // certificates, and hands verified connections to Bun.serve on a Unix socket in a directory only
  // this user can enter.
  const mtls = t?.requestClientCert === true && t.ca !== undefined;
  const sockDir = mtls ? mkdtempSync(join(tmpdir(), "vipd-api-")) : "";
  const fetch = (req: Request): Response | Promise<Response> => {
    // Without Host, Bun's URL is the bare request target ("/readyz").
    if (req.url.startsWith("/")) return app.fetch(new Request(`${origin}${req.url}`, req));
    return app.fetch(req);
  };
  const error = (e: Error): Response =>
    new Response(JSON.stringify({ error: "InternalError", message: `internal error: ${e.message}` }), {
      status: 500,
      headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
    });
  // No limit of Bun's own (it would answer a bare 413): the app answers 413 itself (JSON, logged,
  // counted, Connection: close) as soon as the declared or streamed size passes its limit, and a
  // body the app does not read is discarded by Bun as it arrives, not buffered (measured: 200 MiB
  // streamed to /livez grew RSS by 7 MB).
  const maxRequestBodySize = Number.MAX_SAFE_INTEGER;
  let server: ReturnType<typeof Bun.serve>;
  let front: TlsFront | undefined;
  if (mtls && t?.ca !== undefined) {
    const unix = join(sockDir, "http.sock");
    let inner: ReturnType<typeof Bun.serve> | undefined;
    try {
      inner = Bun.serve({ unix, fetch, error, maxRequestBodySize });
      front = startTlsFront({
        hostname,
        port,
        tls: { cert: t.cert, key: t.key, ca: t.ca },
        upstream: unix,
        onEvent: (e) => (app.frontEvent ? app.frontEvent(e) : logFrontEvent(e)),
      });
    } catch (e) {
      void inner?.stop(true);
      rmSync(sockDir, { recursive: true, force: true });
      // Bun.listen's message names the host only ("Failed to listen at 127.0.0.1").
      const err = e as Error & { code?: string };
      throw Object.assign(new Error(`cannot listen on ${hostname}:${port}: ${err.message}`), {
        code: err.code,
      });
    }
    server = inner;
  } else {
    server = Bun.serve({
      hostname,
      port,
      fetch,
      error,
      maxRequestBodySize,
      ...(t ? { tls: { cert: t.cert, key: t.key, ...(t.ca ? { ca: t.ca } : {}) } } : {}),
    });
  }
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const boundPort = front ? front.port : (server.port ?? port);
  origin = `${t ? "https" : "http"}://${host}:${boundPort}`;
  return {
    url: new URL(`${t ? "https" : "http"}://${host}:${boundPort}/`),
    port: boundPort,
    stop: async () => {
      front?.stop();
      await server.stop(true);
      if (sockDir) rmSync(sockDir, { recursive: true, force: true });
    },
  };
}
