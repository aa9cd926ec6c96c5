/**
 * The BGP driver (both modes): turns the plan's resolved peers and routes into the in-process speaker's
 * declarative calls (src/bgp/bgp-speaker.ts) — the BGPPeer objects this node peers with, and per
 * peer the whole set of prefixes with their attributes — and shows sessions in the API/metrics.
 * BFD (when a peer names a BFDProfile) holds a session down while BFD is down.
 */

import type { BgpPeerView, MetricFamily } from "../api/runtime.ts";
import type { BgpSpeaker, PeerConfig, RouteSpec } from "../bgp/bgp-speaker.ts";
import { type BGPPeer, durationMs } from "../config/schemas.ts";
import { sessionAsn } from "../config/validate.ts";
import type { NodePlan } from "../plan/resolve.ts";
import { sh } from "../util/exec.ts";
import type { Logger } from "../util/log.ts";
import type { Driver, DriverHealth } from "./driver.ts";

/**
 * A BGPPeer as the speaker takes it. `restartSeconds`: the graceful-restart time this node
 * advertises (NodeSettings.spec.bgp.gracefulRestartSeconds; the speaker's default 120 without).
 */
export function peerConfig(p: BGPPeer, restartSeconds?: number): PeerConfig {
  const s = p.spec;
  const secs = (d: string | undefined) => (d === undefined ? undefined : Math.round(durationMs(d) / 1000));
  const c: PeerConfig = {
    name: p.metadata.name,
    // localASN (v1beta2) replaces myASN on this session, as MetalLB's FRR `local-as ASN
    // no-prepend replace-as`: the OPEN carries it and the AS_PATH to this eBGP peer is it alone.
    myASN: sessionAsn(p),
    peerAddress: s.peerAddress ?? "",
    peerPort: s.peerPort,
  };
  if (s.peerASN !== undefined) c.peerASN = s.peerASN;
  if (s.dynamicASN !== undefined) c.dynamicASN = s.dynamicASN;
  if (s.sourceAddress !== undefined) c.sourceAddress = s.sourceAddress;
  const hold = secs(s.holdTime);
  if (hold !== undefined) c.holdTime = hold;
  const keep = secs(s.keepaliveTime);
  if (keep !== undefined && !(hold !== undefined && hold !== 0 && keep >= hold)) c.keepaliveTime = keep;
  const connect = secs(s.connectTime);
  if (connect !== undefined && connect > 0) c.connectTime = connect;
  if (s.routerID !== undefined) c.routerID = s.routerID;
  if (s.password !== undefined) c.password = s.password;
  if (s.ebgpMultiHop !== undefined) c.ebgpMultiHop = s.ebgpMultiHop;
  if (s.enableGracefulRestart !== undefined) c.enableGracefulRestart = s.enableGracefulRestart;
  if (restartSeconds !== undefined) c.gracefulRestartTime = restartSeconds;
  c.families = peerFamilies(s);
  return c;
}

/**
 * The address families a BGPPeer's session carries, as MetalLB (v0.14.9 on) decides them: the
 * session's own family (IPv4 routes over an IPv4 session, IPv6 over IPv6), unless
 * `dualStackAddressFamily: true` (or an unnumbered `interface` peer), which carries both over the
 * one session (MP-BGP, RFC 4760). `disableMP: true` asks for one family per session — what the
 * default already is; MetalLB deprecated it for dualStackAddressFamily, which wins when both are set.
 */
export function peerFamilies(s: BGPPeer["spec"]): (4 | 6)[] {
  if (s.dualStackAddressFamily || s.interface !== undefined) return [4, 6];
  return [(s.peerAddress ?? "").includes(":") ? 6 : 4];
}

/** The first global address of a family on this host (namespace): the default router ID. */
async function firstGlobalAddress(family: 4 | 6): Promise<string | undefined> {
  const r = await sh(["ip", "-j", `-${family}`, "addr", "show", "scope", "global"], { allowFail: true });
  if (r.code !== 0) return undefined;
  const links = JSON.parse(r.stdout || "[]") as { addr_info?: { local?: string }[] }[];
  return links.flatMap((l) => l.addr_info ?? []).find((a) => a.local)?.local;
}

/** The first global IPv4 address of this host (namespace), for the default BGP identifier. */
export function defaultRouterId(): Promise<string | undefined> {
  return firstGlobalAddress(4);
}

export class BgpDriver implements Driver {
  readonly name = "bgp";
  private lastError: string | undefined;
  private readonly bfdDown = new Set<string>();
  /** The BGPPeer objects of the last plan applied (for the API's view of each session). */
  private peers: BGPPeer[] = [];

  // An IPv6 VIP announced over an IPv4 session (and the reverse) gets its next hop from the
  // session's own interface, read by the session when it is established (src/bgp/nexthop.ts).
  constructor(
    readonly speaker: BgpSpeaker,
    private readonly log: Logger,
    private readonly restartSeconds?: number,
  ) {}

