/**
 * The metallb.io validating admission webhook, end to end.
 *
 * Against a real kube-apiserver 1.20.2 (FAILS when the binary is missing; never skipped), under
 * the k3s addon's RBAC with the addon's own ValidatingWebhookConfiguration (a service reference,
 * failurePolicy Fail): the API server calls vipd's webhook and refuses a pool with
 * 192.168.300.0/24 with vipd's message (client and kubectl), admits a valid one, refuses an
 * overlapping pool and an advertisement naming a missing pool; vipd set the caBundle; an expiring
 * serving certificate is renewed and the API server goes on trusting it; with vipd down writes
 * are refused ("failed calling webhook"), and with failurePolicy Ignore they get in.
 *
 * How the API server reaches vipd here: it resolves a webhook's service reference to the
 * Service's ClusterIP (or, with --enable-aggregator-routing, to its Endpoints, which may not hold
 * loopback addresses). Neither is reachable on this machine (no kube-proxy, no pod network), but
 * for a Service of type ExternalName it dials the external name at the webhook's port, still
 * checking the certificate against the Service's DNS name (vipd-webhook.vipd-system.svc). So the
 * test replaces the addon's Service by an ExternalName `localhost` and sets the webhook's port to
 * the test's: everything else — the service reference, the path, the CA, the TLS name check — is
 * what a cluster uses.
 *
 * Against the faithful test API server (which runs no webhooks): the certificate Secret made
 * once by two pods racing, a CA near its end replaced while the old one stays trusted, and the
 * HTTPS server answering an AdmissionReview with a certificate that verifies for the Service name.
 */
import { expect, test } from "bun:test";
import { request } from "node:https";
import { join } from "node:path";
import { DEFAULT_POLICY, decide, pemBlocks, serviceDnsNames } from "../../src/k8s/certs.ts";
import { Kube, KubeError, type KubeObject, loadKubeConfig, PATHS } from "../../src/k8s/client.ts";
import { ClusterState } from "../../src/k8s/state.ts";
import { WebhookServer } from "../../src/k8s/webhook.ts";
import { VWC_PATH, WebhookCerts } from "../../src/k8s/webhook-certs.ts";
import { type RunningWebhook, startWebhook } from "../../src/k8s/webhook-run.ts";
import { createLogger } from "../../src/util/log.ts";
import { until } from "../support/until.ts";
import { fakeCluster, NAMESPACE, realCluster, type TestCluster } from "./harness.ts";
import { pool } from "./vipd.ts";

const SECRET = `${PATHS.secrets(NAMESPACE)}/vipd-webhook-cert`;
const unb64 = (s: unknown) => Buffer.from(String(s), "base64").toString("utf8");
const log = process.env.VIPD_TEST_LOG ? createLogger("webhook") : undefined;

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

function runVipdWebhook(c: TestCluster, port: number): { state: ClusterState; hook: RunningWebhook } {
  const kube = new Kube(loadKubeConfig(c.vipdKubeconfig ?? c.kubeconfig));
  let hook: RunningWebhook | undefined;
  const state = new ClusterState(kube, {
    namespace: NAMESPACE,
    endpointSliceVersion: c.endpointSliceVersion,
    informer: { backoffMs: [100, 1000], inactivityMs: 20_000 },
    // As `vipd k8s` does: a change of the Secret is checked at once.
    onChange: (collection) => {
      if (collection === "secrets") hook?.certs.kick();
    },
  });
  state.start();
  hook = startWebhook(
    kube,
    state,
    NAMESPACE,
    {
      listen: `127.0.0.1:${port}`,
      service: "vipd-webhook",
      config: "vipd-webhook",
      secret: "vipd-webhook-cert",
    },
    log,
  );
  return { state, hook };
}

const createPool = (c: TestCluster, obj: Record<string, unknown>) =>
  c.admin.create(PATHS.metallb("ipaddresspools", NAMESPACE), obj);

async function refusal(p: Promise<unknown>): Promise<KubeError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof KubeError) return e;
    throw e;
  }
  throw new Error("the API server admitted it");
}

