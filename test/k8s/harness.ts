/**
 * The k8s tier's clusters: the faithful in-process API server (`fakeCluster`) or a real
 * kube-apiserver v1.20.2 with etcd on loopback (`realCluster`), behind one interface so the same
 * scenario suite runs against both. Each cluster has its own PKI, token and ports, and removes
 * every file and process it made (by PID) in `close()`.
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { parse } from "yaml";
import type { Driver } from "../../src/drivers/driver.ts";
import { Kube, KubeError, loadKubeConfig } from "../../src/k8s/client.ts";
import type { Plan } from "../../src/plan/plan.ts";
import { until } from "../support/until.ts";
import { FakeApiServer } from "./apiserver.ts";
import { makePki, type Pki, writeKubeconfig } from "./certs.ts";

export const KAS_BIN = "/var/cache/vipd/kube-apiserver-1.20.2";
export const NAMESPACE = "vipd-system";

export interface TestCluster {
  name: "fake" | "real";
  kubeconfig: string;
  /** The kubeconfig vipd runs with (a ServiceAccount under RBAC), when not the admin's. */
  vipdKubeconfig?: string;
  /** An admin client for the test itself. */
  admin: Kube;
  endpointSliceVersion: "v1" | "v1beta1";
  dualStack: boolean;
  /** The API server goes away (connections refused) until `up()`. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

let counter = 0;
export const uniq = (p: string): string => `${p}-${process.pid}-${++counter}`;

/** For tests outside test/k8s that still import it by this name: the one `until` helper. */
export { until as waitFor };

/** A driver that records every plan it is given (the drivers themselves are tested elsewhere). */
export class RecordingDriver implements Driver {
  readonly name = "recording";
  readonly plans: Plan[] = [];
  async apply(plan: Plan): Promise<void> {
    this.plans.push(plan);
  }
  health() {
    return { name: this.name, healthy: true };
  }
  async close(): Promise<void> {}
  get last(): Plan | undefined {
    return this.plans[this.plans.length - 1];
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

/** CRDs vipd needs: the generated metallb.io ones and the status kinds from the k3s addon. */
export function crdDocuments(): Record<string, unknown>[] {
  const root = join(import.meta.dir, "../../deploy");
  const docs: Record<string, unknown>[] = [];
  for (const f of readdirSync(join(root, "crds"))
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    const text = readFileSync(join(root, "crds", f), "utf8");
    docs.push(parse(text) as Record<string, unknown>);
  }
  for (const f of ["status-crds.yaml"]) {
    const text = readFileSync(join(root, f), "utf8");
    for (const part of text.split(/^---$/m)) {
      const d = parse(part) as Record<string, unknown> | null;
      if (d) docs.push(d);
    }
  }
  return docs;
}

async function ensureNamespace(admin: Kube, name: string): Promise<void> {
  try {
    await admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name } });
  } catch (e) {
    if (!(e instanceof KubeError && e.status === 409)) throw e;
  }
}

