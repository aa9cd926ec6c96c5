/**
 * The API's HTTP/1.1 server: Bun's node:http server (`http.createServer`), which parses with the
 * same native parser as Bun.serve, with a thin adapter that hands the app a fetch `Request` and
 * writes its `Response` back.
 *
 * Why not Bun.serve: a request Bun's parser refuses (a method outside its table such as `FOO` or
 * lower-case `get`, a malformed request line, headers over the size limit) never reaches a
 * Bun.serve application; the connection is closed without an answer (oven-sh/bun#6556). Bun's
 * node:http server reports the same refusal as a `clientError` with the socket still writable, on
 * every request of a connection (a kept-alive one too), so vipd answers it with JSON:
 * - a method that is a valid token but unknown: `501 NotImplemented`;
 * - headers over the limit: `431 HeadersTooLarge`;
 * - anything else the parser refuses (not HTTP at all, a bad request line): `400 BadRequest`;
 * each with `Connection: close`, after any response still being written on that connection. One
 * parser only: nothing in front of it re-frames requests, so there is no second opinion on where
 * a request ends (the request-smuggling risk of a front).
 *
 * What it costs (docs/api.md): +12 µs of CPU on a `/livez` request (35 against 23 µs with
 * Bun.serve), +70 µs on a `/metrics` scrape; a bare node:http server costs ~4 µs over Bun.serve,
 * the rest is node:http's objects and the fetch Request and Response the app needs.
 *
 * Response bodies are read whole and sent with a Content-Length, except `text/event-stream`
 * (the watch stream), which is streamed with backpressure and cancelled when the client goes.
 * A request body is handed to the app as a stream; what the app does not read is discarded after
 * the response, as it arrives.
 */

import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** What the server refused before the app saw a request. */
export interface ParseRefusal {
  status: 400 | 431 | 501;
  /** The method, when the refusal is an unknown method and it can be read. */
  method?: string;
  peer: string;
  detail: string;
}

/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" } as const;

const JSON_HEAD = "Content-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\n";

export function peerOf(s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  const a = s.remoteAddress ?? "";
  if (a === "") return "unix";
  return a.includes(":") ? `[${a}]:${s.remotePort}` : `${a}:${s.remotePort}`;
}

/**
 * What a parse error means, from the error node:http reports and the bytes it failed on.
 * `pipelined`: a response on the connection was still pending, so the bytes may start with
 * earlier requests and the method cannot be read from them.
 */
export function classifyParseError(
  code: string | undefined,
  raw: string,
  pipelined: boolean,
): { status: 400 | 431 | 501; error: string; message: string; method?: string } {
  if (code === "HPE_HEADER_OVERFLOW")
    return { status: 431, error: "HeadersTooLarge", message: "the request's headers exceed the size limit" };
  if (code === "HPE_INVALID_METHOD") {
    const sp = raw.indexOf(" ");
    const first = sp > 0 && sp <= 64 ? raw.slice(0, sp) : "";
    if (pipelined)
      return {
        status: 501,
        error: "NotImplemented",
        message:
          "a request's method is not implemented (methods are case-sensitive: GET, HEAD, POST, PUT...)",
      };
    if (first.length > 0 && TOKEN.test(first))
      return {
        status: 501,
        error: "NotImplemented",
        message: `method ${JSON.stringify(first)} is not implemented (methods are case-sensitive: GET, HEAD, POST, PUT...)`,
        method: first,
      };
  }
  return { status: 400, error: "BadRequest", message: "not an HTTP/1.1 request this server can parse" };
}

const REASON: Record<number, string> = {
  400: "Bad Request",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
};

/**
 * Answers what the parser refused with JSON and closes the connection; `onRefusal` is told (to
 * log and count it). Waits for a response still being written on the connection, so answers stay
 * in order.
 */
