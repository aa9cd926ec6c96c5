/**
 * A standalone speaker process for tests, benchmarks and demos: `bun src/bgp/cli.ts CONTROL CONFIG`
 * runs a BgpSpeaker (in whatever network namespace it was started in) and takes commands as HTTP
 * on the Unix socket CONTROL (a path, reachable from every namespace):
 *   GET  /status                      → SpeakerStatus
 *   GET  /sends                       → SendTiming[] (the last flush per session, speaker side)
 *   POST /routes/:peer  {routes} | {generate: {first, count, len?}}   (whole desired set)
 *   POST /peers         {peers}
 *   POST /enable/:peer  {up}
 *   POST /gc                          → full garbage collection (so memory can be measured)
 *   POST /close         {graceful}    → closes and exits
 * CONFIG is JSON: { routerId, listen, peers, routes?: { peer: RouteSpec[] }, restarted? }.
 */
import { formatIp, parseIp } from "../util/ip.ts";
import { BgpSpeaker, type PeerConfig, type RouteSpec } from "./bgp-speaker.ts";

interface CliConfig {
  routerId: string;
  listen: { host: string; port: number } | false;
  peers: PeerConfig[];
  routes?: Record<string, RouteSpec[]>;
  restarted?: boolean;
}

/** `count` consecutive host prefixes starting at `first` (IPv4 /32 or IPv6 /128 by default). */
export function generateRoutes(
  first: string,
  count: number,
  extra: Omit<RouteSpec, "prefix"> = {},
): RouteSpec[] {
  const ip = parseIp(first);
  if (ip === null) throw new Error(`"${first}" is not an IP address`);
  const len = ip.family === 4 ? 32 : 128;
  const out: RouteSpec[] = [];
  const plain = Object.keys(extra).length === 0;
  if (ip.family === 4) {
    const base = Number(ip.value);
    for (let i = 0; i < count; i++) {
      const v = (base + i) >>> 0;
      const prefix = `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}/32`;
      out.push(plain ? { prefix } : { ...extra, prefix });
    }
    return out;
  }
  for (let i = 0; i < count; i++)
    out.push({ ...extra, prefix: `${formatIp({ family: ip.family, value: ip.value + BigInt(i) })}/${len}` });
  return out;
}

async function main(): Promise<void> {
  const [control, configText] = process.argv.slice(2);
  if (!control || !configText) {
    console.error("usage: bun src/bgp/cli.ts CONTROL_SOCKET CONFIG_JSON");
    process.exit(2);
  }
  const cfg = JSON.parse(configText) as CliConfig;
  const debug = process.env["VIPD_BGP_DEBUG"] === "1";
  const speaker = new BgpSpeaker({
    routerId: cfg.routerId,
    listen: cfg.listen,
    restarted: cfg.restarted ?? false,
    log: (level, msg, fields) => {
      if (debug || level === "warn" || level === "error")
        console.error(JSON.stringify({ t: Date.now(), level, msg, ...fields }));
    },
  });
  speaker.setPeers(cfg.peers);
  for (const [peer, routes] of Object.entries(cfg.routes ?? {})) speaker.setRoutes(peer, routes);

  const json = (v: unknown, status = 200) =>
    new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json" } });
  const server = Bun.serve({
    unix: control,
    async fetch(req) {
      const url = new URL(req.url);
      const parts = url.pathname.split("/").filter(Boolean);
      try {
        if (req.method === "GET" && parts[0] === "status") return json(speaker.status());
        if (req.method === "GET" && parts[0] === "sends") return json(speaker.sendTimings());
        const body = (req.method === "POST" ? await req.json() : {}) as Record<string, unknown>;
        if (parts[0] === "routes" && parts[1]) {
          const g = body["generate"] as
            | { first: string; count: number; extra?: Omit<RouteSpec, "prefix"> }
            | undefined;
          const routes = g ? generateRoutes(g.first, g.count, g.extra) : (body["routes"] as RouteSpec[]);
          speaker.setRoutes(decodeURIComponent(parts[1]), routes);
          return json({ ok: true, count: routes.length });
        }
        if (parts[0] === "peers") {
          speaker.setPeers(body["peers"] as PeerConfig[]);
          return json({ ok: true });
        }
        if (parts[0] === "enable" && parts[1]) {
          speaker.setPeerEnabled(decodeURIComponent(parts[1]), body["up"] === true);
          return json({ ok: true });
        }
        if (parts[0] === "gc") {
          Bun.gc(true);
          return json({ ok: true });
        }
        if (parts[0] === "close") {
          await speaker.close({ graceful: body["graceful"] === true });
          setTimeout(() => {
            server.stop(true);
            process.exit(0);
          }, 10);
          return json({ ok: true });
        }
        return json({ error: "not found" }, 404);
      } catch (e) {
        return json({ error: e instanceof Error ? e.message : String(e) }, 400);
      }
    },
  });
  const stop = async () => {
    await speaker.close({ graceful: false });
    server.stop(true);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (import.meta.main) await main();
