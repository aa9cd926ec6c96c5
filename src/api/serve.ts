/**
 * Serves the API app on a socket: plain HTTP, TLS, or TLS with client certificates required and
 * verified against a CA (mutual TLS). The HTTP/1.1 server is Bun's node:http (./node-http.ts),
 * not Bun.serve: both parse with Bun's native parser, but only node:http lets vipd answer what
 * that parser refuses.
 *
 * What reaches the app is made whole first, so every answer is the app's JSON:
 * - a request without a Host header (HTTP/1.0 health checks, HAProxy's default) is routed by its
 *   path: every request's URL is this listener's origin plus the path and query it asked for;
 * - a method outside Bun's parser table (`FOO`, lower-case `get`; oven-sh/bun#6556), on any
 *   request of a connection, gets 501 JSON; headers over the limit 431 JSON; bytes that are not
 *   HTTP 400 JSON; each logged and counted (vipd_api_requests_total{route="unmatched"});
 * - there is no body limit of the server's own: the app refuses an oversized body itself, with
 *   JSON, and counts it;
 * - an exception that escapes the app becomes a JSON 500.
 * - HTTP/1.1 without Host gets 400 JSON (RFC 9112 §3.2 requires the 400; Bun's own is bare).
 * With mutual TLS, vipd terminates TLS itself (./tls-front.ts) and passes verified connections to
 * the HTTP server over a private Unix socket: Bun tells the application nothing of a client
 * certificate it refused (oven-sh/bun#14097), the front logs each refusal and the app counts it
 * (vipd_api_tls_rejected_total{reason}).
 *
 * @example
 * const s = serveApi(app, { listen: "127.0.0.1:0" });
 * await fetch(`${s.url}livez`);
 * await s.stop();
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../util/log.ts";
import {
  answerClientError,
  applyTimeouts,
  IDLE_MS,
  idleWhileOwed,
  JSON_HEADERS,
  type ParseRefusal,
  peerOf,
  sendResponse,
  toRequest,
} from "./node-http.ts";
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
  /**
   * Idle timeout, ms (default 10,000, as Bun.serve's): a connection with nothing read for this
   * long, headers not complete, or a stream whose client has not drained a write, is closed.
   */
  idleMs?: number;
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
  else if (e.kind === "badRequest")
    log.warn("request refused", { peer: e.peer, status: e.status, detail: e.detail });
  else log.error("cannot pass a verified connection to the API", { peer: e.peer, error: e.detail });
}

/** The front event of a request the HTTP parser refused. */
function refusalEvent(r: ParseRefusal): FrontEvent {
  if (r.status === 501) return { kind: "unknownMethod", peer: r.peer, method: r.method ?? "(pipelined)" };
  return { kind: "badRequest", peer: r.peer, status: r.status, detail: r.detail };
}

/**
 * Listens synchronously (Bun's node:http binds inside listen()); a failure shows as no address,
 * the error event that follows is swallowed here and the caller gets an Error naming the address.
 */
function listenNow(server: Server, listen: () => void, where: string): void {
  // The bind failure's error event arrives after listen() returns; the address already told.
  server.on("error", () => {});
  listen();
  if (server.address() === null) {
    server.close();
    throw Object.assign(new Error(`cannot listen on ${where}: the address is in use or not on this host`), {
      code: "EADDRINUSE",
    });
  }
}

