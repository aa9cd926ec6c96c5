/**
 * BgpSpeaker: the declarative face of the BGP module. The caller hands over the peers and, per
 * peer, the whole desired set of routes; the speaker runs one Session per peer (session.ts), one
 * listener for passive opens (port 179 or the configured one, with every peer's TCP-MD5 key
 * installed on it), and sends each peer only the difference.
 *
 * @example
 * const bgp = new BgpSpeaker({ routerId: "10.0.0.2", listen: { host: "::", port: 179 } });
 * bgp.setPeers([{ name: "tor", myASN: 64512, peerASN: 64500, peerAddress: "10.0.0.1" }]);
 * bgp.setRoutes("tor", [{ prefix: "192.0.2.10/32", communities: ["64512:100"] }]);
 * // later: bgp.status().peers[0].state === "Established"
 * await bgp.close({ graceful: true });
 */
import type { Socket, TCPSocketListener } from "bun";
import { normalizeAddress, type PeerConfig, routerIdValue, validatePeer } from "./config.ts";
import { type SocketData, socketFd, socketHandlers } from "./conn.ts";
import type { FsmState } from "./fsm.ts";
import type { IfaceTable } from "./nexthop.ts";
import { LogRateLimiter } from "./ratelimit.ts";
import { parseRoutes, type RouteSpec, type RouteTable } from "./ribout.ts";
import { type Log, type SendTiming, Session, type SessionStatus } from "./session.ts";
import { setMd5Key } from "./sock.ts";

export type { Log, PeerConfig, RouteSpec, SendTiming, SessionStatus };

export interface SpeakerOptions {
  /** Default BGP Identifier (IPv4 dotted quad) for sessions without their own routerID. */
  routerId: string;
  /** Where to accept passive opens; false for none. Default { host: "::", port: 179 }. */
  listen?: { host: string; port: number } | false;
  log?: Log;
  now?: () => number;
  random?: () => number;
  /** This process is a restart of an earlier speaker (sets the RFC 4724 Restart State bit). */
  restarted?: boolean;
  /** Called on every session state change (for metrics and events). */
  onStateChange?: (peer: string, state: FsmState) => void;
  /** The host's interfaces (default os.networkInterfaces()): next hops of the other family. */
  interfaces?: () => IfaceTable;
  /** How often Established sessions re-read the interface addresses, ms (default 30 000). */
  addressCheckMs?: number;
}

export interface SpeakerStatus {
  peers: SessionStatus[];
  /** Incoming connections from addresses that are no configured peer. */
  unknownConnections: number;
}

export class BgpSpeaker {
  private readonly sessions = new Map<string, Session>();
  /** Per peer, its desired routes packed (ribout.ts): the sessions share these tables. */
  private readonly routes = new Map<string, RouteTable>();
  private readonly disabled = new Set<string>();
  private listener: TCPSocketListener<SocketData> | null = null;
  private readonly listenV6: boolean;
  private unknownConnections = 0;
  private readonly unknownLog = new LogRateLimiter(60_000, 256);
  private readonly log: Log;
  private closed = false;

  constructor(private readonly opts: SpeakerOptions) {
    routerIdValue(opts.routerId); // throws a clear error on a bad router ID
    this.log = opts.log ?? (() => {});
    const listen = opts.listen === undefined ? { host: "::", port: 179 } : opts.listen;
    this.listenV6 = listen !== false && listen.host.includes(":");
    if (listen !== false) {
      this.listener = Bun.listen<SocketData>({
        hostname: listen.host,
        port: listen.port,
        data: { conn: null },
        socket: {
          ...socketHandlers,
          open: (s: Socket<SocketData>) => this.accept(s),
        },
      });
    }
  }

  /** The port actually listened on (useful with port 0). */
  get port(): number | null {
    return this.listener?.port ?? null;
  }

  private accept(s: Socket<SocketData>): void {
    s.data = { conn: null };
    const addr = normalizeAddress(s.remoteAddress);
    for (const sess of this.sessions.values()) {
      if (sess.address === addr) {
        sess.incoming(s);
        return;
      }
    }
    // A flood from unknown addresses costs a counter and at most one line per source a minute
    // (plus the count held back since), never a line per connection.
    this.unknownConnections++;
    const d = this.unknownLog.check(addr, (this.opts.now ?? Date.now)());
    if (d.log)
      this.log("warn", "bgp connection from unknown address", {
        address: addr,
        ...(d.suppressed > 0 ? { suppressed: d.suppressed } : {}),
      });
    s.end();
  }

