/**
 * The TLS front of the API when client certificates are required (mutual TLS): vipd terminates
 * TLS itself (Bun.listen) and hands each verified connection to the app's HTTP server
 * (./node-http.ts) over a private Unix socket, byte for byte, with backpressure both ways.
 *
 * Why: Bun.serve verifies client certificates inside its handshake and tells the application
 * nothing of a refused one (oven-sh/bun#14097), so a refusal could be neither logged nor counted.
 * Bun.listen's `handshake` callback does see the verification result. The verification itself is
 * unchanged (requestCert and rejectUnauthorized: OpenSSL refuses the handshake as before); the
 * front also forwards nothing from a socket that is not `authorized`, so no byte of an unverified
 * client reaches any route.
 *
 * Since the front sees the plaintext, it also answers the first request of a connection whose
 * method Bun's HTTP parser does not know (`FOO`, lower-case `get`) with 501 JSON itself, so the
 * log line names the client's address. Later requests on a kept-alive connection are not parsed
 * here (no second HTTP parser with its own framing): the HTTP server behind answers those.
 *
 * @example
 * const f = startTlsFront({ hostname: "127.0.0.1", port: 0, tls, upstream: "/run/x/http.sock",
 *   onEvent: (e) => console.log(e) });
 */

import type { Socket, TCPSocketListener } from "bun";

/** The methods Bun 1.4.5's HTTP parser accepts (probed; anything else closes the connection). */
export const BUN_METHODS: ReadonlySet<string> = new Set(
  (
    "GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE LOCK " +
    "UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE " +
    "UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK SOURCE QUERY SEARCH"
  ).split(" "),
);

/** The `reason` label of vipd_api_tls_rejected_total: a short, bounded set. */
export type TlsRejectReason =
  | "no_certificate"
  | "untrusted"
  | "expired"
  | "not_yet_valid"
  | "revoked"
  | "bad_certificate"
  | "handshake_timeout"
  | "plain_http"
  | "other";

export type FrontEvent =
  | { kind: "tlsRejected"; peer: string; reason: TlsRejectReason; detail: string }
  | { kind: "unknownMethod"; peer: string; method: string }
  /** A request the HTTP parser refused otherwise (400 not HTTP, 431 headers too large). */
  | { kind: "badRequest"; peer: string; status: 400 | 431; detail: string }
  /** A verified client whose connection could not be passed to the app (closed at once). */
  | { kind: "upstreamError"; peer: string; detail: string };

/** Maps OpenSSL's verification error (code or message) to a label. */
export function rejectReason(err: { code?: string; message?: string } | null): TlsRejectReason {
  const code = err?.code ?? "";
  const msg = err?.message ?? "";
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/.test(msg)) return "no_certificate";
  if (/:HTTP_REQUEST$/.test(msg)) return "plain_http";
  switch (code) {
    case "CERT_HAS_EXPIRED":
      return "expired";
    case "CERT_NOT_YET_VALID":
      return "not_yet_valid";
    case "CERT_REVOKED":
      return "revoked";
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "CERT_SIGNATURE_FAILURE":
    case "CERT_UNTRUSTED":
    case "CERT_REJECTED":
      return "untrusted";
    case "INVALID_PURPOSE":
    case "INVALID_CA":
    case "PATH_LENGTH_EXCEEDED":
    case "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY":
    case "CERT_CHAIN_TOO_LONG":
      return "bad_certificate";
    default:
      return "other";
  }
}

export interface TlsFrontOptions {
  hostname: string;
  port: number;
  /** Without it, plain TCP (the connection is forwarded at once; used to measure the front's cost). */
  tls?: { cert: string; key: string; ca: string } | undefined;
  /** Path of the Unix socket the app's HTTP server listens on. */
  upstream: string;
  /** A refused client certificate, or a first request with a method Bun does not know. */
  onEvent(e: FrontEvent): void;
  /** Seconds a client has to complete its handshake (default 10). */
  handshakeTimeout?: number;
}

export interface TlsFront {
  port: number;
  /** Closes the listener and every connection. */
  stop(): void;
}

/** Per-connection state. */
interface Conn {
  peer: string;
  /** Set once the handshake verified the client's certificate. */
  verified: boolean;
  /** Set once refused (nothing of it is forwarded, no event twice). */
  refused: boolean;
  up: Socket<Conn> | null;
  /** Bytes for the upstream while it connects or is full. */
  toUp: Uint8Array[];
  toUpBytes: number;
  /** Bytes for the client while its socket is full. */
  toClient: Uint8Array[];
  /** The first request line is not yet checked: the head so far. */
  head: Uint8Array | null;
  clientGone: boolean;
  upGone: boolean;
  client: Socket<Conn>;
}

const PAUSE_AT = 256 * 1024;
const METHOD_PEEK = 32;
const TCHAR = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Writes what fits; the rest is queued (copied: Bun may reuse a data buffer). True: all written. */
function send(to: Socket<Conn>, queue: Uint8Array[], d: Uint8Array): boolean {
  if (queue.length === 0) {
    const n = to.write(d);
    if (n >= d.length) return true;
    queue.push(d.slice(Math.max(n, 0)));
    return false;
  }
  queue.push(d.slice());
  return false;
}

