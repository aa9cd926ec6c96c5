/**
 * `vipd run`: the appliance entry point — the Daemon (config → allocate → plan) composed with its
 * drivers, membership and HTTP API by the node composition shared with `vipd k8s`
 * (src/node/compose.ts), plus the process's life cycle: reload on SIGHUP and on file change,
 * clean shutdown on SIGTERM/SIGINT.
 */

import { existsSync, type FSWatcher, readFileSync, statSync, watch } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { createApp } from "../api/app.ts";
import type { TokenConfig } from "../api/auth.ts";
import { ROUTE_MODULES } from "../api/routes/index.ts";
import { tlsFromFiles } from "../api/serve.ts";
import { systemModulesIfPresent } from "../api/system-routes.ts";
import type { Config } from "../config/index.ts";
import { EventHub } from "../events/hub.ts";
import { type NodeParts, type NodeSpine, StartProgress, startNode } from "../node/compose.ts";
import { NodeEventPublisher } from "../node/events.ts";
import { siteRoutes } from "../site/routes.ts";
import { SiteRuntime } from "../site/runtime.ts";
import { drainL2 } from "../system/drain.ts";
import { readSeedState, seedNotReadyReason } from "../system/seed-state.ts";
import { createLogger, type Logger } from "../util/log.ts";
import { ASSIGNMENTS_FILE, Daemon } from "./daemon.ts";
import { ConfigWatch } from "./watch.ts";

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

/** The Daemon as the node composition drives it. */
function spineOf(daemon: Daemon, log: Logger, site?: () => SiteRuntime | undefined): NodeSpine {
  const replan = (why: string, opts: { releaseL2?: boolean } = {}) =>
    daemon.replan(why, opts).catch((e) => log.error("replan failed", { why, error: (e as Error).message }));
  return {
    addDriver: (d) => daemon.addDriver(d),
    setMembership: (m) => {
      daemon.setMembership(m);
      site?.()?.setMembership(m);
    },
    replan: (why) => void replan(why),
    firstPlan: () => replan("drivers ready"),
    releaseL2: () => replan("shutdown", { releaseL2: true }),
    close: () => daemon.close(),
  };
}

/** What the loaded configuration asks this node to run; throws when the cluster key is unusable. */
function partsOf(daemon: Daemon, cfg: Config | undefined, args: RunArgs, restarted: boolean): NodeParts {
  const settings = cfg?.nodeSettings?.spec;
  const cluster = settings?.cluster;
  let membership: NodeParts["membership"];
  if (settings && cluster?.keyFile !== undefined) {
    let key: Uint8Array;
    try {
      key = new Uint8Array(readFileSync(cluster.keyFile));
      if (key.length < 16) throw new Error("the key must be at least 16 bytes");
    } catch (e) {
      throw new Error(`cannot read the cluster key ${cluster.keyFile}: ${(e as Error).message}`);
    }
    const { port, intervalMs, deadAfterMs, riseMs } = cluster;
    membership = {
      self: daemon.node.name,
      members: settings.members,
      key,
      port,
      intervalMs,
      deadAfterMs,
      riseMs,
    };
  }
  const window = settings?.xdp.livenessWindowMs ?? (membership ? 2 * (cluster?.deadAfterMs ?? 200) : 30_000);
  return {
    localDelivery: args.localDelivery || settings?.localDelivery === true,
    routing: {
      port: Number(process.env.VIPD_BGP_PORT ?? 179),
      restarted,
      gracefulRestartSeconds: settings?.bgp?.gracefulRestartSeconds,
    },
    membership,
    xdp: {
      interfaces: settings?.interfaces ?? [],
      mode: settings?.xdp.mode ?? "native",
      livenessWindowMs: window,
    },
  };
}

/**
 * Watches the configured paths (their directories: editors and the API replace files by rename).
 * `kick` gets the changed name (relative to a watched directory), when the platform says.
 */
function watchPaths(paths: string[], kick: (name: string | null) => void, log: Logger): FSWatcher[] {
  const watchers: FSWatcher[] = [];
  for (const p of paths) {
    try {
      const isDir = statSync(p).isDirectory();
      const name = basename(p);
      watchers.push(
        watch(isDir ? p : dirname(p), { persistent: false, recursive: isDir }, (_ev, f) => {
          if (isDir) kick(typeof f === "string" ? f : null);
          else if (f === name) kick(f);
        }),
      );
    } catch (e) {
      log.warn("cannot watch config path", { path: p, error: (e as Error).message });
    }
  }
  return watchers;
}

/**
 * Signals and file watching, from the start: a SIGHUP that arrives while vipd is still starting
 * must not kill it (the default action), and a SIGTERM then stops it once it has started. A
 * file change reloads as SIGHUP does, at once, without a fixed debounce: src/appliance/watch.ts
 * decides when what was read may be applied (a file written in place only once it has been quiet
 * for 150 ms; one replaced by rename at once). Watching starts before the first read, so no change
 * made while vipd starts is missed. `quit` stops watching and returns its code.
 */