export async function fakeCluster(
  opts: { bookmarkMs?: number } = {},
): Promise<TestCluster & { server: FakeApiServer; pki: Pki }> {
  const pki = makePki();
  const token = `tok-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const server = new FakeApiServer({ pki, token, dualStack: true, bookmarkMs: opts.bookmarkMs ?? 1000 });
  server.start();
  const kubeconfig = writeKubeconfig(pki, server.url, token);
  const admin = new Kube(loadKubeConfig(kubeconfig));
  await ensureNamespace(admin, NAMESPACE);
  return {
    name: "fake",
    server,
    pki,
    kubeconfig,
    admin,
    endpointSliceVersion: "v1",
    dualStack: true,
    down: () => server.stop(),
    up: async () => server.start(),
    close: async () => {
      await server.stop();
      pki.cleanup();
    },
  };
}

/** A real kube-apiserver v1.20.2 with etcd on loopback. Throws (the test fails) if either is missing. */
/** Objects of a multi-document manifest, created in order through their REST paths (409 is fine). */
export async function applyManifest(
  admin: Kube,
  text: string,
  opts: { skip?: (d: { kind: string; metadata: { name: string } }) => boolean } = {},
): Promise<string[]> {
  const kinds: Record<string, (ns: string) => string> = {
    Namespace: () => "/api/v1/namespaces",
    ServiceAccount: (ns) => `/api/v1/namespaces/${ns}/serviceaccounts`,
    CustomResourceDefinition: () => "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    ClusterRole: () => "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    ClusterRoleBinding: () => "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    Role: (ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
    RoleBinding: (ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
    DaemonSet: (ns) => `/apis/apps/v1/namespaces/${ns}/daemonsets`,
    Service: (ns) => `/api/v1/namespaces/${ns}/services`,
    ValidatingWebhookConfiguration: () =>
      "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
  };
  const created: string[] = [];
  for (const part of text.split(/^---$/m)) {
    const d = parse(part) as { kind: string; metadata: { name: string; namespace?: string } } | null;
    if (d === null) continue;
    if (opts.skip?.(d)) continue;
    const path = kinds[d.kind];
    if (path === undefined) throw new Error(`applyManifest: no path for ${d.kind}`);
    try {
      await admin.create(path(d.metadata.namespace ?? "default"), d);
      created.push(`${d.kind}/${d.metadata.name}`);
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
      created.push(`${d.kind}/${d.metadata.name} (existed)`);
    }
  }
  return created;
}

/**
 * With `rbac`, the server authorizes with RBAC, the k3s addon (deploy/k3s/vipd.yaml: RBAC,
 * DaemonSet, ...) is applied, and `vipdKubeconfig` authenticates as the addon's ServiceAccount,
 * so vipd runs with exactly the permissions the addon grants.
 */
export async function realCluster(opts: { rbac?: boolean; webhook?: boolean } = {}): Promise<TestCluster> {
  if (!existsSync(KAS_BIN))
    throw new Error(
      `${KAS_BIN} is missing: run scripts/build-kube-apiserver.sh (the real-API-server tier cannot run)`,
    );
  const etcdBin = Bun.which("etcd");
  if (etcdBin === null)
    throw new Error("etcd is missing: run scripts/build-kube-apiserver.sh (installs etcd-server)");
  const pki = makePki();
  const dir = pki.dir;
  const token = `tok-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const saToken = `sa-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(
    join(dir, "tokens.csv"),
    `${token},admin,admin,"system:masters"\n${saToken},system:serviceaccount:${NAMESPACE}:vipd,vipd-sa,"system:serviceaccounts,system:serviceaccounts:${NAMESPACE}"\n`,
  );
  const sa = Bun.spawnSync(["openssl", "genrsa", "-out", join(dir, "sa.key"), "2048"], { stderr: "pipe" });
  if (sa.exitCode !== 0) throw new Error("openssl genrsa failed");
  const [clientPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  mkdirSync(join(dir, "etcd"));
  const procs: { proc: ReturnType<typeof Bun.spawn> }[] = [];
  const etcd = Bun.spawn(
    [
      etcdBin,
      "--data-dir",
      join(dir, "etcd"),
      "--listen-client-urls",
      `http://127.0.0.1:${clientPort}`,
      "--advertise-client-urls",
      `http://127.0.0.1:${clientPort}`,
      "--listen-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-advertise-peer-urls",
      `http://127.0.0.1:${peerPort}`,
      "--initial-cluster",
      `default=http://127.0.0.1:${peerPort}`,
    ],
    { stdout: Bun.file(join(dir, "etcd.log")), stderr: Bun.file(join(dir, "etcd.err")) },
  );
  procs.push({ proc: etcd });
  const kasArgs = [
    KAS_BIN,
    `--etcd-servers=http://127.0.0.1:${clientPort}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${apiPort}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    "--insecure-port=0",
    `--token-auth-file=${join(dir, "tokens.csv")}`,
    `--authorization-mode=${opts.rbac ? "RBAC" : "AlwaysAllow"}`,
    `--service-account-key-file=${join(dir, "sa.key")}`,
    `--service-account-signing-key-file=${join(dir, "sa.key")}`,
    "--service-account-issuer=https://kubernetes.default.svc",
    "--advertise-address=127.0.0.1",
    "--service-cluster-ip-range=10.96.0.0/16,fd00:96::/108",
    "--feature-gates=IPv6DualStack=true",
    "--enable-priority-and-fairness=false",
  ];
  let kas: ReturnType<typeof Bun.spawn> | undefined;
  const startKas = () => {
    kas = Bun.spawn(kasArgs, {
      stdout: Bun.file(join(dir, "kas.log")),
      stderr: Bun.file(join(dir, "kas.err")),
    });
  };
  const kill = async (p: ReturnType<typeof Bun.spawn> | undefined) => {
    if (p === undefined || p.exitCode !== null) return;
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await p.exited;
    clearTimeout(t);
  };
  const close = async () => {
    await kill(kas);
    await kill(etcd);
    pki.cleanup();
  };
  try {
    startKas();
    const kubeconfig = writeKubeconfig(pki, `https://127.0.0.1:${apiPort}`, token);
    const admin = new Kube(loadKubeConfig(kubeconfig));
    const ready = async () => {
      await until(
        "kube-apiserver ready",
        async () => {
          if (kas?.exitCode !== null)
            throw new Error(
              `kube-apiserver exited: ${readFileSync(join(dir, "kas.err"), "utf8").slice(-2000)}`,
            );
          await admin.get("/api/v1/namespaces/default");
          return true;
        },
        60_000,
      );
    };
    await ready();
    await ensureNamespace(admin, NAMESPACE);
    for (const crd of crdDocuments()) {
      try {
        await admin.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
      } catch (e) {
        if (!(e instanceof KubeError && e.status === 409)) throw e;
      }
    }
    for (const crd of crdDocuments()) {
      const name = (crd.metadata as { name: string }).name;
      await until(
        `CRD ${name} established`,
        async () => {
          const c = await admin.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
          return ((c.status as { conditions?: { type: string; status: string }[] }).conditions ?? []).some(
            (x) => x.type === "Established" && x.status === "True",
          );
        },
        30_000,
      );
    }
    // Discovery of new CRDs takes a moment: wait until each serves a list.
    await until(
      "metallb.io served",
      async () => {
        await admin.get("/apis/metallb.io/v1beta1/ipaddresspools");
        await admin.get("/apis/metallb.io/v1beta2/bgppeers");
        await admin.get("/apis/metallb.io/v1beta1/servicel2statuses");
        return true;
      },
      30_000,
    );
    let vipdKubeconfig: string | undefined;
    if (opts.rbac) {
      // The addon's admission webhook only where a test serves it (test/k8s/webhook.test.ts):
      // elsewhere nothing answers it, and its failurePolicy Fail would refuse every pool.
      await applyManifest(admin, readFileSync(join(import.meta.dir, "../../deploy/k3s/vipd.yaml"), "utf8"), {
        skip: (d) => !opts.webhook && d.kind === "ValidatingWebhookConfiguration",
      });
      vipdKubeconfig = writeKubeconfig(pki, `https://127.0.0.1:${apiPort}`, saToken, "vipd-kubeconfig");
    }
    return {
      name: "real",
      kubeconfig,
      ...(vipdKubeconfig ? { vipdKubeconfig } : {}),
      admin,
      endpointSliceVersion: "v1beta1",
      dualStack: true,
      down: () => kill(kas),
      up: async () => {
        startKas();
        await ready();
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
