/**
 * One node's composition, for `vipd run` and `vipd k8s` alike: bind the HTTP API first (so
 * `/livez` answers and `/readyz` says what the node waits for while it starts), then prepare
 * (the appliance has read its manifests already; Kubernetes mode waits for its informers), open
 * the drivers (XDP layer-2 responder, local delivery, BGP and BFD on demand), start live
 * membership, apply the first plan — and return one `stop()` that undoes it all in order.
 *
 * The spine (the appliance Daemon, or the Kubernetes speaker) decides what to announce; this
 * module only wires parts together. A failed API bind, a failed membership start or a failed
 * preparation end the start with exit code 1 and a log line saying why, and leave nothing
 * behind (sockets closed, drivers closed) — the same in both modes.
 */

import { DEFAULT_BODY_LIMIT } from "../api/app.ts";
import { metricsOnly } from "../api/metrics-listener.ts";
import { type ApiServer, type FetchApp, type ServeTls, serveApi } from "../api/serve.ts";
import { type MembershipOptions, MembershipService } from "../cluster/service.ts";
import { type Driver, failedDriver } from "../drivers/driver.ts";
import { XdpL2Driver } from "../drivers/l2.ts";
import { LocalDeliveryDriver } from "../drivers/local-delivery.ts";
import { routingDrivers } from "../drivers/routing.ts";
import { createLogger, type Logger } from "../util/log.ts";
import type { XdpDriverOptions } from "../xdp/driver.ts";

/** What a node waits for while it starts (`/readyz` lists it). */
export class StartProgress {
  private what: string | undefined = "the node to start";
  set(what: string | undefined): void {
    this.what = what;
  }
  waitingFor(): string[] {
    return this.what === undefined ? [] : [`waiting for ${this.what}`];
  }
}

/** The part of a node that decides what it announces: the appliance Daemon, or the k8s speaker. */
export interface NodeSpine {
  addDriver(d: Driver): void;
  setMembership(m: MembershipService | undefined): void;
  /** Recompute and apply the plan (membership changed). */
  replan(why: string): void;
  /** Computes and applies the first plan with the drivers in place. */
  firstPlan(): Promise<void>;
  /** Withdraws every layer-2 entry at once (a clean shutdown with live membership). */
  releaseL2(): Promise<void>;
  /** Stops the spine and closes its drivers. */
  close(): Promise<void>;
}

/** What the node runs, known once prepared. */
export interface NodeParts {
  /** The XDP responder's interfaces, or why none could be chosen (a failed driver then says so). */
  xdp?:
    | { interfaces: string[]; mode: XdpDriverOptions["mode"]; livenessWindowMs: number }
    | { error: string };
  localDelivery?: boolean;
  /** BGP and BFD on demand (the speaker starts with the first BGPPeer). */
  routing?: { port: number; restarted: boolean; gracefulRestartSeconds?: number | undefined } | undefined;
  /** Live membership (a cluster key given); its changes replan. */
  membership?: Omit<MembershipOptions, "onChange"> | undefined;
}

export interface NodeSpec {
  log: Logger;
  progress: StartProgress;
  api?:
    | {
        app: FetchApp;
        /** "" or undefined: no API listener. */
        listen?: string | { hostname: string; port: number } | undefined;
        /** Read when the API binds (unreadable files: the start fails as a failed bind does). */
        tls?: (() => ServeTls) | undefined;
        /** A second listener with only /metrics and /livez ("" or undefined: none). */
        metricsListen?: string | undefined;
      }
    | undefined;
  /** Runs after the API is up; undefined: stop (a signal arrived while waiting). */
  prepare: () => Promise<NodeParts | undefined>;
  /** Undefined: this node announces nothing (a Kubernetes node with --no-speaker). */
  spine?: NodeSpine | undefined;
  onMembershipChange?: ((why: string, m: MembershipService) => void) | undefined;
}

export interface RunningNode {
  membership: MembershipService | undefined;
  /** Leaves the cluster (others take over at once), withdraws, closes drivers and the API. */
  stop(): Promise<void>;
}