test("kube-apiserver 1.20.2 calls vipd's webhook through the addon's configuration: bad objects refused with vipd's message, good ones admitted, certificate renewed, Fail and Ignore when vipd is down", async () => {
  const c = await realCluster({ rbac: true, webhook: true });
  let run: { state: ClusterState; hook: RunningWebhook } | undefined;
  try {
    const port = await freePort();
    // The Service in front of the webhook: ExternalName localhost (see above).
    await c.admin.delete(`${PATHS.services(NAMESPACE)}/vipd-webhook`);
    await c.admin.create(PATHS.services(NAMESPACE), {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "vipd-webhook", namespace: NAMESPACE },
      spec: { type: "ExternalName", externalName: "localhost", ports: [{ name: "webhook", port }] },
    });
    const vwc = await c.admin.get(`${VWC_PATH}/vipd-webhook`);
    type Hook = {
      clientConfig: { service: Record<string, unknown>; caBundle?: string };
      failurePolicy: string;
    };
    const setHooks = async (f: (h: Hook) => Hook) => {
      const cur = await c.admin.get(`${VWC_PATH}/vipd-webhook`);
      await c.admin.mergePatch(`${VWC_PATH}/vipd-webhook`, {
        metadata: { resourceVersion: cur.metadata.resourceVersion },
        webhooks: (cur.webhooks as Hook[]).map(f),
      });
    };
    await setHooks((h) => ({
      ...h,
      clientConfig: { ...h.clientConfig, service: { ...h.clientConfig.service, port } },
    }));
    expect((vwc.webhooks as Hook[])[0]?.clientConfig.caBundle).toBeUndefined();

    // A serving certificate that expires in 65 days (made 300 days ago): vipd renews it at start.
    const policy = { ...DEFAULT_POLICY, dnsNames: serviceDnsNames("vipd-webhook", NAMESPACE) };
    const old = decide(undefined, policy, Date.now() - 300 * 86_400_000);
    if (old.action === "keep") throw new Error("expected certificates");
    await c.admin.create(PATHS.secrets(NAMESPACE), {
      apiVersion: "v1",
      kind: "Secret",
      type: "kubernetes.io/tls",
      metadata: { name: "vipd-webhook-cert", namespace: NAMESPACE },
      data: Object.fromEntries(
        Object.entries(old.bundle).map(([k, v]) => [k, Buffer.from(v).toString("base64")]),
      ),
    });

    run = runVipdWebhook(c, port);
    await run.state.waitSynced();
    const secret = await until("the serving certificate renewed", async () => {
      const s = await c.admin.get(SECRET);
      const d = s.data as Record<string, string>;
      return unb64(d["tls.crt"]) !== old.bundle["tls.crt"] && d;
    });
    expect(unb64(secret["ca.crt"])).toBe(old.bundle["ca.crt"]);
    expect(run.hook.certs.stats).toMatchObject({ created: 0, rotated: 1 });
    const bundle = await until("caBundle set by vipd", async () => {
      const h = ((await c.admin.get(`${VWC_PATH}/vipd-webhook`)).webhooks as Hook[])[0];
      return h?.clientConfig.caBundle;
    });
    expect(unb64(bundle)).toBe(old.bundle["ca.crt"]);

    // Refused at admission, with vipd's message naming the field.
    const bad = await refusal(createPool(c, pool("bad", ["192.168.300.0/24"])));
    expect(bad.message).toContain(
      'admission webhook "validation.metallb.vipd.io" denied the request: IPAddressPool/bad: spec.addresses[0]: "192.168.300.0" is not an IP address',
    );
    // kubectl says the same to the operator.
    const file = join(process.env.TMPDIR ?? "/tmp", `vipd-bad-pool-${process.pid}.yaml`);
    await Bun.write(
      file,
      `apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bad, namespace: ${NAMESPACE}}\nspec:\n  addresses: ["192.168.300.0/24"]\n`,
    );
    // Async: the webhook answers from this process, so its event loop must keep running.
    const k = Bun.spawn(["kubectl", "--kubeconfig", c.kubeconfig, "create", "-f", file], {
      stdout: "ignore",
      stderr: "pipe",
    });
    expect(await k.exited).toBe(1);
    expect(await new Response(k.stderr).text()).toContain('"192.168.300.0" is not an IP address');
    // Admitted: a valid pool. Refused: one overlapping it, an advertisement naming a missing pool.
    await createPool(c, pool("lan", ["192.0.2.0/28"]));
    await until("vipd's informer has lan", () =>
      run?.state.crObjects().some((o) => o.obj.metadata.name === "lan"),
    );
    const overlap = await refusal(createPool(c, pool("lan2", ["192.0.2.8/29"])));
    expect(overlap.message).toContain("overlaps");
    const adv = await refusal(
      c.admin.create(PATHS.metallb("l2advertisements", NAMESPACE), {
        apiVersion: "metallb.io/v1beta1",
        kind: "L2Advertisement",
        metadata: { name: "l2", namespace: NAMESPACE },
        spec: { ipAddressPools: ["nope"] },
      }),
    );
    expect(adv.message).toContain(
      'L2Advertisement/l2: spec.ipAddressPools[0]: IPAddressPool "nope" does not exist',
    );
    expect(run.hook.server.stats.denied).toBeGreaterThanOrEqual(4);
    const list = await c.admin.list(PATHS.metallb("ipaddresspools", NAMESPACE));
    expect(list.items.map((o: KubeObject) => o.metadata.name)).toEqual(["lan"]);

    // vipd down, failurePolicy Fail (the addon's): the write is refused, nothing gets in.
    run.hook.stop();
    const down = await refusal(createPool(c, pool("while-down", ["198.51.100.0/28"])));
    expect(down.message).toContain('failed calling webhook "validation.metallb.vipd.io"');
    // failurePolicy Ignore: admitted unchecked (vipd then leaves a bad one out: config-state.test.ts).
    await setHooks((h) => ({ ...h, failurePolicy: "Ignore" }));
    await until(
      "admitted with failurePolicy Ignore",
      async () => {
        await createPool(c, pool("bad-while-down", ["192.168.300.0/24"]));
        return true;
      },
      20_000,
    );
  } finally {
    run?.hook.stop();
    run?.state.stop();
    await c.close();
  }
}, 180_000);

