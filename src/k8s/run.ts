/**
 * `vipd k8s`: Kubernetes mode, the composition of the cluster informers, the controller role
 * (Lease-elected, one active per cluster) and the speaker role (every node) with its drivers
 * (XDP layer-2 responder on the given interfaces; the BGP speaker from the first BGPPeer the
 * cluster declares, and BFD for peers with a BFDProfile). Runs until SIGTERM/SIGINT; on the way
 * out the controller hands its Lease back so a successor takes over at once, and kernel state
 * (pinned XDP maps) is left in place.
 *
 * With a cluster key (--cluster-key-file), the speakers also run the appliance's live membership
 * (src/cluster/: HMAC-authenticated UDP heartbeats, sub-second failure detection) among the
 * Nodes, each reached at its InternalIP; a node owns layer-2 VIPs only when Kubernetes allows it
 * AND the heartbeats say it is alive. With --l2-lease-fencing, a won VIP is announced only while
 * this node holds its coordination.k8s.io Lease (src/k8s/fence.ts). Both are off by default.
 */

import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { createApp, DEFAULT_BODY_LIMIT } from "../api/app.ts";
import type { TokenConfig } from "../api/auth.ts";
import { metricsOnly } from "../api/metrics-listener.ts";
import { type ApiServer, serveApi } from "../api/serve.ts";
import { daemonMetrics } from "../appliance/metrics.ts";
import { MembershipService } from "../cluster/service.ts";
import type { Config } from "../config/index.ts";
import { ApiToken } from "../config/node-settings.ts";
import { type Driver, failedDriver } from "../drivers/driver.ts";
import { XdpL2Driver } from "../drivers/l2.ts";
import { routingDrivers } from "../drivers/routing.ts";
import { createLogger } from "../util/log.ts";
import { K8sRuntime } from "./api.ts";
import { Kube, loadKubeConfig } from "./client.ts";
import { Controller } from "./controller.ts";
import { localInterfaces, resolveAuto } from "./interface.ts";
import { LeaseFence } from "./lease-fence.ts";
import { type AddressFamily, type Member, membersFromNodes, sameMembers } from "./members.ts";
import { plainError, RateLimitedLog } from "./outage.ts";
import { Speaker } from "./speaker.ts";
import { ClusterState } from "./state.ts";
import type { WebhookCerts } from "./webhook-certs.ts";
import { startWebhook } from "./webhook-run.ts";

export const K8S_USAGE = `usage: vipd k8s [--kubeconfig PATH] [--node-name NAME] [--namespace NS] [--interface IF...]
  --kubeconfig PATH          kubeconfig file (default: $KUBECONFIG, then the in-cluster service account)
  --node-name NAME           this node (default: $NODE_NAME, then the host name)
  --namespace NS             vipd's namespace: Lease, Secrets, status objects (default: $POD_NAMESPACE, then vipd-system)
  --interface IF             answer ARP/NDP with XDP on IF (repeatable; none: no layer-2 driver);
                             "auto": $VIPD_INTERFACE (comma-separated) when set, else the interface
                             holding this Node's InternalIP
  --xdp-mode MODE            native | generic (default native)
  --endpointslice-version V  v1 (default) | v1beta1 (Kubernetes 1.20 and older)
  --load-balancer-class C    handle only Services of this class (default: classless Services)
  --no-controller            never run the controller role on this node
  --no-speaker               do not announce from this node
  --api-listen HOST:PORT     the HTTP API (default 127.0.0.1:7473; "" for none)
  --metrics-listen ADDR      a second listener serving only /metrics and /livez, for Prometheus
                             (HOST:PORT or [IP]:PORT, e.g. [$(NODE_IP)]:7472; default "": none)
  --api-tokens-file PATH     API tokens, YAML: [{name, role: admin|read, hash: "sha256:<hex>"}]
                             (without tokens only /livez, /readyz, /healthz and /metrics answer)
  --cluster-key-file PATH    live layer-2 membership among the Nodes: heartbeats authenticated with
                             this shared key (at least 16 bytes; default: $VIPD_CLUSTER_KEY_FILE,
                             where a missing file means membership off); without it a node counts
                             as alive while its Node is Ready
  --cluster-port N           heartbeat UDP port (default 7946)
  --cluster-interval-ms N    heartbeat interval (default 50)
  --cluster-dead-after-ms N  a silent member is dead after this (default 200, at least 2 intervals)
  --cluster-rise-ms N        a returning member must be heard this long (default 1000)
  --cluster-address-family F ipv4 (default) | ipv6: which InternalIP of a Node heartbeats go to
  --l2-lease-fencing         announce a won VIP only while holding its Lease (one per VIP)
  --l2-lease-duration S      the Lease duration in seconds (default 10; failover waits up to this)
  --webhook-listen HOST:PORT serve the metallb.io validating admission webhook over HTTPS here
                             (e.g. 0.0.0.0:9443; default: none). vipd makes and rotates its
                             certificate (Secret --webhook-secret) and keeps the caBundle of the
                             ValidatingWebhookConfiguration --webhook-config current
  --webhook-service NAME     the webhook's Service, named in its certificate (default vipd-webhook)
  --webhook-config NAME      the ValidatingWebhookConfiguration (default vipd-webhook)
  --webhook-secret NAME      the Secret holding the webhook's CA and certificate (default vipd-webhook-cert)
The controller's identity (its Lease holder) is $POD_NAME, else the node name: a restarted pod
resumes its own Lease at once.`;

