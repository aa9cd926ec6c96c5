/**
 * `vipd k8s`: Kubernetes mode, the composition of the cluster informers, the controller role
 * (Lease-elected, one active per cluster) and the speaker role (every node) with its drivers
 * (XDP layer-2 responder on the given interfaces; the BGP speaker, and BFD for peers with a
 * BFDProfile, when the cluster declares BGPPeers at start). Runs until SIGTERM/SIGINT; on the way out the controller hands its Lease
 * back so a successor takes over at once, and kernel state (pinned XDP maps) is left in place.
 */

import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { createApp, DEFAULT_BODY_LIMIT } from "../api/app.ts";
import type { TokenConfig } from "../api/auth.ts";
import { type ApiServer, serveApi } from "../api/serve.ts";
import { BgpSpeaker } from "../bgp/speaker.ts";
import type { Config } from "../config/index.ts";
import { ApiToken } from "../config/node-settings.ts";
import { BfdDriver } from "../daemon/bfd.ts";
import { BgpDriver, defaultRouterId, firstGlobalAddress } from "../daemon/bgp.ts";
import { type Driver, failedDriver } from "../daemon/driver.ts";
import { XdpL2Driver } from "../daemon/xdp.ts";
import { createLogger } from "../util/log.ts";
import { K8sRuntime } from "./api.ts";
import { Kube, loadKubeConfig } from "./client.ts";
import { Controller } from "./controller.ts";
import { Speaker } from "./speaker.ts";
import { ClusterState } from "./state.ts";

export const K8S_USAGE = `usage: vipd k8s [--kubeconfig PATH] [--node-name NAME] [--namespace NS] [--interface IF...]
  --kubeconfig PATH          kubeconfig file (default: $KUBECONFIG, then the in-cluster service account)
  --node-name NAME           this node (default: $NODE_NAME, then the host name)
  --namespace NS             vipd's namespace: Lease, Secrets, status objects (default: $POD_NAMESPACE, then vipd-system)
  --interface IF             answer ARP/NDP with XDP on IF (repeatable; none: no layer-2 driver)
  --xdp-mode MODE            native | generic (default native)
  --endpointslice-version V  v1 (default) | v1beta1 (Kubernetes 1.20 and older)
  --load-balancer-class C    handle only Services of this class (default: classless Services)
  --no-controller            never run the controller role on this node
  --no-speaker               do not announce from this node
  --api-listen HOST:PORT     the HTTP API (default 127.0.0.1:7473; "" for none)
  --api-tokens-file PATH     API tokens, YAML: [{name, role: admin|read, hash: "sha256:<hex>"}]
                             (without tokens only /livez, /readyz, /healthz and /metrics answer)`;

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
  apiTokensFile: string | undefined;
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
    return {
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

  let controller: Controller | undefined;
  let speaker: Speaker | undefined;
  let lastConfig: Config | undefined;
  const errorsLogged = new Map<string, number>();
  const state = new ClusterState(kube, {
    namespace: args.namespace,
    endpointSliceVersion: args.endpointSliceVersion,
    onChange: () => {
      controller?.kick();
      speaker?.kick();
    },
    onError: (collection, e) => {
      // One line per collection per minute while the API server is unreachable.
      const now = Date.now();
      if (now - (errorsLogged.get(collection) ?? 0) < 60_000) return;
      errorsLogged.set(collection, now);
      log.warn("watch failed; keeping the last known state and retrying", {
        collection,
        error: (e as Error).message,
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

  const drivers: Driver[] = [];
  if (args.speaker && args.interfaces.length > 0) {
    try {
      drivers.push(await XdpL2Driver.open(args.interfaces, { mode: args.xdpMode, livenessWindowMs: 30_000 }));
    } catch (e) {
      log.error("cannot load the XDP responder; layer-2 answers are off", { error: (e as Error).message });
      drivers.push(failedDriver("xdp", (e as Error).message));
    }
  }
  const peers = lastConfig?.peers ?? [];
  if (args.speaker && peers.length > 0) {
    const routerId = peers.find((p) => p.spec.routerID)?.spec.routerID ?? (await defaultRouterId());
    if (routerId === undefined) drivers.push(failedDriver("bgp", "no router ID"));
    else {
      const bgpLog = createLogger("bgp");
      try {
        const bgpSpeaker = new BgpSpeaker({
          routerId,
          listen: { host: "::", port: Number(process.env.VIPD_BGP_PORT ?? 179) },
          restarted: false,
          log: (level, msg, fields) => bgpLog[level](msg, fields),
        });
        const bgp = new BgpDriver(bgpSpeaker, () => lastConfig, bgpLog, {
          4: await firstGlobalAddress(4),
          6: await firstGlobalAddress(6),
        });
        drivers.push(bgp);
        // BFD for the peers that name a BFDProfile (the same driver as the appliance's): a BFD
        // down holds the BGP session down until BFD is up again.
        if (peers.some((p) => p.spec.bfdProfile !== undefined))
          drivers.push(new BfdDriver(() => lastConfig, bgp, createLogger("bfd")));
      } catch (e) {
        drivers.push(failedDriver("bgp", (e as Error).message));
      }
    }
  }
  if (args.controller)
    controller = new Controller(kube, state, {
      identity: `${args.nodeName}_${process.pid}`,
      namespace: args.namespace,
      loadBalancerClass: args.loadBalancerClass,
      log,
    });
  if (args.speaker)
    speaker = new Speaker(kube, state, {
      node: args.nodeName,
      namespace: args.namespace,
      drivers: [
        {
          name: "config",
          apply: async () => {
            lastConfig = state.config().config ?? lastConfig;
          },
          health: () => ({ name: "config", healthy: true }),
          close: async () => {},
        },
        ...drivers,
      ],
      loadBalancerClass: args.loadBalancerClass,
      log,
    });
  controller?.start();
  speaker?.kick();

  // The HTTP API: health for the kubelet's probes, metrics, and the node's state for people.
  let server: ApiServer | undefined;
  if (args.apiListen !== "") {
    try {
      const tokens = args.apiTokensFile ? readTokens(args.apiTokensFile) : [];
      const runtime = new K8sRuntime({
        node: args.nodeName,
        version,
        config: () => state.config().config ?? lastConfig,
        drivers: () => drivers,
        loadBalancerClass: args.loadBalancerClass,
      });
      const app = createApp(runtime, {
        tokens,
        metricsOpen: true,
        readOpen: false,
        log: createLogger("api"),
      });
      server = serveApi(app, { listen: args.apiListen, bodyLimit: DEFAULT_BODY_LIMIT });
      log.info("API listening", { url: server.url.href });
    } catch (e) {
      log.error("cannot serve the API", { listen: args.apiListen, error: (e as Error).message });
    }
  }
  const why = await stopped;
  log.info("stopping", { signal: why });
  await server?.stop();
  await controller?.stop();
  await speaker?.stop();
  state.stop();
  for (const d of drivers) await d.close().catch(() => {});
  return 0;
}
