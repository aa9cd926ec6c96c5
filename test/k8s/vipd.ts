/**
 * Runs vipd's Kubernetes roles in-process against a test cluster, through a kubeconfig (so the
 * real client, TLS and token are used), and the objects the scenarios create.
 */

import { Kube, type KubeObject, loadKubeConfig, PATHS } from "../../src/k8s/client.ts";
import { Controller } from "../../src/k8s/controller.ts";
import { Speaker } from "../../src/k8s/speaker.ts";
import { ClusterState } from "../../src/k8s/state.ts";
import { createLogger } from "../../src/util/log.ts";
import { NAMESPACE, RecordingDriver, type TestCluster } from "./harness.ts";

export interface Vipd {
  kube: Kube;
  state: ClusterState;
  controller: Controller | undefined;
  speaker: Speaker | undefined;
  driver: RecordingDriver;
  stop(): Promise<void>;
}

export function startVipd(
  c: TestCluster,
  opts: { node: string; controller?: boolean; speaker?: boolean; identity?: string; leaseDurationS?: number },
): Vipd {
  const kube = new Kube(loadKubeConfig(c.vipdKubeconfig ?? c.kubeconfig));
  const driver = new RecordingDriver();
  let controller: Controller | undefined;
  let speaker: Speaker | undefined;
  const state = new ClusterState(kube, {
    namespace: NAMESPACE,
    endpointSliceVersion: c.endpointSliceVersion,
    informer: { backoffMs: [100, 1000], inactivityMs: 20_000 },
    onChange: () => {
      controller?.kick();
      speaker?.kick();
    },
  });
  if (opts.controller !== false)
    controller = new Controller(kube, state, {
      identity: opts.identity ?? opts.node,
      namespace: NAMESPACE,
      leaseDurationS: opts.leaseDurationS ?? 3,
      renewDeadlineMs: 2000,
      retryMs: 300,
      ...(process.env.VIPD_TEST_LOG ? { log: createLogger(`controller-${opts.node}`) } : {}),
    });
  if (opts.speaker !== false)
    speaker = new Speaker(kube, state, { node: opts.node, namespace: NAMESPACE, drivers: [driver] });
  state.start();
  controller?.start();
  speaker?.kick();
  return {
    kube,
    state,
    controller,
    speaker,
    driver,
    stop: async () => {
      await controller?.stop();
      await speaker?.stop();
      state.stop();
    },
  };
}

export const pool = (name: string, addresses: string[], extra: Record<string, unknown> = {}) => ({
  apiVersion: "metallb.io/v1beta1",
  kind: "IPAddressPool",
  metadata: { name, namespace: NAMESPACE },
  spec: { addresses, ...extra },
});

export const l2adv = (name: string) => ({
  apiVersion: "metallb.io/v1beta1",
  kind: "L2Advertisement",
  metadata: { name, namespace: NAMESPACE },
  spec: {},
});

export const service = (
  name: string,
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
  ns = "default",
) => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace: ns, annotations },
  spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }], selector: { app: name }, ...spec },
});

export const node = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: "v1",
  kind: "Node",
  metadata: { name, labels: { "kubernetes.io/hostname": name, ...labels } },
  spec: {},
});

/** An EndpointSlice of `svc` with one ready endpoint per node (v1: nodeName; v1beta1: topology). */
export const endpointSlice = (
  c: TestCluster,
  name: string,
  svc: string,
  nodes: string[],
  ns = "default",
) => ({
  apiVersion: `discovery.k8s.io/${c.endpointSliceVersion}`,
  kind: "EndpointSlice",
  metadata: { name, namespace: ns, labels: { "kubernetes.io/service-name": svc } },
  addressType: "IPv4",
  ports: [{ port: 8080, protocol: "TCP", name: "" }],
  endpoints: nodes.map((n, i) => ({
    addresses: [`10.244.${i}.10`],
    conditions: { ready: true },
    ...(c.endpointSliceVersion === "v1" ? { nodeName: n } : { topology: { "kubernetes.io/hostname": n } }),
  })),
});

export async function create(c: TestCluster, obj: Record<string, unknown>): Promise<KubeObject> {
  const kind = obj.kind as string;
  const ns = (obj.metadata as { namespace?: string }).namespace ?? "default";
  const path: Record<string, string> = {
    Service: PATHS.services(ns),
    Node: PATHS.nodes(),
    IPAddressPool: PATHS.metallb("ipaddresspools", ns),
    L2Advertisement: PATHS.metallb("l2advertisements", ns),
    EndpointSlice: PATHS.endpointSlices(c.endpointSliceVersion, ns),
  };
  const p = path[kind];
  if (p === undefined) throw new Error(`no path for ${kind}`);
  return c.admin.create(p, obj);
}

export const ingress = (o: KubeObject | undefined): string[] =>
  (
    (o?.status as { loadBalancer?: { ingress?: { ip: string }[] } } | undefined)?.loadBalancer?.ingress ?? []
  ).map((i) => i.ip);

export const getService = (c: TestCluster, name: string, ns = "default"): Promise<KubeObject> =>
  c.admin.get(`${PATHS.services(ns)}/${name}`);

/** Events about an object (events.k8s.io/v1), oldest first. */
export async function eventsFor(
  c: TestCluster,
  name: string,
  ns = "default",
): Promise<{ reason: string; note: string; type: string }[]> {
  const l = await c.admin.list(PATHS.events(ns));
  return l.items
    .filter((e) => (e.regarding as { name?: string } | undefined)?.name === name)
    .map((e) => ({
      reason: e.reason as string,
      note: e.note as string,
      type: e.type as string,
      t: e.eventTime as string,
    }))
    .sort((a, b) => (a.t < b.t ? -1 : 1));
}