export interface K8sArgs {
  kubeconfig: string | undefined;
  nodeName: string;
  namespace: string;
  interfaces: string[];
  xdpMode: "native" | "generic";
  endpointSliceVersion: "v1" | "v1beta1";
  loadBalancerClass: string | undefined;
  controller: boolean;
  speaker: boolean;
  apiListen: string;
  /** The Prometheus listener (only /metrics and /livez); "" for none. */
  metricsListen: string;
  apiTokensFile: string | undefined;
  cluster: ClusterArgs;
  /** Per-VIP Lease fencing: the Lease duration in seconds, or undefined when off. */
  leaseFencingS: number | undefined;
  /** The controller's Lease identity: the pod name (stable across restarts of the pod). */
  identity: string;
  /** The admission webhook, or undefined when not served here. */
  webhook: WebhookArgs | undefined;
}

export interface WebhookArgs {
  listen: string;
  service: string;
  config: string;
  secret: string;
}

export interface ClusterArgs {
  /** The shared key's file; undefined: membership off. */
  keyFile: string | undefined;
  /** The key file came from the environment: a missing file turns membership off (with a warning). */
  keyFileOptional: boolean;
  port: number;
  intervalMs: number;
  deadAfterMs: number;
  riseMs: number;
  addressFamily: AddressFamily;
}

