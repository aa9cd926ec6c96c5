/**
 * `vipd run`: the composition of daemon, drivers and HTTP API, plus the process's life cycle —
 * reload on SIGHUP and on file change, clean shutdown on SIGTERM/SIGINT.
 */

import { existsSync, type FSWatcher, readFileSync, statSync, watch } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { createApp, DEFAULT_BODY_LIMIT } from "../api/app.ts";
import type { TokenConfig } from "../api/auth.ts";
import { systemModulesIfPresent } from "../api/system-routes.ts";
import { type ApiServer, serveApi, tlsFromFiles } from "../api/serve.ts";
import { MembershipService } from "../cluster/service.ts";
import { failedDriver } from "../drivers/driver.ts";
import { XdpL2Driver } from "../drivers/l2.ts";
import { LocalDeliveryDriver } from "../drivers/local-delivery.ts";
import { routingDrivers } from "../drivers/routing.ts";
import { createLogger } from "../util/log.ts";
import { ASSIGNMENTS_FILE, Daemon } from "./daemon.ts";

export const RUN_USAGE = `usage: vipd run --config PATH [--config PATH...] [--node-name NAME] [--api-listen HOST:PORT]
  --config PATH        manifest file or directory (repeatable); reloaded on change and on SIGHUP
  --node-name NAME     this node's name (default: NodeSettings.spec.nodeName, then the host name)
  --api-listen H:P     API address (default: NodeSettings.spec.api.listen, then 127.0.0.1:7473)
  --local-delivery     install owned VIPs as local routes (also NodeSettings.spec.localDelivery)
  --state-dir DIR      where assignments survive restarts (default /var/lib/vipd; "" for none)`;

export interface RunArgs {
  configPaths: string[];
  nodeName?: string | undefined;
  apiListen?: string | undefined;
  localDelivery: boolean;
  stateDir: string | undefined;
}

export function parseRunArgs(argv: string[]): RunArgs | { error: string } {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", multiple: true },
        "node-name": { type: "string" },
        "api-listen": { type: "string" },
        "local-delivery": { type: "boolean", default: false },
        "state-dir": { type: "string", default: "/var/lib/vipd" },
      },
      strict: true,
      allowPositionals: false,
    });
    const configPaths = values.config ?? [];
    if (configPaths.length === 0) return { error: "--config is required" };
    return {
      configPaths,
      nodeName: values["node-name"],
      apiListen: values["api-listen"],
      localDelivery: values["local-delivery"] ?? false,
      stateDir: values["state-dir"] === "" ? undefined : values["state-dir"],
    };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function splitHostPort(s: string): { hostname: string; port: number } | null {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[2]);
  return port <= 65535 ? { hostname: m[1] as string, port } : null;
}

