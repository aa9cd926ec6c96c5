/**
 * One BGP TCP connection as the session sees it: the Bun socket (or the fd of a connect still in
 * progress), its framer, and an output queue drained on the socket's `drain` event, so a session
 * never blocks on backpressure. Outgoing UPDATEs are coalesced into 64 KB writes.
 */
import type { FdSocketOptions, Socket } from "bun";
import { encodeMessage, Framer, type OpenMessage } from "./codec/index.ts";
import type { PeerConfig } from "./config.ts";
import { closeFd, connectStatus, setMinTtl, setTtl, startConnect } from "./sock.ts";

export interface SocketData {
  conn: Conn | null;
}

/** What a connection reports to (its session). */
export interface ConnOwner {
  onData(c: Conn, chunk: Uint8Array): void;
  onDrain(c: Conn): void;
  onClose(c: Conn): void;
}

/** One TCP connection (a session has one, plus at most one collision candidate). */
export interface Conn {
  readonly owner: ConnOwner;
  readonly dir: "out" | "in";
  socket: Socket<SocketData> | null;
  fd: number | null;
  framer: Framer;
  queue: Uint8Array[];
  closed: boolean;
  /** The OPEN received on this connection (for a collision candidate). */
  open?: OpenMessage;
}

export function newConn(
  owner: ConnOwner,
  dir: "out" | "in",
  socket: Socket<SocketData> | null,
  fd: number | null,
): Conn {
  return { owner, dir, socket, fd, framer: new Framer(), queue: [], closed: false };
}

/**
 * The TTL of the session's packets: 255 with GTSM (and at least 254 on receipt, RFC 5082), 1 to a
 * directly connected external peer, 255 otherwise.
 */
export function sessionTtl(cfg: PeerConfig): { ttl?: number; minTtl?: number } {
  if (cfg.gtsm) return { ttl: 255, minTtl: 254 };
  const ebgp = cfg.peerASN !== undefined ? cfg.peerASN !== cfg.myASN : cfg.dynamicASN === "external";
  if (ebgp && !cfg.ebgpMultiHop) return { ttl: 1 };
  return { ttl: 255 };
}

/** Starts a non-blocking connect to the peer (source address, MD5 key, TTL); throws on failure. */
export function dial(owner: ConnOwner, cfg: PeerConfig): Conn {
  const fd = startConnect({
    peer: cfg.peerAddress,
    port: cfg.peerPort ?? 179,
    ...(cfg.sourceAddress ? { sourceAddress: cfg.sourceAddress } : {}),
    ...(cfg.password ? { md5Key: cfg.password } : {}),
    ...sessionTtl(cfg),
  });
  return newConn(owner, "out", null, fd);
}

/** Closes a connection for good: the fd of a connect in progress, or the socket after a last flush. */
export function closeConn(c: Conn): void {
  if (c.closed) return;
  c.closed = true;
  if (c.fd !== null) {
    closeFd(c.fd);
    c.fd = null;
  }
  if (c.socket) {
    flushNow(c);
    c.socket.end();
  }
}

/** GTSM (RFC 5082) on an accepted connection: send with TTL 255, accept at least 254. Throws. */
export function gtsmOnAccepted(socket: Socket<SocketData>): void {
  const v6 = socket.localAddress.includes(":") && !socket.localAddress.startsWith("::ffff:");
  setTtl(socketFd(socket), 255, v6);
  setMinTtl(socketFd(socket), 254, v6);
}

const WRITE_CHUNK = 64 * 1024;

export function send(c: Conn, b: Uint8Array): void {
  c.queue.push(b);
  flushNow(c);
}

/** Sends a NOTIFICATION (RFC 4271 §4.5). */
export function sendNotification(c: Conn, code: number, subcode: number, data?: Uint8Array): void {
  send(c, encodeMessage({ type: "notification", code, subcode, data: data ?? new Uint8Array(0) }));
}