  async apply(plan: NodePlan): Promise<void> {
    const peers = plan.routing.peers;
    this.peers = peers;
    const unsupported = peers.filter(
      (p) => p.spec.interface !== undefined || p.spec.passwordSecret !== undefined,
    );
    for (const p of unsupported)
      this.log.warn("BGPPeer skipped: unnumbered (interface) peers and passwordSecret need Kubernetes mode", {
        peer: p.metadata.name,
      });
    const usable = peers.filter((p) => !unsupported.includes(p) && p.spec.peerAddress !== undefined);
    try {
      this.speaker.setPeers(usable.map((p) => peerConfig(p, this.restartSeconds)));
      for (const p of usable) {
        const name = p.metadata.name;
        const routes: RouteSpec[] = plan.routes
          .filter((r) => r.peer === name)
          .map((r) => ({
            prefix: r.prefix,
            ...(r.localPref !== undefined ? { localPref: r.localPref } : {}),
            ...(r.communities.length > 0 ? { communities: r.communities } : {}),
            ...(r.largeCommunities.length > 0 ? { largeCommunities: r.largeCommunities } : {}),
          }));
        this.speaker.setRoutes(name, routes);
        this.speaker.setPeerEnabled(name, !this.bfdDown.has(name));
      }
      this.lastError = undefined;
    } catch (e) {
      this.lastError = (e as Error).message;
      throw e;
    }
  }

  /** BFD's verdict on a peer: down holds the BGP session down until BFD is up again. */
  setBfdUp(peer: string, up: boolean): void {
    if (up) this.bfdDown.delete(peer);
    else this.bfdDown.add(peer);
    if (this.speaker.status().peers.some((p) => p.name === peer)) this.speaker.setPeerEnabled(peer, up);
  }

  health(): DriverHealth {
    const peers = this.speaker.status().peers;
    const est = peers.filter((p) => p.state === "Established").length;
    return {
      name: this.name,
      healthy: this.lastError === undefined,
      detail: this.lastError ?? `${est}/${peers.length} session(s) established`,
    };
  }

  bgpPeers(): BgpPeerView[] {
    return this.speaker.status().peers.map((s) => {
      const p = this.peers.find((x) => x.metadata.name === s.name);
      return {
        name: s.name,
        address: s.address,
        asn: p?.spec.peerASN ?? 0,
        ...(p ? { localAsn: sessionAsn(p) } : {}),
        state: s.state,
        ...(s.uptimeSeconds !== undefined ? { uptimeSeconds: s.uptimeSeconds } : {}),
        prefixesSent: s.prefixesSent,
        prefixesReceived: s.prefixesReceived,
        ...(s.lastError !== undefined ? { lastError: s.lastError } : {}),
      };
    });
  }

  metrics(): MetricFamily[] {
    const peers = this.speaker.status().peers;
    const per = (f: (p: (typeof peers)[number]) => number) =>
      peers.map((p) => ({ labels: { peer: p.name }, value: f(p) }));
    return [
      {
        name: "vipd_bgp_session_up",
        help: "1 when the BGP session with the peer is Established",
        type: "gauge",
        samples: per((p) => (p.state === "Established" ? 1 : 0)),
      },
      {
        name: "vipd_bgp_prefixes_sent",
        help: "Prefixes announced to the peer",
        type: "gauge",
        samples: per((p) => p.prefixesSent),
      },
      {
        name: "vipd_bgp_prefixes_received",
        help: "Prefixes the peer announced to us (counted, then discarded)",
        type: "gauge",
        samples: per((p) => p.prefixesReceived),
      },
      {
        name: "vipd_bgp_updates_sent_total",
        help: "UPDATE messages sent",
        type: "counter",
        samples: per((p) => p.updatesSent),
      },
      {
        name: "vipd_bgp_updates_received_total",
        help: "UPDATE messages received",
        type: "counter",
        samples: per((p) => p.updatesReceived),
      },
      {
        name: "vipd_bgp_update_errors_total",
        help: "UPDATE errors handled without a session reset (RFC 7606 treat-as-withdraw, attribute-discard), by action and reason",
        type: "counter",
        samples: peers.flatMap((p) =>
          Object.entries(p.updateErrors).map(([k, value]) => {
            const [action = "", reason = ""] = k.split("|");
            return { labels: { peer: p.name, action, reason }, value };
          }),
        ),
      },
      {
        name: "vipd_bgp_unknown_connections_total",
        help: "Incoming BGP connections from addresses that are no configured peer (closed at once)",
        type: "counter",
        samples: [{ labels: {}, value: this.speaker.status().unknownConnections }],
      },
    ];
  }

  async close(): Promise<void> {
    // Graceful: peers that negotiated graceful restart keep our routes across a restart.
    await this.speaker.close({ graceful: true });
  }
}