function lifecycle(daemon: Daemon, paths: string[], log: Logger) {
  const watch = new ConfigWatch({
    reload: (reason, gate) => daemon.reload(reason, gate),
    onError: (e) => log.error("reload failed", { error: e.message }),
  });
  process.on("SIGHUP", () => watch.kick("SIGHUP", null, { now: true }));
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const watchers = watchPaths(paths, (name) => watch.kick("file change", name), log);
  const quit = (code: number) => {
    watch.close();
    for (const w of watchers) w.close();
    return code;
  };
  return { stopped, quit, watch };
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
  const progress = new StartProgress();
  // What changed on this node (ownership, assignments, generations) for GET /api/v1/events.
  const events = new EventHub();
  const { onEvent } = new NodeEventPublisher(events);
  // The edge image's seed step (vipd-seed): a rejected seed on a node without a configuration of
  // its own keeps it not ready until another configuration is applied (a file change; on the
  // image: the fixed seed, at the next boot).
  const seed = readSeedState(args.stateDir);
  const seedHold = seedNotReadyReason(seed);
  let startGeneration: number | undefined;
  const daemon: Daemon = new Daemon({
    configPaths: args.configPaths,
    nodeName: args.nodeName,
    version,
    log,
    stateDir: args.stateDir,
    progress: {
      waitingFor: () => {
        const held =
          seedHold !== null &&
          (startGeneration === undefined || daemon.status().configGeneration === startGeneration);
        return [...progress.waitingFor(), ...(held ? [seedHold] : [])];
      },
    },
    onEvent,
  });
  if (seedHold !== null) log.error("not ready: the site's seed was rejected", { reason: seedHold });

  const { stopped, quit, watch } = lifecycle(daemon, args.configPaths, log);

  // RFC 4724 §3: the Restart State bit says this speaker restarted. Whether a state file exists
  // must be read before the first reload writes one, or the very first start looks like a restart.
  const restarted = args.stateDir !== undefined && existsSync(join(args.stateDir, ASSIGNMENTS_FILE));
  // The start's reads count as the last reads of their paths (what tells a rename from an
  // in-place write, src/appliance/watch.ts).
  const first = await daemon.reload("start", (stamps) => {
    watch.record(stamps);
    return {};
  });
  if (!first.ok) {
    log.error("no valid configuration at start; exiting", { problems: first.problems.length });
    return quit(1);
  }
  const settings = daemon.currentConfig?.nodeSettings?.spec;
  // Checked before anything starts, so a typo does not leave sockets or XDP programs behind.
  const listen = splitHostPort(args.apiListen ?? settings?.api.listen ?? "127.0.0.1:7473");
  if (listen === null) {
    log.error("invalid API listen address", { listen: args.apiListen });
    return quit(2);
  }
  // One site, one truth (src/site): with a cluster key, a state dir and other members, the site's
  // configuration and assignment table replace this node's own, and it announces nothing until
  // it holds them (or knows it is alone).
  let site: SiteRuntime | undefined;
  try {
    site = SiteRuntime.fromSettings({
      self: daemon.node.name,
      local: daemon.currentConfig as Config,
      localText: daemon.config().yaml,
      stateDir: args.stateDir,
      log: createLogger("site"),
      onChange: (why) => daemon.applySite(why),
    });
    if (site) {
      daemon.setSite(site);
      await site.start();
      await daemon.applySite("site started");
    }
  } catch (e) {
    log.error("cannot start the site channel; exiting", { error: (e as Error).message });
    await site?.stop();
    return quit(1);
  }
  startGeneration = daemon.status().configGeneration;
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
    events,
    // The API's own routes, the site's, and the system update routes when this node can update
    // itself (the edge image).
    modules: [
      ...ROUTE_MODULES,
      siteRoutes,
      ...systemModulesIfPresent(createLogger("system"), {
        events,
        seed,
        // Before a reboot: hand the layer-2 VIPs to the other members (src/system/drain.ts).
        drain: () =>
          drainL2({
            self: () => daemon.node.name,
            elections: async () => daemon.l2Elections(),
            answering: async () => daemon.l2().map((v) => v.ip),
            failover: async (ip) => {
              const r = await daemon.l2Failover({ ip });
              return r.ok ? { ok: true } : { ok: false, error: r.error, message: r.message };
            },
          }),
      }),
    ],
  });
  const tls = settings?.api.tls;
  // With a cluster key, live membership starts inside startNode; until then this node owns nothing.
  if (settings?.cluster?.keyFile !== undefined) daemon.expectMembership();
  const node = await startNode({
    log,
    progress,
    api: { app, listen, tls: tls ? () => tlsFromFiles(tls) : undefined },
    prepare: async () => partsOf(daemon, daemon.currentConfig, args, restarted),
    spine: spineOf(daemon, log, () => site),
  });
  if ("code" in node) {
    await site?.stop();
    await daemon.close();
    return quit(node.code);
  }
  const signal = await stopped;
  log.info("shutting down", { signal });
  quit(0);
  await node.stop();
  await site?.stop();
  log.info("stopped");
  return 0;
}