test("test API server: pods racing make one certificate Secret; a CA near its end is replaced while the old one stays trusted; the webhook serves a certificate valid for the Service name", async () => {
  const c = await fakeCluster();
  const stops: (() => void)[] = [];
  try {
    await c.admin.create(VWC_PATH, {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingWebhookConfiguration",
      metadata: { name: "vipd-webhook" },
      webhooks: [{ name: "validation.metallb.vipd.io", clientConfig: { service: { name: "vipd-webhook" } } }],
    });
    const certs: { cert: string; key: string }[][] = [[], [], []];
    const kube = () => new Kube(loadKubeConfig(c.kubeconfig));
    const racers = [0, 1, 2].map(
      (i) =>
        new WebhookCerts(kube(), {
          namespace: NAMESPACE,
          onCertificate: (cert, key) => certs[i]?.push({ cert, key }),
        }),
    );
    await Promise.all(racers.map((r) => r.sync()));
    const created = racers.reduce((n, r) => n + r.stats.created, 0);
    expect(created).toBe(1);
    const served = certs.map((l) => l[l.length - 1]?.cert);
    expect(new Set(served).size).toBe(1);
    const s1 = (await c.admin.get(SECRET)).data as Record<string, string>;
    expect(unb64(s1["tls.crt"])).toBe(served[0] as string);
    const h1 = (
      (await c.admin.get(`${VWC_PATH}/vipd-webhook`)).webhooks as { clientConfig: { caBundle?: string } }[]
    )[0];
    expect(unb64(h1?.clientConfig.caBundle)).toBe(unb64(s1["ca.crt"]));

    // Seven years later the CA has less than a third of its life left: a new CA, both trusted.
    const later = Date.now() + 7 * 365 * 86_400_000;
    const future = new WebhookCerts(kube(), {
      namespace: NAMESPACE,
      now: () => later,
      onCertificate: () => {},
    });
    await future.sync();
    expect(future.stats.rotated).toBe(1);
    const s2 = (await c.admin.get(SECRET)).data as Record<string, string>;
    const blocks = pemBlocks(unb64(s2["ca.crt"]));
    expect(blocks.length).toBe(2);
    expect(blocks[1]).toBe(unb64(s1["ca.crt"]));
    const h2 = (
      (await c.admin.get(`${VWC_PATH}/vipd-webhook`)).webhooks as { clientConfig: { caBundle?: string } }[]
    )[0];
    expect(unb64(h2?.clientConfig.caBundle)).toBe(unb64(s2["ca.crt"]));

    // The webhook server over HTTPS: the client trusts only the Secret's CA and checks the name
    // the API server checks.
    const fresh = await c.admin.get(SECRET);
    await c.admin.replace(SECRET, { ...fresh, data: s1 });
    const port = await freePort();
    const run = runVipdWebhook(c, port);
    stops.push(() => {
      run.hook.stop();
      run.state.stop();
    });
    await until("serving", () => run.hook.server.serving);
    const body = JSON.stringify({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: {
        uid: "abc",
        kind: { group: "metallb.io", version: "v1beta1", kind: "IPAddressPool" },
        namespace: NAMESPACE,
        operation: "CREATE",
        object: pool("bad", ["10.0.0.0/33"]),
      },
    });
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/validate",
          method: "POST",
          servername: "vipd-webhook.vipd-system.svc",
          ca: unb64(s1["ca.crt"]),
          headers: { "content-type": "application/json" },
        },
        (res) => {
          let t = "";
          res.on("data", (d) => {
            t += d;
          });
          res.on("end", () => resolve(t));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    const r = JSON.parse(answer) as {
      response: { uid: string; allowed: boolean; status?: { message: string } };
    };
    expect(r.response.uid).toBe("abc");
    expect(r.response.allowed).toBe(false);
    expect(r.response.status?.message).toContain("IPAddressPool/bad: spec.addresses[0]");
  } finally {
    for (const s of stops) s();
    await c.close();
  }
}, 90_000);