/** Writes queued chunks until the socket is full; true when the queue is empty. */
function flush(to: Socket<Conn>, queue: Uint8Array[]): boolean {
  while (queue.length > 0) {
    const d = queue[0]!;
    const n = to.write(d);
    if (n >= d.length) queue.shift();
    else {
      if (n > 0) queue[0] = d.subarray(n);
      return false;
    }
  }
  return true;
}

function notImplemented(method: string): string {
  const body = JSON.stringify({
    error: "NotImplemented",
    message: `method ${JSON.stringify(method)} is not implemented (methods are case-sensitive: GET, HEAD, POST, PUT...)`,
  });
  return (
    "HTTP/1.1 501 Not Implemented\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n" +
    `Connection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

export function startTlsFront(opts: TlsFrontOptions): TlsFront {
  const handshakeTimeout = opts.handshakeTimeout ?? 10;

  const refuse = (c: Conn, reason: TlsRejectReason, detail: string): void => {
    if (c.refused) return;
    c.refused = true;
    opts.onEvent({ kind: "tlsRejected", peer: c.peer, reason, detail });
  };

  const toUpstream = (c: Conn, d: Uint8Array): void => {
    if (c.up === null) {
      c.toUp.push(d.slice());
      c.toUpBytes += d.length;
      if (c.toUpBytes > PAUSE_AT) c.client.pause();
      return;
    }
    if (!send(c.up, c.toUp, d)) c.client.pause();
  };

  /** Checks the first request's method: the bytes to forward, or null (waiting for more, or answered 501 here). */
  const firstLine = (c: Conn, d: Uint8Array): Uint8Array | null => {
    const prev = c.head;
    const buf = prev === null ? d : Buffer.concat([prev, d]);
    const sp = buf.subarray(0, METHOD_PEEK).indexOf(0x20);
    if (sp < 0 && buf.length < METHOD_PEEK) {
      c.head = buf.slice();
      return null; // wait for more
    }
    c.head = null;
    if (sp > 0) {
      const method = Buffer.from(buf.subarray(0, sp)).toString("latin1");
      if (TCHAR.test(method) && !BUN_METHODS.has(method)) {
        opts.onEvent({ kind: "unknownMethod", peer: c.peer, method });
        c.refused = true;
        c.client.end(notImplemented(method));
        c.up?.end();
        return null;
      }
    }
    return buf;
  };

  const connectUp = (c: Conn): void => {
    Bun.connect<Conn>({
      unix: opts.upstream,
      data: c,
      socket: {
        open(u) {
          if (c.clientGone) {
            u.end();
            return;
          }
          c.up = u;
          const empty = flush(u, c.toUp);
          c.toUpBytes = 0;
          if (empty) c.client.resume();
        },
        data(_u, d) {
          if (c.clientGone) return;
          if (!send(c.client, c.toClient, d)) c.up?.pause();
        },
        drain(u) {
          if (flush(u, c.toUp)) {
            if (c.clientGone) u.end();
            else c.client.resume();
          }
        },
        close() {
          c.upGone = true;
          if (c.toClient.length === 0) c.client.end();
        },
        error() {},
      },
    }).catch((e: Error) => {
      c.upGone = true;
      opts.onEvent({ kind: "upstreamError", peer: c.peer, detail: e.message });
      c.client.end();
    });
  };

  const listener: TCPSocketListener<Conn> = Bun.listen<Conn>({
    hostname: opts.hostname,
    port: opts.port,
    ...(opts.tls
      ? {
          tls: {
            cert: opts.tls.cert,
            key: opts.tls.key,
            ca: opts.tls.ca,
            requestCert: true,
            rejectUnauthorized: true,
          },
        }
      : {}),
    socket: {
      open(s) {
        s.data = {
          peer: s.remoteAddress.includes(":")
            ? `[${s.remoteAddress}]:${s.remotePort}`
            : `${s.remoteAddress}:${s.remotePort}`,
          verified: false,
          refused: false,
          up: null,
          toUp: [],
          toUpBytes: 0,
          toClient: [],
          head: new Uint8Array(0),
          clientGone: false,
          upGone: false,
          client: s,
        };
        if (opts.tls) s.timeout(handshakeTimeout);
        else {
          s.data.verified = true;
          connectUp(s.data);
        }
      },
      handshake(s, _ok, e) {
        const c = s.data;
        const err = e as (Error & { code?: string }) | null;
        if (!s.authorized) {
          refuse(c, rejectReason(err), err ? `${err.code ?? ""} ${err.message}`.trim() : "not authorized");
          s.end();
          return;
        }
        c.verified = true;
        s.timeout(0);
        connectUp(c);
      },
      data(s, d) {
        const c = s.data;
        if (!c.verified || c.refused || c.upGone) return;
        let bytes: Uint8Array | null = d;
        if (c.head !== null) bytes = firstLine(c, d);
        if (bytes !== null) toUpstream(c, bytes);
      },
      drain(s) {
        const c = s.data;
        if (flush(s, c.toClient)) {
          if (c.upGone) s.end();
          else c.up?.resume();
        }
      },
      timeout(s) {
        const c = s.data;
        if (!c.verified) refuse(c, "handshake_timeout", `no TLS handshake within ${handshakeTimeout} s`);
        s.end();
      },
      close(s) {
        const c = s.data;
        if (c === undefined) return;
        c.clientGone = true;
        if (c.up !== null && c.toUp.length === 0) c.up.end();
      },
      error() {},
    },
  });

  return {
    port: listener.port,
    stop: () => listener.stop(true),
  };
}
