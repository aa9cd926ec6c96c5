/**
 * The Kubernetes API client vipd uses: a thin wrapper over `@kubernetes/client-node` 1.4.0 that
 * owns its quirks, so no other module meets them.
 *
 * - Connection settings (server, CA, client certificate, token, skip-verify) come from the
 *   client's KubeConfig (a kubeconfig file, or in-cluster); every request goes through the
 *   client's own transport (`applyToFetchOptions` + node-fetch, as its generated APIs do), so
 *   TLS behaves exactly as the client's. (2.x loses these TLS settings under Bun; 1.4.0 keeps them.)
 * - Merge patches are sent as `application/merge-patch+json` (RFC 7396); the client's default
 *   patch type is JSON Patch.
 * - Times for Leases and events.k8s.io are MicroTime: RFC 3339 with exactly six decimals.
 * - Errors are `KubeError` with the HTTP status and the API server's Status reason.
 * - Client-side rate limiting: a token bucket (qps, burst) and a cap on requests in flight.
 * - Watches: `watch()` reads the watch stream line by line itself (client-node's `Watch` turns
 *   the body into a Node stream and splits it with `readline`: most of the CPU of a burst of
 *   events) and reports every event as plain JSON, with the `Watch`'s semantics.
 */

import { STATUS_CODES } from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import fetch, { type Response as FetchResponse, type RequestInit } from "node-fetch";
import { LineFramer } from "./watch-lines.ts";

/** Any object the API server returns: what vipd reads of it is checked where it is read. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface KubeList {
  metadata: { resourceVersion?: string; continue?: string };
  items: KubeObject[];
}

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject | { kind?: string; code?: number; reason?: string; message?: string };
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** MicroTime (metav1.MicroTime): RFC 3339 UTC with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** metav1.Time: RFC 3339 UTC, whole seconds. */
export function kubeTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Parses Time or MicroTime; NaN when absent or malformed. */
export function parseKubeTime(s: unknown): number {
  return typeof s === "string" ? Date.parse(s) : Number.NaN;
}

export interface KubeOptions {
  /** Requests per second after the burst (default 1000). */
  qps?: number;
  burst?: number;
  /** Requests in flight at once (default 64). */
  inflight?: number;
  /** Per request timeout (default 15 s); watches have none (see informer's inactivity timeout). */
  timeoutMs?: number;
}