test("test API server: `vipd k8s --webhook-listen` makes its certificate, serves the webhook, and exports vipd_config_stale and vipd_webhook_serving", async () => {
  const c = await fakeCluster();
  let proc: ReturnType<typeof Bun.spawn> | undefined;
  try {
    const [port, apiPort] = [await freePort(), await freePort()];
    proc = Bun.spawn(
      [
        "bun",
        join(import.meta.dir, "../../src/main.ts"),
        "k8s",
        "--kubeconfig",
        c.kubeconfig,
        "--node-name",
        "wh-node",
        "--namespace",
        NAMESPACE,
        "--webhook-listen",
        `127.0.0.1:${port}`,
        "--api-listen",
        `127.0.0.1:${apiPort}`,
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    const secret = await until(
      "the certificate Secret",
      async () => ((await c.admin.get(SECRET)).data as Record<string, string> | undefined) ?? false,
      30_000,
    );
    const metrics = await until(
      "metrics with the webhook serving",
      async () => {
        const t = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
        return t.includes("vipd_webhook_serving 1") && t;
      },
      30_000,
    );
    expect(metrics).toContain("vipd_config_stale 0");
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/validate",
          method: "POST",
          servername: "vipd-webhook.vipd-system.svc",
          ca: unb64(secret["ca.crt"]),
          headers: { "content-type": "application/json" },
        },
        (res) => {
          let t = "";
          res.on("data", (d) => {
            t += d;
          });
          res.on("end", () => resolve(t));
        },
      );
      req.on("error", reject);
      req.end(
        JSON.stringify({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          request: {
            uid: "u",
            kind: { group: "metallb.io", version: "v1beta1", kind: "IPAddressPool" },
            namespace: NAMESPACE,
            operation: "CREATE",
            object: pool("ok", ["10.20.0.0/24"]),
          },
        }),
      );
    });
    expect(JSON.parse(answer)).toEqual({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "u", allowed: true },
    });
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  } finally {
    if (proc !== undefined && proc.exitCode === null) {
      proc.kill("SIGKILL");
      await proc.exited;
    }
    await c.close();
  }
}, 90_000);

test("the webhook server takes a new certificate on the same port: clients trusting only the new CA connect", async () => {
  const policy = { ...DEFAULT_POLICY, dnsNames: serviceDnsNames("vipd-webhook", NAMESPACE) };
  const a = decide(undefined, policy, Date.now());
  const b = decide(undefined, policy, Date.now());
  if (a.action === "keep" || b.action === "keep") throw new Error("expected certificates");
  const port = await freePort();
  const server = new WebhookServer({
    listen: `127.0.0.1:${port}`,
    ctx: { namespace: NAMESPACE, current: () => [], secrets: () => new Map() },
  });
  const get = (ca: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port, path: "/validate", method: "GET", servername: policy.dnsNames[0], ca },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
  try {
    server.setCertificate(a.bundle["tls.crt"], a.bundle["tls.key"]);
    expect(await get(a.bundle["ca.crt"])).toBe(405);
    server.setCertificate(b.bundle["tls.crt"], b.bundle["tls.key"]);
    expect(server.port).toBe(port);
    expect(await get(b.bundle["ca.crt"])).toBe(405);
    await expect(get(a.bundle["ca.crt"])).rejects.toThrow();
  } finally {
    server.stop();
  }
});