/** Runs until SIGTERM/SIGINT. Returns the exit code. */
export async function run(argv: string[], version: string): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(RUN_USAGE);
    return 0;
  }
  const args = parseRunArgs(argv);
  if ("error" in args) {
    console.error(`vipd run: ${args.error}\n${RUN_USAGE}`);
    return 2;
  }
  const log = createLogger("daemon");
  const daemon = new Daemon({
    configPaths: args.configPaths,
    nodeName: args.nodeName,
    version,
    log,
    stateDir: args.stateDir,
  });

  // Signals are handled from the start: a SIGHUP that arrives while vipd is still starting must
  // not kill it (the default action), and a SIGTERM then stops it once it has started.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const kick = (reason: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      daemon.reload(reason).catch((e) => log.error("reload failed", { reason, error: (e as Error).message }));
    }, 150);
  };
  process.on("SIGHUP", () => kick("SIGHUP"));
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });

  // Reload on file change (debounced), as on SIGHUP. Watching starts before the first read, so
  // no change made while vipd starts is missed.
  const watchers: FSWatcher[] = [];
  for (const p of args.configPaths) {
    try {
      // Watch the directory: editors and the API replace files by rename, which ends a file watch.
      const isDir = statSync(p).isDirectory();
      const dir = isDir ? p : dirname(p);
      const name = basename(p);
      watchers.push(
        watch(dir, { persistent: false, recursive: isDir }, (_ev, f) => {
          if (isDir || f === name) kick("file change");
        }),
      );
    } catch (e) {
      log.warn("cannot watch config path", { path: p, error: (e as Error).message });
    }
  }

  // RFC 4724 §3: the Restart State bit says this speaker restarted. Whether a state file exists
  // must be read before the first reload writes one, or the very first start looks like a restart.
  const restarted = args.stateDir !== undefined && existsSync(join(args.stateDir, ASSIGNMENTS_FILE));
  const first = await daemon.reload("start");
  if (!first.ok) {
    log.error("no valid configuration at start; exiting", { problems: first.problems.length });
    clearTimeout(timer);
    for (const w of watchers) w.close();
    return 1;
  }
  const settings = daemon.currentConfig?.nodeSettings?.spec;
  // Checked before any driver starts, so a typo does not leave sockets or XDP programs behind.
  const listen = splitHostPort(args.apiListen ?? settings?.api.listen ?? "127.0.0.1:7473");
  if (listen === null) {
    log.error("invalid API listen address", { listen: args.apiListen });
    clearTimeout(timer);
    for (const w of watchers) w.close();
    return 2;
  }
  if (args.localDelivery || settings?.localDelivery) {
    daemon.addDriver(new LocalDeliveryDriver());
  }
  // BGP and BFD: the speaker starts with the first BGPPeer (now or at a later reload); BFD
  // sessions follow the peers that name a BFDProfile and hold their BGP sessions down.
  for (const d of routingDrivers({
    log: createLogger("bgp"),
    bfdLog: createLogger("bfd"),
    port: Number(process.env.VIPD_BGP_PORT ?? 179),
    restarted,
  }))
    daemon.addDriver(d);

  // Live membership among the site's nodes (layer-2 election), when a shared key is configured.
  let membership: MembershipService | undefined;
  const cluster = settings?.cluster;
  if (settings && cluster?.keyFile !== undefined) {
    let key: Uint8Array;
    try {
      key = new Uint8Array(readFileSync(cluster.keyFile));
      if (key.length < 16) throw new Error("the key must be at least 16 bytes");
    } catch (e) {
      log.error("cannot read the cluster key", { keyFile: cluster.keyFile, error: (e as Error).message });
      return 1;
    }
    membership = new MembershipService({
      self: daemon.node.name,
      members: settings.members,
      key,
      port: cluster.port,
      intervalMs: cluster.intervalMs,
      deadAfterMs: cluster.deadAfterMs,
      riseMs: cluster.riseMs,
      onChange: (why) => void daemon.replan(why),
    });
    daemon.setMembership(membership);
  }
  if (settings && settings.interfaces.length > 0) {
    const window = settings.xdp.livenessWindowMs ?? (membership ? 2 * (cluster?.deadAfterMs ?? 200) : 30_000);
    try {
      daemon.addDriver(
        await XdpL2Driver.open(settings.interfaces, {
          mode: settings.xdp.mode,
          livenessWindowMs: window,
          ...(process.env.VIPD_BPF_PIN_DIR ? { pinDir: process.env.VIPD_BPF_PIN_DIR } : {}),
        }),
      );
    } catch (e) {
      log.error("cannot load the XDP responder; layer-2 answers are off", { error: (e as Error).message });
      daemon.addDriver(failedDriver("xdp", (e as Error).message));
    }
  }
  await daemon.replan("drivers ready");
  await membership?.start();

  // Tokens are read from the current configuration on every request: a reload rotates them.
  const tokens = (): TokenConfig[] =>
    (daemon.currentConfig?.nodeSettings?.spec.api.tokens ?? []).map((t) => ({
      name: t.name,
      role: t.role,
      hash: t.hash,
    }));
  const app = createApp(daemon, {
    tokens,
    metricsOpen: settings?.api.metricsOpen ?? true,
    // With no token configured at all, reads are open (on 127.0.0.1 by default); writes never are.
    readOpen: () => tokens().length === 0,
    log: createLogger("api"),
    ...systemModulesIfPresent(createLogger("system")), // the edge image: GET/POST /api/v1/system...
  });
  const tls = settings?.api.tls;
  let server: ApiServer;
  try {
    server = serveApi(app, {
      listen,
      ...(tls ? { tls: tlsFromFiles(tls) } : {}),
      bodyLimit: DEFAULT_BODY_LIMIT,
    });
  } catch (e) {
    // Port in use, address not on this host, unreadable TLS files: say so and stop cleanly.
    log.error("cannot serve the API; exiting", {
      listen: `${listen.hostname}:${listen.port}`,
      error: (e as Error).message,
    });
    clearTimeout(timer);
    for (const w of watchers) w.close();
    membership?.stop(false);
    await daemon.close();
    return 1;
  }
  log.info("API listening", { url: server.url.href, tls: tls !== undefined });

  const signal = await stopped;
  log.info("shutting down", { signal });
  const code = 0;
  clearTimeout(timer);
  for (const w of watchers) w.close();
  if (membership) {
    // Tell the others we are leaving (they take over at once), and stop answering ourselves.
    membership.stop(true);
    await daemon.replan("shutdown", { releaseL2: true });
  }
  await server.stop();
  await daemon.close();
  log.info("stopped");
  return code;
}