/** Loads a kubeconfig file, or the in-cluster service account when `path` is undefined. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path !== undefined) kc.loadFromFile(path);
  else kc.loadFromCluster();
  if (kc.getCurrentCluster() === null)
    throw new Error(`no current cluster in ${path ?? "in-cluster config"}`);
  return kc;
}

export class Kube {
  readonly server: string;
  private tokens: number;
  private last: number;
  private inFlight = 0;
  /** Normal-priority requests in flight (low-priority ones wait until there are none). */
  private inFlightNormal = 0;
  private conn:
    | { at: number; value: { agent: RequestInit["agent"]; headers: Record<string, string> } }
    | undefined;
  private readonly queue: (() => void)[] = [];
  private readonly lowQueue: (() => void)[] = [];
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly qps: number;
  private readonly burst: number;
  private readonly maxInflight: number;
  private readonly timeoutMs: number;
  /** Requests sent, by verb (for the benchmark and metrics). */
  readonly requests: Record<string, number> = {};

  constructor(
    readonly kc: KubeConfig,
    opts: KubeOptions = {},
  ) {
    this.server = (kc.getCurrentCluster()?.server ?? "").replace(/\/$/, "");
    this.qps = opts.qps ?? 1000;
    this.burst = opts.burst ?? 2000;
    this.maxInflight = opts.inflight ?? 64;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.tokens = this.burst;
    this.last = Date.now();
  }

  /**
   * The client's connection settings (TLS agent, auth headers), made once a minute rather than
   * per request: the client builds a new agent on every call, which costs a TLS handshake per
   * request. Refreshed periodically so rotated service-account tokens are picked up.
   */
  private async connection(): Promise<{ agent: RequestInit["agent"]; headers: Record<string, string> }> {
    const now = Date.now();
    if (this.conn === undefined || now - this.conn.at > 60_000) {
      const init = (await this.kc.applyToFetchOptions({})) as RequestInit;
      // The client returns a Headers object (spreading it would drop the Authorization header).
      const headers: Record<string, string> = { Accept: "application/json" };
      (init.headers as unknown as Headers | undefined)?.forEach((v, k) => {
        headers[k] = v;
      });
      const agent = init.agent as { keepAlive?: boolean } | undefined;
      if (agent !== undefined && typeof agent === "object") agent.keepAlive = true;
      this.conn = { at: now, value: { agent: init.agent, headers } };
    }
    return this.conn.value;
  }

  /** Requests waiting for the rate limit or in flight. */
  get outstanding(): number {
    return this.queue.length + this.lowQueue.length + this.inFlight;
  }

  get requestCount(): number {
    return Object.values(this.requests).reduce((a, b) => a + b, 0);
  }

  /**
   * Waits for a token and an in-flight slot, in order. Low-priority requests (Events, the
   * controller's annotations) go only when no normal request is waiting or in flight, so a burst
   * of them never takes the tokens or slots the statuses need.
   */
  private slot(low: boolean): Promise<void> {
    return new Promise((resolve) => {
      (low ? this.lowQueue : this.queue).push(resolve);
      this.pump();
    });
  }

  private pump(): void {
    for (;;) {
      const low = this.queue.length === 0;
      if (this.inFlight >= this.maxInflight) return;
      if (low && (this.lowQueue.length === 0 || this.inFlightNormal > 0)) return;
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
      this.last = now;
      if (this.tokens < 1) {
        if (this.pumpTimer === undefined)
          this.pumpTimer = setTimeout(
            () => {
              this.pumpTimer = undefined;
              this.pump();
            },
            Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.qps)),
          );
        return;
      }
      this.tokens -= 1;
      this.inFlight++;
      if (!low) this.inFlightNormal++;
      (low ? this.lowQueue : this.queue).shift()?.();
    }
  }

  private release(low: boolean): void {
    this.inFlight--;
    if (!low) this.inFlightNormal--;
    this.pump();
  }

  /** One request; resolves with the parsed body, rejects with KubeError (or a network Error). */
  request<T = KubeObject>(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
    priority: "normal" | "low" = "normal",
  ): Promise<T> {
    return this.requestText<T>(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
      contentType,
      priority,
    );
  }

  /**
   * One request whose body is JSON text already. `discard`: the caller does not read the answer
   * (a successful one is not parsed; it resolves with undefined).
   */
  async requestText<T = KubeObject>(
    method: string,
    path: string,
    body: string | undefined,
    contentType = "application/json",
    priority: "normal" | "low" = "normal",
    discard = false,
  ): Promise<T> {
    await this.slot(priority === "low");
    this.requests[method] = (this.requests[method] ?? 0) + 1;
    try {
      const base = await this.connection();
      const init: RequestInit = { agent: base.agent, method };
      const headers: Record<string, string> = { ...base.headers };
      if (body !== undefined) {
        init.body = body;
        headers["Content-Type"] = contentType;
      }
      init.headers = headers;
      init.timeout = this.timeoutMs;
      const res = await fetch(this.server + path, init);
      const text = await res.text();
      if (discard && res.ok) return undefined as T;
      let parsed: unknown;
      try {
        parsed = text === "" ? {} : JSON.parse(text);
      } catch {
        parsed = { message: text.slice(0, 200) };
      }
      if (!res.ok) {
        const st = parsed as { reason?: string; message?: string };
        throw new KubeError(
          res.status,
          st.reason ?? res.statusText,
          `${method} ${path}: ${res.status} ${st.message ?? res.statusText}`,
        );
      }
      return parsed as T;
    } finally {
      this.release(priority === "low");
    }
  }

  get<T = KubeObject>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  /** Lists every page (limit/continue) of a collection. */
  async list(path: string, pageSize = 500): Promise<KubeList> {
    const items: KubeObject[] = [];
    let cont = "";
    for (;;) {
      const sep = path.includes("?") ? "&" : "?";
      const q = `${sep}limit=${pageSize}${cont ? `&continue=${encodeURIComponent(cont)}` : ""}`;
      const page = await this.get<KubeList>(path + q);
      items.push(...(page.items ?? []));
      if (!page.metadata?.continue)
        return { metadata: { resourceVersion: page.metadata?.resourceVersion ?? "" }, items };
      cont = page.metadata.continue;
    }
  }

  create<T = KubeObject>(path: string, obj: unknown, priority: "normal" | "low" = "normal"): Promise<T> {
    return this.request<T>("POST", path, obj, "application/json", priority);
  }

  replace<T = KubeObject>(path: string, obj: unknown): Promise<T> {
    return this.request<T>("PUT", path, obj);
  }

  /** RFC 7396 merge patch, with the content type the API server needs for it. */
  mergePatch<T = KubeObject>(
    path: string,
    patch: unknown,
    priority: "normal" | "low" = "normal",
  ): Promise<T> {
    return this.request<T>("PATCH", path, patch, "application/merge-patch+json", priority);
  }

  /** A merge patch whose body is JSON text already, and whose answer is not read. */
  async mergePatchText(path: string, json: string, priority: "normal" | "low" = "normal"): Promise<void> {
    await this.requestText<undefined>("PATCH", path, json, "application/merge-patch+json", priority, true);
  }

  delete(path: string): Promise<unknown> {
    return this.request("DELETE", path);
  }

  /**
   * Starts a watch: a GET with `watch=true` through the same transport and connection settings as
   * every other request (no rate limit: a watch is one long request). `onEvent` gets every
   * event, parsed from the stream line by line (src/k8s/watch-lines.ts), as client-node's
   * `Watch` reports them: a line that is not JSON is skipped, an answer other than 200 ends the
   * watch with an error carrying its `statusCode` (410: relist). `onDone` is called once when the
   * stream ends by itself (null) or fails (the error); not after the returned stop function.
   */
  async watch(
    path: string,
    query: Record<string, string>,
    onEvent: (e: WatchEvent) => void,
    onDone: (err: unknown) => void,
  ): Promise<() => void> {
    this.requests.WATCH = (this.requests.WATCH ?? 0) + 1;
    const url = new URL(this.server + path);
    url.searchParams.set("watch", "true");
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const ctl = new AbortController();
    let over = false;
    const finish = (err: unknown) => {
      if (over) return;
      over = true;
      ctl.abort();
      onDone(err);
    };
    const stop = () => {
      over = true;
      ctl.abort();
    };
    try {
      const base = await this.connection();
      const res = await fetch(url.toString(), {
        agent: base.agent,
        method: "GET",
        headers: base.headers,
        signal: ctl.signal as RequestInit["signal"],
      });
      if (res.status !== 200) {
        void res.text().catch(() => {});
        throw Object.assign(
          new Error(res.statusText || STATUS_CODES[res.status] || "Internal Server Error"),
          {
            statusCode: res.status,
          },
        );
      }
      void readWatch(res, onEvent).then(
        () => finish(null),
        (e: unknown) => finish(e),
      );
    } catch (e) {
      finish(e);
    }
    return stop;
  }
}

