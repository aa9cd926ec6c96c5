/**
 * The validating admission webhook for the metallb.io kinds (IPAddressPool, L2Advertisement,
 * BGPAdvertisement, BGPPeer, BFDProfile, Community), served by `vipd k8s` over HTTPS.
 *
 * - `review()` is pure: an admission.k8s.io/v1 AdmissionReview in, the AdmissionReview answer
 *   out. It admits or refuses with the same validation as `vipd validate` — the object's schema
 *   and the cross-object checks against the other metallb.io objects in vipd's namespace
 *   (src/k8s/configset.ts) — and a refusal names each field and its problem.
 * - `WebhookServer` serves `POST /validate` with the certificate it is given (src/k8s/
 *   webhook-certs.ts keeps it current) and restarts its listener when the certificate changes.
 */

import type { Problem } from "../config/index.ts";
import type { Kind } from "../config/schemas.ts";
import type { Logger } from "../util/log.ts";
import { type KubeObject, METALLB_PLURALS } from "./client.ts";
import { type AdmissionOp, admissionProblems, type CrObject } from "./configset.ts";

export interface AdmissionContext {
  namespace: string;
  /** The metallb.io objects in vipd's namespace, as the API server holds them now. */
  current(): CrObject[];
  /** Secrets of vipd's namespace, by name (BGP passwords). */
  secrets(): ReadonlyMap<string, KubeObject>;
}

export interface AdmissionAnswer {
  apiVersion: "admission.k8s.io/v1";
  kind: "AdmissionReview";
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; reason: string; message: string };
  };
}

const KINDS = new Set<string>(Object.values(METALLB_PLURALS));

/** A refusal's message: one `Kind/name: field: problem` per problem, as `vipd validate` prints them. */
export function refusalMessage(ps: readonly Problem[]): string {
  const lines = ps.slice(0, 10).map((p) => `${p.kind ?? ""}/${p.name ?? ""}: ${p.field}: ${p.message}`);
  if (ps.length > 10) lines.push(`(and ${ps.length - 10} more)`);
  return lines.join("; ");
}

/** Answers one AdmissionReview; throws (a 400) only when the body is not one. */
export function review(body: unknown, ctx: AdmissionContext): AdmissionAnswer {
  const req = (body as { request?: Record<string, unknown> } | null)?.request;
  if (
    (body as { apiVersion?: unknown } | null)?.apiVersion !== "admission.k8s.io/v1" ||
    req === undefined ||
    typeof req.uid !== "string"
  )
    throw new Error("not an admission.k8s.io/v1 AdmissionReview with a request");
  const uid = req.uid;
  const allow = (): AdmissionAnswer => ({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid, allowed: true },
  });
  const kind = (req.kind as { group?: string; kind?: string } | undefined) ?? {};
  if (kind.group !== "metallb.io" || !KINDS.has(kind.kind ?? "")) return allow();
  const obj = req.object as KubeObject | null | undefined;
  if (obj === null || obj === undefined || typeof obj.metadata !== "object") return allow();
  const target: CrObject = {
    kind: kind.kind as Kind,
    obj: {
      ...obj,
      metadata: { ...obj.metadata, namespace: obj.metadata.namespace ?? String(req.namespace ?? "") },
    },
  };
  const problems = admissionProblems(
    ctx.current(),
    ctx.secrets(),
    ctx.namespace,
    String(req.operation) as AdmissionOp,
    target,
  );
  if (problems.length === 0) return allow();
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: {
      uid,
      allowed: false,
      status: { code: 422, reason: "Invalid", message: refusalMessage(problems) },
    },
  };
}

export interface WebhookServerOptions {
  /** HOST:PORT to listen on. */
  listen: string;
  ctx: AdmissionContext;
  log?: Logger | undefined;
  /** Largest request body (default 3 MiB, the API server's own request limit). */
  bodyLimit?: number;
}

export class WebhookServer {
  private server: ReturnType<typeof Bun.serve> | undefined;
  private cert: { cert: string; key: string } | undefined;
  /** Requests answered, by outcome. */
  readonly stats = { allowed: 0, denied: 0, bad: 0 };

  constructor(private readonly opts: WebhookServerOptions) {}

  get port(): number | undefined {
    return this.server?.port;
  }

  get serving(): boolean {
    return this.server !== undefined;
  }

  /** Serves with this certificate (PEM); a changed one restarts the listener. */
  setCertificate(cert: string, key: string): void {
    if (this.cert?.cert === cert && this.cert.key === key && this.server !== undefined) return;
    this.cert = { cert, key };
    const m = /^(.*):(\d+)$/.exec(this.opts.listen);
    if (m === null) throw new Error(`webhook listen address must be HOST:PORT, not "${this.opts.listen}"`);
    const old = this.server;
    // Stop first: the new listener takes the same port. Requests in flight on the old one finish.
    old?.stop(false);
    this.server = Bun.serve({
      hostname: (m[1] as string).replace(/^\[(.*)\]$/, "$1"),
      port: Number(m[2]),
      tls: { cert, key },
      maxRequestBodySize: this.opts.bodyLimit ?? 3 * 1024 * 1024,
      fetch: (r) => this.handle(r),
    });
    this.opts.log?.info(old === undefined ? "webhook listening" : "webhook certificate changed", {
      url: `https://${this.opts.listen}/validate`,
    });
  }

  private async handle(r: Request): Promise<Response> {
    const url = new URL(r.url);
    if (url.pathname !== "/validate")
      return Response.json({ error: "NotFound", message: "POST /validate" }, { status: 404 });
    if (r.method !== "POST")
      return Response.json({ error: "MethodNotAllowed", message: "POST /validate" }, { status: 405 });
    let answer: AdmissionAnswer;
    try {
      answer = review(await r.json(), this.opts.ctx);
    } catch (e) {
      this.stats.bad++;
      return Response.json({ error: "BadRequest", message: (e as Error).message }, { status: 400 });
    }
    if (answer.response.allowed) this.stats.allowed++;
    else {
      this.stats.denied++;
      this.opts.log?.info("webhook refused an object", { message: answer.response.status?.message });
    }
    return Response.json(answer);
  }

  stop(): void {
    this.server?.stop(true);
    this.server = undefined;
  }
}