  /**
   * Replaces the set of peers. New peers start, removed peers stop (Cease, routes withdrawn at the
   * peer), changed peers restart. Throws, changing nothing, if any config is invalid.
   */
  setPeers(peers: readonly PeerConfig[]): void {
    const errors = peers.flatMap(validatePeer);
    const names = new Set<string>();
    const addrs = new Set<string>();
    for (const p of peers) {
      if (names.has(p.name)) errors.push(`${p.name}: name: duplicate peer name`);
      names.add(p.name);
      const a = normalizeAddress(p.peerAddress);
      if (addrs.has(a)) errors.push(`${p.name}: peerAddress: ${a} is used by another peer`);
      addrs.add(a);
    }
    if (errors.length > 0) throw new Error(`invalid BGP peers:\n${errors.join("\n")}`);
    for (const [name, s] of this.sessions) {
      const next = peers.find((p) => p.name === name);
      if (!next || JSON.stringify(next) !== JSON.stringify(s.cfg)) {
        s.close(false);
        this.sessions.delete(name);
      }
    }
    for (const p of peers) {
      if (this.sessions.has(p.name)) continue;
      const s = new Session(p, {
        routerId: this.opts.routerId,
        now: this.opts.now ?? Date.now,
        random: this.opts.random ?? Math.random,
        log: this.log,
        restarted: this.opts.restarted ?? false,
        ...(this.opts.interfaces ? { interfaces: this.opts.interfaces } : {}),
        ...(this.opts.addressCheckMs !== undefined ? { addressCheckMs: this.opts.addressCheckMs } : {}),
        ...(this.opts.onStateChange ? { onStateChange: this.opts.onStateChange } : {}),
      });
      this.sessions.set(p.name, s);
      const r = this.routes.get(p.name);
      if (r) s.setRoutes(r);
      if (!this.disabled.has(p.name)) s.start();
    }
    for (const name of this.routes.keys()) if (!names.has(name)) this.routes.delete(name);
    this.installKeys(peers);
  }

  private installKeys(peers: readonly PeerConfig[]): void {
    if (!this.listener) return;
    const fd = socketFd(this.listener);
    for (const p of peers) {
      if (!p.password) continue;
      try {
        setMd5Key(fd, p.peerAddress, p.password, this.listenV6);
      } catch (e) {
        this.log("error", "bgp cannot set TCP-MD5 key on listener", { peer: p.name, error: String(e) });
      }
    }
  }

  /**
   * The whole desired set of routes for one peer; the session sends the difference. Throws,
   * changing nothing, if a route is invalid or the peer is unknown.
   */
  setRoutes(peerName: string, routes: readonly RouteSpec[]): void {
    if (!this.sessions.has(peerName)) throw new Error(`unknown BGP peer "${peerName}"`);
    const parsed = parseRoutes(routes);
    if (!parsed.ok) throw new Error(`invalid routes for peer "${peerName}":\n${parsed.errors.join("\n")}`);
    this.routes.set(peerName, parsed.value);
    this.sessions.get(peerName)?.setRoutes(parsed.value);
  }

  /** Holds a session down (false) or lets it run (true), e.g. driven by BFD. */
  setPeerEnabled(name: string, up: boolean): void {
    const s = this.sessions.get(name);
    if (up) {
      this.disabled.delete(name);
      s?.start();
    } else {
      this.disabled.add(name);
      s?.stop();
    }
  }

  status(): SpeakerStatus {
    return {
      peers: [...this.sessions.values()].map((s) => s.status()),
      unknownConnections: this.unknownConnections,
    };
  }

  /**
   * Per session, the last flush that moved prefixes, timed on the speaker's side: diff and
   * encoding, then first UPDATE handed to the socket → last byte taken by the kernel.
   */
  sendTimings(): SendTiming[] {
    return [...this.sessions.values()].flatMap((s) => s.sendTiming() ?? []);
  }

  /**
   * Stops every session and the listener. graceful: peers that negotiated graceful restart keep
   * our routes (no NOTIFICATION is sent); others get Cease and withdraw them.
   */
  async close(opts: { graceful?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sessions.values()) s.close(opts.graceful ?? false);
    this.listener?.stop(true);
    this.listener = null;
    // Let the NOTIFICATIONs and FINs leave before the caller exits.
    await Bun.sleep(20);
  }
}