/** Queues many messages, coalesced into large writes (fewer syscalls, full TCP segments). */
export function sendMany(c: Conn, bs: Uint8Array[]): void {
  let i = 0;
  while (i < bs.length) {
    let n = 0;
    let j = i;
    while (j < bs.length && n + bs[j]!.length <= WRITE_CHUNK) n += bs[j++]!.length;
    if (j === i) j++;
    if (j - i === 1) c.queue.push(bs[i]!);
    else {
      const buf = new Uint8Array(n);
      let off = 0;
      for (let k = i; k < j; k++) {
        buf.set(bs[k]!, off);
        off += bs[k]!.length;
      }
      c.queue.push(buf);
    }
    i = j;
  }
  flushNow(c);
}

/** Writes as much of the queue as the socket takes now; the rest waits for `drain`. */
export function flushNow(c: Conn): void {
  const s = c.socket;
  if (!s) return;
  while (c.queue.length > 0) {
    const b = c.queue[0]!;
    const n = s.write(b);
    if (n <= 0) return;
    if (n < b.length) {
      c.queue[0] = b.subarray(n);
      return;
    }
    c.queue.shift();
  }
}

/** Bun's Socket has `fd` at runtime on Linux; the type does not declare it. */
export function socketFd(s: object): number {
  const fd = (s as { fd?: unknown }).fd;
  if (typeof fd !== "number") throw new Error("socket has no fd");
  return fd;
}

/** One handler table for every BGP socket; the Conn is found through socket.data. */
export const socketHandlers = {
  data(s: Socket<SocketData>, chunk: Uint8Array) {
    const c = s.data?.conn;
    if (c) c.owner.onData(c, chunk);
  },
  drain(s: Socket<SocketData>) {
    const c = s.data?.conn;
    if (c) c.owner.onDrain(c);
  },
  close(s: Socket<SocketData>) {
    const c = s.data?.conn;
    if (c) c.owner.onClose(c);
  },
  error(s: Socket<SocketData>) {
    const c = s.data?.conn;
    if (c) c.owner.onClose(c);
  },
};

/** Bun.connect accepts { fd } at runtime (FdSocketOptions); its declared overloads omit it. */
export const connectFd = Bun.connect as unknown as (
  o: FdSocketOptions<SocketData>,
) => Promise<Socket<SocketData>>;

export interface ConnectHooks {
  /** Whether the session still wants this connection (it may have moved on). */
  current(): boolean;
  /** The handshake completed and Bun owns the socket (before any data callback). */
  confirmed(socket: Socket<SocketData>): void;
  /** The connection failed; the fd is already closed. */
  failed(error: string): void;
}

const CONNECT_POLL_MS = 5;

/**
 * Waits for a non-blocking connect() on `fd` to finish, then hands the fd to Bun.
 * Bun.connect({ fd }) reports "open" at once, so the kernel's SO_ERROR is polled first.
 * Returns a function that stops waiting.
 */
export function awaitConnect(fd: number, conn: Conn, hooks: ConnectHooks): () => void {
  let timer: ReturnType<typeof setInterval> | null = setInterval(() => {
    if (conn.closed || !hooks.current()) return stop();
    const st = connectStatus(fd);
    if (st === "pending") return;
    stop();
    if (st !== "connected") {
      conn.closed = true;
      conn.fd = null;
      closeFd(fd);
      hooks.failed(`connect: ${st.error}`);
      return;
    }
    // Confirm in the socket's own open callback, so the peer's OPEN (which BIRD and FRR send at
    // once) can never reach the FSM before the confirmation does.
    const open = (s: Socket<SocketData>) => {
      conn.fd = null;
      conn.socket = s;
      if (conn.closed || !hooks.current()) {
        s.end();
        return;
      }
      s.setNoDelay(true);
      hooks.confirmed(s);
    };
    connectFd({ fd, data: { conn }, socket: { ...socketHandlers, open } }).catch((e: unknown) => {
      if (hooks.current()) hooks.failed(`connect: ${e instanceof Error ? e.message : String(e)}`);
    });
  }, CONNECT_POLL_MS);
  function stop(): void {
    if (timer) clearInterval(timer);
    timer = null;
  }
  return stop;
}