/** The API's listeners; throws (with the address in the message) when one cannot bind. */
function serveListeners(api: NonNullable<NodeSpec["api"]>, log: Logger): ApiServer[] {
  const servers: ApiServer[] = [];
  try {
    if (api.listen !== undefined && api.listen !== "") {
      const s = serveApi(api.app, {
        listen: api.listen,
        ...(api.tls ? { tls: api.tls() } : {}),
        bodyLimit: DEFAULT_BODY_LIMIT,
      });
      servers.push(s);
      log.info("API listening", { url: s.url.href, tls: api.tls !== undefined });
    }
    if (api.metricsListen !== undefined && api.metricsListen !== "") {
      const s = serveApi(metricsOnly(api.app), { listen: api.metricsListen, bodyLimit: 1024 });
      servers.push(s);
      log.info("metrics listening", { url: `${s.url.href}metrics` });
    }
    return servers;
  } catch (e) {
    for (const s of servers) void s.stop();
    throw e;
  }
}

/** Opens the drivers the parts ask for (a driver that cannot start is there, failed, saying why). */
async function openDrivers(parts: NodeParts, log: Logger): Promise<Driver[]> {
  const drivers: Driver[] = [];
  if (parts.localDelivery) drivers.push(new LocalDeliveryDriver());
  // BGP and BFD: the speaker starts with the first BGPPeer (now or at a later change); BFD
  // sessions follow the peers that name a BFDProfile and hold their BGP sessions down.
  if (parts.routing !== undefined)
    drivers.push(
      ...routingDrivers({ ...parts.routing, log: createLogger("bgp"), bfdLog: createLogger("bfd") }),
    );
  const x = parts.xdp;
  if (x !== undefined && "error" in x) drivers.push(failedDriver("xdp", x.error));
  else if (x !== undefined && x.interfaces.length > 0) {
    try {
      drivers.push(
        await XdpL2Driver.open(x.interfaces, {
          mode: x.mode,
          livenessWindowMs: x.livenessWindowMs,
          ...(process.env.VIPD_BPF_PIN_DIR ? { pinDir: process.env.VIPD_BPF_PIN_DIR } : {}),
        }),
      );
    } catch (e) {
      log.error("cannot load the XDP responder; layer-2 answers are off", { error: (e as Error).message });
      drivers.push(failedDriver("xdp", (e as Error).message));
    }
  }
  return drivers;
}

/** Starts a node; `{ code }` when it could not start (everything it opened is closed again). */
export async function startNode(spec: NodeSpec): Promise<RunningNode | { code: number }> {
  const { log, progress, spine } = spec;
  let servers: ApiServer[] = [];
  if (spec.api !== undefined) {
    try {
      servers = serveListeners(spec.api, log);
    } catch (e) {
      // Port in use, address not on this host, unreadable TLS files: say so and stop cleanly.
      const l = spec.api.listen;
      log.error("cannot serve the API; exiting", {
        listen:
          typeof l === "object"
            ? `${l.hostname.includes(":") ? `[${l.hostname}]` : l.hostname}:${l.port}`
            : l,
        metricsListen: spec.api.metricsListen,
        error: (e as Error).message,
      });
      return { code: 1 };
    }
  }
  const stopServers = async () => {
    for (const s of servers) await s.stop();
  };
  let parts: NodeParts | undefined;
  try {
    parts = await spec.prepare();
  } catch (e) {
    log.error("cannot start; exiting", { error: (e as Error).message });
    await stopServers();
    return { code: 1 };
  }
  if (parts === undefined) {
    await stopServers();
    return { code: 0 };
  }
  let membership: MembershipService | undefined;
  if (spine !== undefined) {
    progress.set("the drivers to start");
    for (const d of await openDrivers(parts, log)) spine.addDriver(d);
    const mo = parts.membership;
    if (mo !== undefined) {
      const m = new MembershipService({
        ...mo,
        onChange: (why) => {
          spec.onMembershipChange?.(why, m);
          spine.replan(why);
        },
      });
      membership = m;
      spine.setMembership(m);
    }
    progress.set("the first plan");
    await spine.firstPlan();
    try {
      await membership?.start();
    } catch (e) {
      log.error("cannot start live membership; exiting", { port: mo?.port, error: (e as Error).message });
      await spine.close();
      await stopServers();
      return { code: 1 };
    }
  }
  progress.set(undefined);
  return {
    membership,
    stop: async () => {
      await stopServers();
      if (membership !== undefined) {
        // Tell the others we are leaving (they take over at once), and stop answering ourselves.
        membership.stop(true);
        await spine?.releaseL2();
      }
      await spine?.close();
    },
  };
}