export function answerClientError(
  err: Error & { code?: string; rawPacket?: Uint8Array },
  socket: Socket & { _httpMessage?: ServerResponse | null },
  onRefusal: (r: ParseRefusal) => void,
): void {
  const pending = socket._httpMessage;
  const pipelined = pending != null && !pending.writableFinished;
  const raw = err.rawPacket ? Buffer.from(err.rawPacket.subarray(0, 128)).toString("latin1") : "";
  const c = classifyParseError(err.code, raw, pipelined);
  onRefusal({
    status: c.status,
    ...(c.method !== undefined ? { method: c.method } : {}),
    peer: peerOf(socket),
    detail: `${err.code ?? "parse error"}: ${err.message}`,
  });
  const body = JSON.stringify({ error: c.error, message: c.message });
  const answer = () => {
    if (!socket.writable) return void socket.destroy();
    socket.end(
      `HTTP/1.1 ${c.status} ${REASON[c.status]}\r\n${JSON_HEAD}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  };
  if (pipelined) pending.once("finish", () => setImmediate(answer));
  else answer();
}

/**
 * The fetch Request for a node:http request. Routing is by path only: the URL is this listener's
 * `origin` plus the request target's path and query (origin-form as sent; absolute-form reduced
 * to its path), whatever the Host header says or whether there is one.
 */
export function toRequest(req: IncomingMessage, origin: string): Request {
  let target = req.url ?? "/";
  if (!target.startsWith("/")) {
    const u = URL.parse(target);
    target = u ? `${u.pathname}${u.search}` : `/${target}`;
  }
  const headers = new Headers();
  const rh = req.rawHeaders;
  for (let i = 0; i + 1 < rh.length; i += 2) headers.append(rh[i]!, rh[i + 1]!);
  const method = req.method ?? "GET";
  if (method === "GET" || method === "HEAD") return new Request(`${origin}${target}`, { method, headers });
  return new Request(`${origin}${target}`, {
    method,
    headers,
    body: bodyOf(req),
    // A stream body needs `duplex: "half"` (fetch standard).
    duplex: "half",
  });
}

/**
 * The request body as a stream that reads from the socket only when the app pulls (one chunk per
 * pull, nothing queued ahead). Cancelled unread (the route did not want it), the rest is
 * discarded as it arrives.
 */
function bodyOf(req: IncomingMessage): ReadableStream<Uint8Array> {
  let it: AsyncIterator<Buffer> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        it ??= req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        const r = await it.next();
        if (r.done) c.close();
        else c.enqueue(new Uint8Array(r.value.buffer, r.value.byteOffset, r.value.byteLength));
      },
      cancel() {
        if (it) void it.return?.()?.catch(() => {});
        else req.resume();
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Writes a fetch Response to a node:http response (see the module note for streaming). A stream
 * is exempt from the socket's idle timeout (Bun's node:http does not count writes as activity,
 * measured: a stream with a heartbeat every 5 s was closed at 10 s); instead it is closed when a
 * write has waited `idleMs` for the client to drain (a client gone without a FIN, or one that
 * stopped reading), as Bun.serve's idle timeout did.
 */
export async function sendResponse(
  res: ServerResponse,
  r: Response,
  isHead = false,
  idleMs = IDLE_MS,
): Promise<void> {
  const head: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    head[k] = v;
  });
  if (r.body === null || !(head["content-type"] ?? "").startsWith("text/event-stream")) {
    const bytes = Buffer.from(await r.arrayBuffer());
    // HEAD: the length of the GET answer is not known here, so none is claimed; 1xx, 204 and 304
    // carry no content, and a Content-Length there would claim one (RFC 9110 §8.6).
    const noContent = r.status < 200 || r.status === 204 || r.status === 304;
    if (!isHead && !noContent) head["content-length"] = String(bytes.byteLength);
    res.writeHead(r.status, head);
    res.end(bytes);
    return;
  }
  res.socket?.setTimeout(0);
  res.writeHead(r.status, head);
  res.flushHeaders();
  const reader = r.body.getReader();
  let gone = false;
  res.once("close", () => {
    gone = true;
    void reader.cancel().catch(() => {});
  });
  try {
    for (;;) {
      const c = await reader.read();
      if (c.done || gone) break;
      if (!res.write(c.value) && !(await drained(res, idleMs))) {
        res.destroy();
        return;
      }
    }
  } catch {
    // The stream errored (e.g. a watcher cut off for falling behind): close the connection.
    res.destroy();
    return;
  }
  res.end();
}

/** Waits for `res` to drain: true when it did, false after `ms` or when it closed first. */
function drained(res: ServerResponse, ms: number): Promise<boolean> {
  return new Promise<boolean>((ok) => {
    const done = (v: boolean) => () => {
      clearTimeout(timer);
      res.off("drain", onDrain);
      res.off("close", onClose);
      ok(v);
    };
    const onDrain = done(true);
    const onClose = done(false);
    const timer = setTimeout(done(false), ms);
    res.once("drain", onDrain);
    res.once("close", onClose);
  });
}

/**
 * The idle timer counts only while the client owes bytes: it is stopped once the request is
 * read whole (at once for a request without a body), so an answer that takes long (a system
 * update installing for a minute) is not cut, and restarted when the answer is written, for the
 * next request on the connection. Bun.serve's idle timeout behaved that way; Bun's node:http
 * server's `timeout` runs on regardless (measured: an install of more than 10 s lost its
 * connection with ECONNRESET).
 */
export function idleWhileOwed(req: IncomingMessage, res: ServerResponse, idleMs: number): void {
  const socket = req.socket;
  const stop = () => socket.setTimeout(0);
  const te = req.headers["transfer-encoding"];
  const cl = req.headers["content-length"];
  if (te === undefined && (cl === undefined || cl === "0")) stop();
  else req.once("end", stop);
  res.once("finish", () => {
    req.off("end", stop);
    if (!socket.destroyed) socket.setTimeout(idleMs);
  });
}

/**
 * Bun.serve's idle timeout was 10 s; the watch stream's heartbeat (5 s) stays under it. Reads
 * count as activity (a slow upload is not cut), writes do not (see sendResponse).
 */
export const IDLE_MS = 10_000;

/** Applies vipd's timeouts to a node:http server: idle connections and slow headers. */
export function applyTimeouts(server: Server, idleMs = IDLE_MS): void {
  server.timeout = idleMs;
  server.keepAliveTimeout = idleMs;
  server.headersTimeout = idleMs;
  server.requestTimeout = 0;
}
