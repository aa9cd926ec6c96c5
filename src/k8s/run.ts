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
 *
 * The node itself (API, drivers, membership, first plan, stop) is composed by src/node/compose.ts,
 * as in `vipd run`; the API binds first and answers while the informers sync.
 */

import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { createApp } from "../api/app.ts";
import type { TokenConfig } from "../api/auth.ts";
import type { MetricFamily } from "../api/runtime.ts";
import type { MembershipService } from "../cluster/service.ts";
import { ApiToken } from "../config/node-settings.ts";
import { EventHub } from "../events/hub.ts";
import { ownerChangeMetric } from "../node/applier.ts";
import { type NodeParts, type NodeSpine, StartProgress, startNode } from "../node/compose.ts";
import { NodeEventPublisher } from "../node/events.ts";
import { createLogger, type Logger } from "../util/log.ts";
import { K8sRuntime } from "./api.ts";
import { Kube, loadKubeConfig } from "./client.ts";
import { Controller } from "./controller.ts";
import { localInterfaces, resolveAuto } from "./interface.ts";
import { LeaseFence } from "./lease-fence.ts";
import { type AddressFamily, type Member, membersFromNodes, sameMembers } from "./members.ts";
import { plainError, RateLimitedLog } from "./outage.ts";
import { Speaker } from "./speaker.ts";
import { ClusterState } from "./state.ts";
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

/** The cluster key, read before anything starts (a bad key changes nothing); undefined: membership off. */
function readClusterKey(args: K8sArgs, log: Logger): Uint8Array | undefined | "error" {
  const cl = args.cluster;
  if (!args.speaker || cl.keyFile === undefined) return undefined;
  if (cl.keyFileOptional && !existsSync(cl.keyFile)) {
    log.warn("no cluster key file: live membership is off (a node counts as alive while its Node is Ready)", {
      keyFile: cl.keyFile,
    });
    return undefined;
  }
  try {
    const key = new Uint8Array(readFileSync(cl.keyFile));
    if (key.length < 16) throw new Error("the key must be at least 16 bytes");
    return key;
  } catch (e) {
    log.error("cannot read the cluster key", { keyFile: cl.keyFile, error: (e as Error).message });
    return "error";
  }
}

/** The speaker as the node composition drives it. */
function spineOf(speaker: Speaker): NodeSpine {
  return {
    addDriver: (d) => speaker.applier.addDriver(d),
    setMembership: (m) => speaker.setMembership(m),
    replan: () => speaker.kick(),
    firstPlan: async () => speaker.kick(),
    releaseL2: () => speaker.releaseL2(),
    close: async () => {
      await speaker.stop();
      await speaker.applier.close();
    },
  };
}

/** What this node runs, once the informers have synced (the Node list gives members and interfaces). */
function partsOf(
  args: K8sArgs,
  state: ClusterState,
  key: Uint8Array | undefined,
  fence: LeaseFence | undefined,
  log: Logger,
): NodeParts {
  const cl = args.cluster;
  const members = key === undefined ? [] : membersFromNodes(state.nodeObjects(), cl.addressFamily);
  if (key !== undefined)
    log.info("live membership on", {
      members: members.map((m) => `${m.name}@${m.address ?? "?"}`),
      port: cl.port,
    });
  // A stopped or dead owner's XDP entries stop answering about when the others take over: within
  // 2 × dead-after with membership; with fencing within the margin, before its Lease can expire.
  let window = key !== undefined ? 2 * cl.deadAfterMs : 30_000;
  if (fence !== undefined) window = Math.min(window, fence.timing.marginMs);
  let xdp: NodeParts["xdp"] = { interfaces: args.interfaces, mode: args.xdpMode, livenessWindowMs: window };
  if (args.interfaces.includes("auto")) {
    const node = state.nodeObjects().find((n) => n.metadata.name === args.nodeName);
    const r = resolveAuto(process.env.VIPD_INTERFACE, node, localInterfaces());
    if (r.ok) log.info("layer-2 interface", { interfaces: r.names, why: r.why });
    else log.error("cannot choose the layer-2 interface; layer-2 answers are off", { error: r.message });
    const rest = args.interfaces.filter((i) => i !== "auto");
    xdp = r.ok
      ? { ...xdp, interfaces: [...rest, ...r.names] }
      : rest.length > 0
        ? { ...xdp, interfaces: rest }
        : { error: r.message };
  }
  return {
    xdp,
    routing: { port: Number(process.env.VIPD_BGP_PORT ?? 179), restarted: false },
    membership:
      key === undefined
        ? undefined
        : {
            self: args.nodeName,
            members,
            key,
            port: cl.port,
            intervalMs: cl.intervalMs,
            deadAfterMs: cl.deadAfterMs,
            riseMs: cl.riseMs,
          },
  };
}

/** This process's Kubernetes roles, as they come up (the informers' callbacks reach them here). */
interface Roles {
  controller?: Controller | undefined;
  speaker?: Speaker | undefined;
  membership?: MembershipService | undefined;
  members: Member[];
  webhook?: ReturnType<typeof startWebhook> | undefined;
  fence?: LeaseFence | undefined;
}

