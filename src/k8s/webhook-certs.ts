/**
 * Keeps the admission webhook's certificates current, from every vipd pod at once (the driver
 * for src/k8s/certs.ts's decision):
 *
 * - the Secret (`vipd-webhook-cert` in vipd's namespace) holds the CA and the serving
 *   certificate; a pod that finds it missing creates it, one that finds it expiring replaces it
 *   with a PUT carrying the resourceVersion it read. Of pods racing, one wins; the others get
 *   409 Conflict, read the winner's and use it (no pod ever serves a certificate the Secret
 *   does not hold);
 * - the serving certificate is handed to the webhook server (`onCertificate`);
 * - the ValidatingWebhookConfiguration's `caBundle` (every webhook in it) is patched to the
 *   Secret's `ca.crt` when it differs, with the resourceVersion read (a merge patch), so an
 *   edit by someone else in between is not overwritten.
 *
 * `sync()` runs at start, every `checkEveryMs` (default one hour) and when the Secret changes.
 */

import type { Logger } from "../util/log.ts";
import { type CertBundle, type CertPolicy, DEFAULT_POLICY, decide, serviceDnsNames } from "./certs.ts";
import { type Kube, KubeError, type KubeObject, PATHS } from "./client.ts";
import { plainError, RateLimitedLog } from "./outage.ts";

export interface WebhookCertsOptions {
  namespace: string;
  /** The Secret with the CA and the serving certificate (default vipd-webhook-cert). */
  secretName?: string;
  /** The webhook Service, whose DNS names the serving certificate carries (default vipd-webhook). */
  serviceName?: string;
  /** The ValidatingWebhookConfiguration whose caBundle vipd keeps current (default vipd-webhook). */
  configName?: string;
  policy?: Partial<Omit<CertPolicy, "dnsNames">>;
  checkEveryMs?: number;
  now?: () => number;
  onCertificate: (cert: string, key: string) => void;
  log?: Logger | undefined;
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: unknown): string =>
  typeof s === "string" ? Buffer.from(s, "base64").toString("utf8") : "";

export const VWC_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

export class WebhookCerts {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private readonly outage: RateLimitedLog;
  private readonly now: () => number;
  readonly secretName: string;
  readonly configName: string;
  private readonly policy: CertPolicy;
  /** Secret writes (create or replace) won, lost to another pod (409), and caBundle patches. */
  readonly stats = { created: 0, rotated: 0, conflicts: 0, caBundlePatches: 0 };

  constructor(
    private readonly kube: Kube,
    private readonly opts: WebhookCertsOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.secretName = opts.secretName ?? "vipd-webhook-cert";
    this.configName = opts.configName ?? "vipd-webhook";
    this.policy = {
      ...DEFAULT_POLICY,
      ...opts.policy,
      dnsNames: serviceDnsNames(opts.serviceName ?? "vipd-webhook", opts.namespace),
    };
    this.outage = new RateLimitedLog({ log: opts.log, now: this.now });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Check soon (the Secret changed, or it is time). */
  kick(): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.sync()
      .catch((e: unknown) => {
        this.outage.warn("sync", "webhook certificates: cannot check or update them; retrying", {
          error: plainError(e, this.kube.server),
        });
        clearTimeout(this.timer);
        if (!this.stopped) this.timer = setTimeout(() => this.kick(), 5000);
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private secretPath(): string {
    return `${PATHS.secrets(this.opts.namespace)}/${this.secretName}`;
  }

  /** One pass: the Secret is current, the server has its certificate, the caBundle matches. */
  async sync(): Promise<void> {
    let bundle: CertBundle | undefined;
    for (let attempt = 0; attempt < 5 && bundle === undefined; attempt++) {
      let cur: KubeObject | undefined;
      try {
        cur = await this.kube.get(this.secretPath());
      } catch (e) {
        if (!(e instanceof KubeError && e.status === 404)) throw e;
      }
      const data = cur?.data as Record<string, unknown> | undefined;
      const have: Partial<CertBundle> | undefined =
        data === undefined
          ? undefined
          : {
              "ca.crt": unb64(data["ca.crt"]),
              "ca.key": unb64(data["ca.key"]),
              "tls.crt": unb64(data["tls.crt"]),
              "tls.key": unb64(data["tls.key"]),
            };
      const d = decide(have, this.policy, this.now());
      if (d.action === "keep") {
        bundle = have as CertBundle;
        break;
      }
      const body = {
        apiVersion: "v1",
        kind: "Secret",
        type: "kubernetes.io/tls",
        metadata: {
          name: this.secretName,
          namespace: this.opts.namespace,
          labels: { "app.kubernetes.io/name": "vipd", "app.kubernetes.io/component": "webhook" },
          ...(cur !== undefined ? { resourceVersion: cur.metadata.resourceVersion } : {}),
        },
        data: Object.fromEntries(Object.entries(d.bundle).map(([k, v]) => [k, b64(v)])),
      };
      try {
        if (cur === undefined) await this.kube.create(PATHS.secrets(this.opts.namespace), body);
        else await this.kube.replace(this.secretPath(), body);
      } catch (e) {
        // Another pod wrote first: read what it wrote and decide again.
        if (e instanceof KubeError && e.status === 409) {
          this.stats.conflicts++;
          continue;
        }
        throw e;
      }
      if (cur === undefined) this.stats.created++;
      else this.stats.rotated++;
      this.opts.log?.info("webhook certificates written", {
        secret: this.secretName,
        action: d.action,
        why: d.why,
      });
      bundle = d.bundle;
    }
    if (bundle === undefined)
      throw new Error(`the Secret ${this.secretName} kept changing under vipd (5 conflicts)`);
    this.opts.onCertificate(bundle["tls.crt"], bundle["tls.key"]);
    await this.patchCaBundle(bundle["ca.crt"]);
    this.outage.ok("sync", "webhook certificates: in order again");
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => this.kick(), this.opts.checkEveryMs ?? 3_600_000);
  }

  /** The caBundle patch, read again and retried when another pod patched in between (409). */
  private async patchCaBundle(caPem: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.patchCaBundleOnce(caPem);
      } catch (e) {
        if (!(e instanceof KubeError && e.status === 409) || attempt >= 4) throw e;
        this.stats.conflicts++;
      }
    }
  }

  private async patchCaBundleOnce(caPem: string): Promise<void> {
    const want = b64(caPem);
    let vwc: KubeObject;
    try {
      vwc = await this.kube.get(`${VWC_PATH}/${this.configName}`);
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) {
        this.outage.warn(
          "vwc-missing",
          "webhook: the ValidatingWebhookConfiguration does not exist, so the API server does not call vipd",
          { name: this.configName },
        );
        return;
      }
      throw e;
    }
    this.outage.ok("vwc-missing", "webhook: the ValidatingWebhookConfiguration exists again");
    const hooks = (vwc.webhooks ?? []) as { clientConfig?: { caBundle?: string } }[];
    if (hooks.every((h) => h.clientConfig?.caBundle === want)) return;
    await this.kube.mergePatch(`${VWC_PATH}/${this.configName}`, {
      metadata: { resourceVersion: vwc.metadata.resourceVersion },
      webhooks: hooks.map((h) => ({ ...h, clientConfig: { ...h.clientConfig, caBundle: want } })),
    });
    this.stats.caBundlePatches++;
    this.opts.log?.info("webhook: caBundle updated", { config: this.configName, webhooks: hooks.length });
  }
}
