/**
 * The admission webhook as `vipd k8s` runs it: the HTTPS server (src/k8s/webhook.ts) fed with the
 * metallb.io objects and Secrets the informers hold, and its certificates kept current by
 * src/k8s/webhook-certs.ts. Every pod serves it; the Service in front picks any.
 */

import type { MetricFamily } from "../api/runtime.ts";
import type { Logger } from "../util/log.ts";
import type { Kube } from "./client.ts";
import type { ClusterState } from "./state.ts";
import { WebhookServer } from "./webhook.ts";
import { WebhookCerts } from "./webhook-certs.ts";

export interface WebhookRunArgs {
  listen: string;
  service: string;
  config: string;
  secret: string;
}

export interface RunningWebhook {
  server: WebhookServer;
  certs: WebhookCerts;
  metrics(): MetricFamily[];
  stop(): void;
}

export function startWebhook(
  kube: Kube,
  state: ClusterState,
  namespace: string,
  args: WebhookRunArgs,
  log: Logger | undefined,
): RunningWebhook {
  const server = new WebhookServer({
    listen: args.listen,
    log,
    ctx: { namespace, current: () => state.crObjects(), secrets: () => state.secrets() },
  });
  const certs = new WebhookCerts(kube, {
    namespace,
    secretName: args.secret,
    serviceName: args.service,
    configName: args.config,
    log,
    onCertificate: (cert, key) => {
      try {
        server.setCertificate(cert, key);
      } catch (e) {
        log?.error("webhook: cannot serve", { listen: args.listen, error: (e as Error).message });
      }
    },
  });
  certs.start();
  return {
    server,
    certs,
    metrics: () => [
      {
        name: "vipd_webhook_requests_total",
        help: "Admission reviews answered by the metallb.io validating webhook, by outcome",
        type: "counter",
        samples: Object.entries(server.stats).map(([outcome, value]) => ({ labels: { outcome }, value })),
      },
      {
        name: "vipd_webhook_serving",
        help: "1 while this pod serves the admission webhook (its certificate is in place)",
        type: "gauge",
        samples: [{ labels: {}, value: server.serving ? 1 : 0 }],
      },
    ],
    stop: () => {
      certs.stop();
      server.stop();
    },
  };
}