/** The native body of a response (the transport's Response is the runtime's), else its Node stream. */
function watchBody(res: FetchResponse): ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | null {
  const native = Object.getOwnPropertyDescriptor(Response.prototype, "body")?.get;
  if (native !== undefined && (res as unknown) instanceof Response)
    return native.call(res) as ReadableStream<Uint8Array> | null;
  return res.body as unknown as AsyncIterable<Uint8Array> | null;
}

/** Reads a watch stream to its end, reporting each event. */
async function readWatch(res: FetchResponse, onEvent: (e: WatchEvent) => void): Promise<void> {
  const framer = new LineFramer();
  const line = (text: string): void => {
    let data: { type?: unknown; object?: unknown };
    try {
      data = JSON.parse(text) as { type?: unknown; object?: unknown };
    } catch {
      return; // as client-node's Watch: a line that is not JSON is skipped
    }
    if (data === null || typeof data !== "object") return;
    onEvent({ type: data.type, object: data.object } as WatchEvent);
  };
  const body = watchBody(res);
  if (body === null) return;
  if (body instanceof ReadableStream) {
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      framer.push(value, line);
    }
  }
  for await (const chunk of body) framer.push(chunk, line);
}

/** Paths of the kinds vipd reads and writes. `ns` undefined: across all namespaces. */
export const PATHS = {
  services: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/services` : "/api/v1/services"),
  nodes: () => "/api/v1/nodes",
  namespaces: () => "/api/v1/namespaces",
  secrets: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/secrets` : "/api/v1/secrets"),
  endpointSlices: (version: "v1" | "v1beta1", ns?: string) =>
    ns
      ? `/apis/discovery.k8s.io/${version}/namespaces/${ns}/endpointslices`
      : `/apis/discovery.k8s.io/${version}/endpointslices`,
  leases: (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
  events: (ns: string) => `/apis/events.k8s.io/v1/namespaces/${ns}/events`,
  /** BGPPeer is read at its storage version v1beta2 (same fields vipd reads); the rest at v1beta1. */
  metallb: (plural: string, ns?: string) => {
    const v = plural === "bgppeers" ? "v1beta2" : "v1beta1";
    return ns ? `/apis/metallb.io/${v}/namespaces/${ns}/${plural}` : `/apis/metallb.io/${v}/${plural}`;
  },
} as const;

/** The metallb.io kinds vipd watches, by plural. */
export const METALLB_PLURALS = {
  ipaddresspools: "IPAddressPool",
  l2advertisements: "L2Advertisement",
  bgpadvertisements: "BGPAdvertisement",
  bgppeers: "BGPPeer",
  bfdprofiles: "BFDProfile",
  communities: "Community",
} as const;

export const objectKey = (o: KubeObject): string =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