function intArg(name: string, v: string | undefined, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer from ${min} to ${max}, not "${v}"`);
  return n;
}

export function parseK8sArgs(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): K8sArgs | { error: string } {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: "string" },
        "node-name": { type: "string" },
        namespace: { type: "string" },
        interface: { type: "string", multiple: true },
        "xdp-mode": { type: "string", default: "native" },
        "endpointslice-version": { type: "string", default: "v1" },
        "load-balancer-class": { type: "string" },
        "no-controller": { type: "boolean", default: false },
        "no-speaker": { type: "boolean", default: false },
        "api-listen": { type: "string", default: "127.0.0.1:7473" },
        "api-tokens-file": { type: "string" },
        "metrics-listen": { type: "string", default: "" },
        "cluster-key-file": { type: "string" },
        "cluster-port": { type: "string" },
        "cluster-interval-ms": { type: "string" },
        "cluster-dead-after-ms": { type: "string" },
        "cluster-rise-ms": { type: "string" },
        "cluster-address-family": { type: "string", default: "ipv4" },
        "l2-lease-fencing": { type: "boolean", default: false },
        "l2-lease-duration": { type: "string" },
        "webhook-listen": { type: "string" },
        "webhook-service": { type: "string", default: "vipd-webhook" },
        "webhook-config": { type: "string", default: "vipd-webhook" },
        "webhook-secret": { type: "string", default: "vipd-webhook-cert" },
      },
      strict: true,
      allowPositionals: false,
    });
    const mode = values["xdp-mode"];
    if (mode !== "native" && mode !== "generic")
      return { error: `--xdp-mode must be native or generic, not "${mode}"` };
    const esv = values["endpointslice-version"];
    if (esv !== "v1" && esv !== "v1beta1")
      return { error: `--endpointslice-version must be v1 or v1beta1, not "${esv}"` };
    const fam = values["cluster-address-family"];
    if (fam !== "ipv4" && fam !== "ipv6")
      return { error: `--cluster-address-family must be ipv4 or ipv6, not "${fam}"` };
    const intervalMs = intArg("cluster-interval-ms", values["cluster-interval-ms"], 50, 10, 10_000);
    const deadAfterMs = intArg("cluster-dead-after-ms", values["cluster-dead-after-ms"], 200, 30, 60_000);
    if (deadAfterMs < 2 * intervalMs)
      return { error: `--cluster-dead-after-ms must be at least twice the interval (${2 * intervalMs})` };
    const envKey = env.VIPD_CLUSTER_KEY_FILE === "" ? undefined : env.VIPD_CLUSTER_KEY_FILE;
    const cluster: ClusterArgs = {
      keyFile: values["cluster-key-file"] ?? envKey,
      keyFileOptional: values["cluster-key-file"] === undefined,
      port: intArg("cluster-port", values["cluster-port"], 7946, 1, 65535),
      intervalMs,
      deadAfterMs,
      riseMs: intArg("cluster-rise-ms", values["cluster-rise-ms"], 1000, 0, 600_000),
      addressFamily: fam,
    };
    const duration = intArg("l2-lease-duration", values["l2-lease-duration"], 10, 2, 3600);
    if (values["l2-lease-duration"] !== undefined && !values["l2-lease-fencing"])
      return { error: "--l2-lease-duration needs --l2-lease-fencing" };
    const wl = values["webhook-listen"];
    if (wl !== undefined && wl !== "" && !/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(wl))
      return { error: `--webhook-listen must be HOST:PORT or [IPv6]:PORT, not "${wl}"` };
    return {
      // The pod name; without one (not in a pod), the node name: unique per node either way.
      identity: env.POD_NAME || (values["node-name"] ?? env.NODE_NAME ?? hostname()),
      webhook:
        wl === undefined || wl === ""
          ? undefined
          : {
              listen: wl,
              service: values["webhook-service"] ?? "vipd-webhook",
              config: values["webhook-config"] ?? "vipd-webhook",
              secret: values["webhook-secret"] ?? "vipd-webhook-cert",
            },
      cluster,
      leaseFencingS: values["l2-lease-fencing"] ? duration : undefined,
      kubeconfig: values.kubeconfig ?? env.KUBECONFIG,
      nodeName: values["node-name"] ?? env.NODE_NAME ?? hostname(),
      namespace: values.namespace ?? env.POD_NAMESPACE ?? "vipd-system",
      interfaces: values.interface ?? [],
      xdpMode: mode,
      endpointSliceVersion: esv,
      loadBalancerClass: values["load-balancer-class"],
      controller: !values["no-controller"],
      speaker: !values["no-speaker"],
      apiListen: values["api-listen"] ?? "127.0.0.1:7473",
      apiTokensFile: values["api-tokens-file"],
      metricsListen: values["metrics-listen"] ?? "",
    };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** API tokens from a YAML file (the NodeSettings `api.tokens` shape); throws with a clear message. */
function readTokens(path: string): TokenConfig[] {
  const list: unknown = parseYaml(readFileSync(path, "utf8"));
  const r = z.array(ApiToken).safeParse(list);
  if (!r.success)
    throw new Error(`${path}: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return r.data.map((t) => ({ name: t.name, role: t.role, hash: t.hash }));
}