/** The cluster informers; every change kicks the roles (and the Node list moves the membership). */
function watchCluster(kube: Kube, args: K8sArgs, log: Logger, roles: Roles): ClusterState {
  const watchLog = new RateLimitedLog({ log });
  const state: ClusterState = new ClusterState(kube, {
    namespace: args.namespace,
    endpointSliceVersion: args.endpointSliceVersion,
    onChange: (collection) => {
      // Membership follows the Node list (additions, removals, address changes) while running.
      if (collection === "nodes" && roles.membership !== undefined) {
        const next = membersFromNodes(state.nodeObjects(), args.cluster.addressFamily);
        if (!sameMembers(roles.members, next)) {
          roles.members = next;
          roles.membership.setMembers(next);
        }
      }
      if (collection === "secrets") roles.webhook?.certs.kick();
      roles.controller?.kick();
      roles.speaker?.kick();
    },
    // The first at once, then one line per collection per minute while it lasts.
    onError: (collection, e) =>
      watchLog.warn(collection, "watch failed; keeping the last known state and retrying", {
        collection,
        error: plainError(e, kube.server),
      }),
  });
  return state;
}

/** After the informers synced: the controller (Lease-elected), Lease fencing, the webhook. */
function startRoles(kube: Kube, state: ClusterState, args: K8sArgs, log: Logger, roles: Roles): void {
  if (args.controller) {
    const { identity, namespace, loadBalancerClass } = args;
    roles.controller = new Controller(kube, state, { identity, namespace, loadBalancerClass, log });
    roles.controller.start();
  }
  roles.fence?.start();
  if (args.webhook !== undefined)
    roles.webhook = startWebhook(kube, state, args.namespace, args.webhook, log);
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
  let tokens: TokenConfig[];
  try {
    kube = new Kube(loadKubeConfig(args.kubeconfig));
    tokens = args.apiTokensFile ? readTokens(args.apiTokensFile) : [];
  } catch (e) {
    log.error("cannot start", { kubeconfig: args.kubeconfig ?? "in-cluster", error: (e as Error).message });
    return 1;
  }
  log.info("starting", { version, node: args.nodeName, namespace: args.namespace, server: kube.server });
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const key = readClusterKey(args, log);
  if (key === "error") return 1;

  const roles: Roles = { members: [] };
  const events = new EventHub();
  const state = watchCluster(kube, args, log, roles);
  if (args.leaseFencingS !== undefined) {
    const { namespace, nodeName: identity, leaseFencingS: durationS } = args;
    roles.fence = new LeaseFence(kube, {
      namespace,
      identity,
      durationS,
      onChange: () => roles.speaker?.kick(),
      log,
    });
  }
  const speaker = args.speaker
    ? new Speaker(kube, state, {
        node: args.nodeName,
        namespace: args.namespace,
        drivers: [],
        loadBalancerClass: args.loadBalancerClass,
        log,
        fence: roles.fence,
        onEvent: new NodeEventPublisher(events).onEvent,
      })
    : undefined;
  roles.speaker = speaker;
  const progress = new StartProgress();
  const runtime = new K8sRuntime({
    node: args.nodeName,
    version,
    config: () => (state.synced ? state.config().config : undefined),
    drivers: () => speaker?.applier.drivers ?? [],
    loadBalancerClass: args.loadBalancerClass,
    elections: () => speaker?.elections() ?? [],
    members: () => roles.membership?.members() ?? [],
    failover: speaker?.l2Failover.bind(speaker),
    progress,
    metrics: () => k8sMetrics(roles, state),
  });
  const app = createApp(runtime, {
    tokens,
    metricsOpen: true,
    readOpen: false,
    log: createLogger("api"),
    events,
  });
  const node = await startNode({
    log,
    progress,
    api: { app, listen: args.apiListen, metricsListen: args.metricsListen },
    prepare: async () => {
      progress.set("the cluster state (informers syncing)");
      state.start();
      if ((await Promise.race([state.waitSynced().then(() => "synced"), stopped])) !== "synced")
        return undefined;
      startRoles(kube, state, args, log, roles);
      return partsOf(args, state, key, roles.fence, log);
    },
    spine: speaker && {
      ...spineOf(speaker),
      setMembership: (m) => {
        roles.membership = m;
        roles.members = membersFromNodes(state.nodeObjects(), args.cluster.addressFamily);
        speaker.setMembership(m);
      },
    },
    onMembershipChange: (why, m) => log.info("membership changed", { why, alive: m.alive() }),
  });
  if (!("code" in node)) log.info("stopping", { signal: await stopped });
  roles.webhook?.stop();
  await roles.controller?.stop();
  // Leave (the others take over at once), stop answering, close the drivers; then hand back the
  // VIPs' Leases so a fenced successor need not wait them out.
  if (!("code" in node)) await node.stop();
  await roles.fence?.stop(roles.membership !== undefined && !("code" in node));
  state.stop();
  return "code" in node ? node.code : 0;
}

/** Kubernetes mode's own metric families beside the drivers'. */
function k8sMetrics(roles: Roles, state: ClusterState): MetricFamily[] {
  return [
    ...(roles.speaker ? [ownerChangeMetric(roles.speaker.ownerChanges)] : []),
    ...(roles.membership?.metrics() ?? []),
    ...(roles.fence?.metrics() ?? []),
    {
      name: "vipd_config_stale",
      help: "1 while a metallb.io object the API server holds is not in force (it failed validation; see the ConfigurationState and its Warning Events)",
      type: "gauge",
      samples: [{ labels: {}, value: state.stale ? 1 : 0 }],
    },
    ...(roles.webhook?.metrics() ?? []),
  ];
}