export function serveApi(app: FetchApp, opts: ServeOptions): ApiServer {
  const { hostname, port } = typeof opts.listen === "string" ? parseListen(opts.listen) : opts.listen;
  const t = opts.tls;
  if (t?.requestClientCert && !t.ca)
    throw new Error("tls.requestClientCert needs tls.ca to verify clients against");
  let origin = "";
  const idleMs = opts.idleMs ?? IDLE_MS;
  const onEvent = (e: FrontEvent) => (app.frontEvent ? app.frontEvent(e) : logFrontEvent(e));
  const internalError = (e: unknown): Response =>
    new Response(
      JSON.stringify({
        error: "InternalError",
        message: `internal error: ${(e as Error)?.message ?? String(e)}`,
      }),
      { status: 500, headers: { "Content-Type": "application/json", "Cache-Control": "no-store" } },
    );
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let response: Response;
    let request: Request | undefined;
    if (req.httpVersion === "1.1" && req.headers.host === undefined) {
      // RFC 9112 §3.2: 400 for HTTP/1.1 without Host (HTTP/1.0 is routed by its path).
      const peer = peerOf(req.socket);
      onEvent({ kind: "badRequest", peer, status: 400, detail: "HTTP/1.1 request without a Host header" });
      const body = JSON.stringify({
        error: "BadRequest",
        message: "an HTTP/1.1 request needs a Host header",
      });
      res.writeHead(400, {
        ...JSON_HEADERS,
        connection: "close",
        "content-length": String(Buffer.byteLength(body)),
      });
      res.end(body);
      return;
    }
    idleWhileOwed(req, res, idleMs);
    try {
      request = toRequest(req, origin);
      response = await app.fetch(request);
    } catch (e) {
      response = internalError(e);
    }
    try {
      await sendResponse(res, response, req.method === "HEAD", idleMs);
    } catch {
      res.destroy();
    }
    // A body the app did not read is discarded as it arrives (not buffered), so the connection
    // can carry the next request.
    if (!req.complete && request?.body && !request.body.locked) void request.body.cancel().catch(() => {});
  };
  // Mutual TLS: vipd terminates TLS itself (./tls-front.ts) to see, log and count refused client
  // certificates, and hands verified connections to the HTTP server on a Unix socket in a
  // directory only this user can enter.
  const mtls = t?.requestClientCert === true && t.ca !== undefined;
  // requireHostHeader off: HTTP/1.1 without Host reaches `handle`, which answers the 400 with JSON
  // (Bun's own is a bare 400).
  const serverOptions = { requireHostHeader: false };
  const server: Server =
    t && !mtls
      ? createHttpsServer(
          { ...serverOptions, cert: t.cert, key: t.key, ...(t.ca ? { ca: t.ca } : {}) },
          handle,
        )
      : createHttpServer(serverOptions, handle);
  applyTimeouts(server, idleMs);
  server.on("clientError", (err: Error, socket) =>
    answerClientError(err, socket as Parameters<typeof answerClientError>[1], (r) =>
      onEvent(refusalEvent(r)),
    ),
  );
  let front: TlsFront | undefined;
  const sockDir = mtls ? mkdtempSync(join(tmpdir(), "vipd-api-")) : "";
  try {
    if (mtls && t?.ca !== undefined) {
      const unix = join(sockDir, "http.sock");
      listenNow(server, () => server.listen(unix), unix);
      front = startTlsFront({
        hostname,
        port,
        tls: { cert: t.cert, key: t.key, ca: t.ca },
        upstream: unix,
        onEvent,
      });
    } else {
      listenNow(server, () => server.listen(port, hostname), `${hostname}:${port}`);
    }
  } catch (e) {
    server.close();
    if (sockDir) rmSync(sockDir, { recursive: true, force: true });
    const err = e as Error & { code?: string };
    if (err.message.startsWith("cannot listen on ")) throw err;
    // Bun.listen's message names the host only ("Failed to listen at 127.0.0.1").
    throw Object.assign(new Error(`cannot listen on ${hostname}:${port}: ${err.message}`), {
      code: err.code,
    });
  }
  const address = server.address();
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const boundPort = front ? front.port : typeof address === "object" && address ? address.port : port;
  origin = `${t ? "https" : "http"}://${host}:${boundPort}`;
  return {
    url: new URL(`${origin}/`),
    port: boundPort,
    stop: async () => {
      front?.stop();
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeAllConnections();
      await closed;
      if (sockDir) rmSync(sockDir, { recursive: true, force: true });
    },
  };
}