/** Runs until SIGTERM/SIGINT. Returns the exit code. */
export async function runK8s(argv: string[], version: string): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(K8S_USAGE);
    return 0;
  }
  const args = parseK8sArgs(argv);
  if ("error" in args) {
    console.error(`vipd k8s: ${args.error}\n${K8S_USAGE}`);
    return 2;
  }
  const log = createLogger("k8s");
  let kube: Kube;
  try {
    kube = new Kube(loadKubeConfig(args.kubeconfig));
  } catch (e) {
    log.error("cannot load the Kubernetes client configuration", {
      kubeconfig: args.kubeconfig ?? "in-cluster",
      error: (e as Error).message,
    });
    return 1;
  }
  log.info("starting", { version, node: args.nodeName, namespace: args.namespace, server: kube.server });
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });

  // The cluster key is read before anything starts, so a bad key changes nothing.
  let key: Uint8Array | undefined;
  const cl = args.cluster;
  if (args.speaker && cl.keyFile !== undefined) {
    if (cl.keyFileOptional && !existsSync(cl.keyFile)) {
      log.warn(
        "no cluster key file: live membership is off (a node counts as alive while its Node is Ready)",
        {
          keyFile: cl.keyFile,
        },
      );
    } else {
      try {
        key = new Uint8Array(readFileSync(cl.keyFile));
        if (key.length < 16) throw new Error("the key must be at least 16 bytes");
      } catch (e) {
        log.error("cannot read the cluster key", { keyFile: cl.keyFile, error: (e as Error).message });
        return 1;
      }
    }
  }

  let controller: Controller | undefined;
  let speaker: Speaker | undefined;
  let membership: MembershipService | undefined;
  let members: Member[] = [];
  let lastConfig: Config | undefined;
  const watchLog = new RateLimitedLog({ log });
  let webhookCerts: WebhookCerts | undefined;
  const state = new ClusterState(kube, {
    namespace: args.namespace,
    endpointSliceVersion: args.endpointSliceVersion,
    onChange: (collection) => {
      // Membership follows the Node list (additions, removals, address changes) while running.
      if (collection === "nodes" && membership !== undefined) {
        const next = membersFromNodes(state.nodeObjects(), cl.addressFamily);
        if (!sameMembers(members, next)) {
          members = next;
          membership.setMembers(next);
        }
      }
      if (collection === "secrets") webhookCerts?.kick();
      controller?.kick();
      speaker?.kick();
    },
    onError: (collection, e) => {
      // The first at once, then one line per collection per minute while it lasts.
      watchLog.warn(collection, "watch failed; keeping the last known state and retrying", {
        collection,
        error: plainError(e, kube.server),
      });
    },
  });
  state.start();
  const synced = await Promise.race([state.waitSynced().then(() => "synced"), stopped]);
  if (synced !== "synced") {
    state.stop();
    return 0;
  }
  lastConfig = state.config().config;

  if (key !== undefined) {
    members = membersFromNodes(state.nodeObjects(), cl.addressFamily);
    membership = new MembershipService({
      self: args.nodeName,
      members,
      key,
      port: cl.port,
      intervalMs: cl.intervalMs,
      deadAfterMs: cl.deadAfterMs,
      riseMs: cl.riseMs,
      onChange: (why) => {
        log.info("membership changed", { why, alive: membership?.alive() ?? [] });
        speaker?.kick();
      },
    });
    log.info("live membership on", {
      members: members.map((m) => `${m.name}@${m.address ?? "?"}`),
      port: cl.port,
    });
  }
  const fence =
    args.leaseFencingS === undefined
      ? undefined
      : new LeaseFence(kube, {
          namespace: args.namespace,
          identity: args.nodeName,
          durationS: args.leaseFencingS,
          onChange: () => speaker?.kick(),
          log,
        });

  // A stopped or dead owner's XDP entries stop answering about when the others take over: within
  // 2 × dead-after with membership; with fencing within the margin, before its Lease can expire.
  let window = membership !== undefined ? 2 * cl.deadAfterMs : 30_000;
  if (fence !== undefined) window = Math.min(window, fence.timing.marginMs);
  const drivers: Driver[] = [];
  if (args.speaker && args.interfaces.includes("auto")) {
    const node = state.nodeObjects().find((n) => n.metadata.name === args.nodeName);
    const r = resolveAuto(process.env.VIPD_INTERFACE, node, localInterfaces());
    if (r.ok) log.info("layer-2 interface", { interfaces: r.names, why: r.why });
    else log.error("cannot choose the layer-2 interface; layer-2 answers are off", { error: r.message });
    args.interfaces = [...args.interfaces.filter((i) => i !== "auto"), ...(r.ok ? r.names : [])];
    if (!r.ok) drivers.push(failedDriver("xdp", r.message));
  }
  if (args.speaker && args.interfaces.length > 0) {
    try {
      drivers.push(
        await XdpL2Driver.open(args.interfaces, {
          mode: args.xdpMode,
          livenessWindowMs: window,
          ...(process.env.VIPD_BPF_PIN_DIR ? { pinDir: process.env.VIPD_BPF_PIN_DIR } : {}),
        }),
      );
    } catch (e) {
      log.error("cannot load the XDP responder; layer-2 answers are off", { error: (e as Error).message });
      drivers.push(failedDriver("xdp", (e as Error).message));
    }
  }
  // BGP and BFD as in the appliance: the speaker starts with the first BGPPeer the cluster
  // declares, now or later; BFD follows the peers that name a BFDProfile.
  if (args.speaker)
    drivers.push(
      ...routingDrivers({
        log: createLogger("bgp"),
        bfdLog: createLogger("bfd"),
        port: Number(process.env.VIPD_BGP_PORT ?? 179),
        restarted: false,
      }),
    );
  if (args.controller)
    controller = new Controller(kube, state, {
      identity: args.identity,
      namespace: args.namespace,
      loadBalancerClass: args.loadBalancerClass,
      log,
    });
  if (args.speaker)
    speaker = new Speaker(kube, state, {
      node: args.nodeName,
      namespace: args.namespace,
      drivers,
      loadBalancerClass: args.loadBalancerClass,
      log,
      membership,
      fence,
    });
  controller?.start();
  fence?.start();
  const webhook =
    args.webhook === undefined ? undefined : startWebhook(kube, state, args.namespace, args.webhook, log);
  webhookCerts = webhook?.certs;
  try {
    await membership?.start();
  } catch (e) {
    log.error("cannot start live membership", { port: cl.port, error: (e as Error).message });
    await controller?.stop();
    await speaker?.stop();
    await fence?.stop(false);
    state.stop();
    for (const d of drivers) await d.close().catch(() => {});
    return 1;
  }
  speaker?.kick();

  // The HTTP API: health for the kubelet's probes, metrics, and the node's state for people.
  let server: ApiServer | undefined;
  let metricsServer: ApiServer | undefined;
  if (args.apiListen !== "" || args.metricsListen !== "") {
    try {
      const tokens = args.apiTokensFile ? readTokens(args.apiTokensFile) : [];
      const runtime = new K8sRuntime({
        node: args.nodeName,
        version,
        config: () => state.config().config ?? lastConfig,
        drivers: () => drivers,
        loadBalancerClass: args.loadBalancerClass,
        elections: () => speaker?.elections() ?? [],
        members: () => membership?.members() ?? [],
        failover: speaker?.l2Failover.bind(speaker),
        metrics: () => [
          // The appliance's owner-change counter (its reload counters do not apply here).
          ...(speaker
            ? daemonMetrics({ applied: 0, unchanged: 0, rejected: 0 }, true, speaker.ownerChanges).filter(
                (f) => f.name === "vipd_l2_ownership_changes_total",
              )
            : []),
          ...(membership?.metrics() ?? []),
          ...(fence?.metrics() ?? []),
          {
            name: "vipd_config_stale",
            help: "1 while a metallb.io object the API server holds is not in force (it failed validation; see the ConfigurationState and its Warning Events)",
            type: "gauge",
            samples: [{ labels: {}, value: state.stale ? 1 : 0 }],
          },
          ...(webhook?.metrics() ?? []),
        ],
      });
      const app = createApp(runtime, {
        tokens,
        metricsOpen: true,
        readOpen: false,
        log: createLogger("api"),
      });
      if (args.apiListen !== "") {
        server = serveApi(app, { listen: args.apiListen, bodyLimit: DEFAULT_BODY_LIMIT });
        log.info("API listening", { url: server.url.href });
      }
      if (args.metricsListen !== "") {
        metricsServer = serveApi(metricsOnly(app), { listen: args.metricsListen, bodyLimit: 1024 });
        log.info("metrics listening", { url: `${metricsServer.url.href}metrics` });
      }
    } catch (e) {
      log.error("cannot serve the API", {
        listen: args.apiListen,
        metricsListen: args.metricsListen,
        error: (e as Error).message,
      });
    }
  }
  const why = await stopped;
  log.info("stopping", { signal: why });
  webhook?.stop();
  await server?.stop();
  await metricsServer?.stop();
  await controller?.stop();
  if (membership !== undefined) {
    // Tell the others we are leaving (they take over at once), stop answering, then hand back
    // the VIPs' Leases so a fenced successor need not wait them out.
    membership.stop(true);
    await speaker?.releaseL2();
    await fence?.stop(true);
  } else {
    await speaker?.stop();
    await fence?.stop(false);
  }
  state.stop();
  for (const d of drivers) await d.close().catch(() => {});
  return 0;
}
