/**
 * A faithful in-process Kubernetes API server for the k8s tier and the benchmark: HTTPS on
 * 127.0.0.1 (Bun.serve with a test CA, so the client's TLS settings are exercised), bearer-token
 * auth, and the API machinery behaviour vipd depends on, as the real server does it:
 *
 * - one global resourceVersion; list (limit/continue) returns the collection's version;
 * - watch from a resourceVersion replays what happened since; older than the kept history →
 *   an ERROR event with a 410 Status; `allowWatchBookmarks` → periodic BOOKMARK events;
 *   `timeoutSeconds` ends the stream; no resourceVersion → synthetic ADDED for every object;
 * - create (409 AlreadyExists), PUT (409 Conflict on a stale resourceVersion), merge patch (415
 *   for a content type it cannot apply), JSON patch, delete;
 * - the status subresource: writes to the object ignore status, writes to /status change only it;
 * - 422 Invalid for a Service status whose ingress is not an IP, names that are not DNS-1123, and
 *   events.k8s.io Events without their required fields; 400 for a Lease or Event time that is
 *   not a MicroTime; 404 for a namespace that does not exist;
 * - Services get a clusterIP / clusterIPs / ipFamilies (dual-stack when asked) as the real
 *   allocator gives them.
 *
 * Test controls: `stop()`/`start()` (the server goes away and comes back on the same port),
 * `compact()` (forget history: the next watch from an old version gets 410), request counts.
 */

import { randomUUID } from "node:crypto";
import { parseIp } from "../../src/util/ip.ts";
import {
  type Change,
  clone,
  DNS1123,
  HttpError,
  jsonPatch,
  labelMatcher,
  MICRO,
  mergePatch,
  type Obj,
  type ResourceType,
  storeId,
  TYPES,
  type Watcher,
} from "./apimachinery.ts";
import type { Pki } from "./certs.ts";

export interface ApiServerOptions {
  pki: Pki;
  token: string;
  /** Period of BOOKMARK events on watches that allow them (default 1 s). */
  bookmarkMs?: number;
  /** Watch history kept (default 200,000 changes). */
  history?: number;
  dualStack?: boolean;
}

export class FakeApiServer {
  private server: ReturnType<typeof Bun.serve> | undefined;
  private rv = 1;
  private readonly stores = new Map<string, Map<string, Obj>>();
  private changes: Change[] = [];
  /** Changes before this version are forgotten (410 for watches from older versions). */
  private oldest = 1;
  private readonly watchers = new Set<Watcher>();
  private nextV4 = 10;
  private nextV6 = 10;
  port = 0;
  /** Requests served, by verb ("WATCH" for watches), and per status code. */
  readonly counts: Record<string, number> = {};
  readonly statuses: Record<number, number> = {};

  constructor(private readonly opts: ApiServerOptions) {
    for (const ns of ["default", "kube-system", "kube-public", "metallb-system"])
      this.put(TYPES.find((t) => t.plural === "namespaces") as ResourceType, {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: ns, labels: { "kubernetes.io/metadata.name": ns } },
        spec: { finalizers: ["kubernetes"] },
        status: { phase: "Active" },
      });
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  start(): void {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: this.port,
      tls: { cert: Bun.file(this.opts.pki.serverCert), key: Bun.file(this.opts.pki.serverKey) },
      idleTimeout: 0,
      fetch: (req) => this.handle(req),
    });
    this.port = this.server.port ?? 0;
  }

  /** The server goes away: listener closed, every watch stream cut. */
  async stop(): Promise<void> {
    for (const w of [...this.watchers]) w.close();
    this.watchers.clear();
    await this.server?.stop(true);
    this.server = undefined;
  }

  /** Forgets the watch history: watches from any version before now get 410. */
  compact(): void {
    this.changes = [];
    this.oldest = this.rv;
  }

  /** Sends ERROR 410 on every open watch (as etcd compaction does) and forgets history. */
  expireWatches(): void {
    this.compact();
    for (const w of [...this.watchers])
      w.send("ERROR", {
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        reason: "Expired",
        code: 410,
        message: "too old resource version",
      });
  }

  objects(group: string, plural: string): Obj[] {
    return [...(this.stores.get(`${group}/${plural}`)?.values() ?? [])].map(clone);
  }

  private type(group: string, version: string, plural: string): ResourceType {
    const t = TYPES.find((x) => x.group === group && x.version === version && x.plural === plural);
    if (!t)
      throw new HttpError(
        404,
        "NotFound",
        `the server could not find the requested resource (${group}/${version} ${plural})`,
      );
    return t;
  }

  private store(t: ResourceType): Map<string, Obj> {
    let s = this.stores.get(storeId(t));
    if (!s) {
      s = new Map();
      this.stores.set(storeId(t), s);
    }
    return s;
  }

  /** Stores an object (bumping its version) and tells the watchers. */
  private put(t: ResourceType, obj: Obj, type: Change["type"] = "ADDED"): Obj {
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    const key = `${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;
    if (type === "DELETED") this.store(t).delete(key);
    else this.store(t).set(key, obj);
    const change = { rv, store: storeId(t), type, obj: clone(obj) };
    this.changes.push(change);
    const max = this.opts.history ?? 200_000;
    if (this.changes.length > max) {
      const drop = this.changes.length - max;
      this.oldest = (this.changes[drop]?.rv ?? this.rv) - 1;
      this.changes.splice(0, drop);
    }
    for (const w of this.watchers)
      if (w.store === change.store && (w.ns === undefined || w.ns === obj.metadata.namespace))
        w.send(type, this.view(w.t, change.obj));
    return obj;
  }

  /** The object as served at the requested version. */
  private view(t: ResourceType, obj: Obj): Obj {
    return { ...obj, apiVersion: t.group ? `${t.group}/${t.version}` : t.version, kind: t.kind };
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const isWatch = url.searchParams.get("watch") === "true";
    const verb = isWatch ? "WATCH" : req.method;
    this.counts[verb] = (this.counts[verb] ?? 0) + 1;
    const res = await this.route(req, url, isWatch).catch((e: unknown) => {
      if (e instanceof HttpError) return this.status(e.code, e.reason, e.message);
      return this.status(500, "InternalError", String(e));
    });
    this.statuses[res.status] = (this.statuses[res.status] ?? 0) + 1;
    return res;
  }

  private status(code: number, reason: string, message: string): Response {
    return Response.json(
      { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code },
      { status: code },
    );
  }

  private async route(req: Request, url: URL, isWatch: boolean): Promise<Response> {
    if (req.headers.get("authorization") !== `Bearer ${this.opts.token}`)
      throw new HttpError(401, "Unauthorized", "Unauthorized");
    if (url.pathname.startsWith("/_test/")) return this.control(url);
    const segs = url.pathname.split("/").filter((s) => s !== "");
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === "api" && segs.length >= 2) {
      group = "";
      version = segs[1] as string;
      rest = segs.slice(2);
    } else if (segs[0] === "apis" && segs.length >= 3) {
      group = segs[1] as string;
      version = segs[2] as string;
      rest = segs.slice(3);
    } else throw new HttpError(404, "NotFound", "not found");
    let ns: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      ns = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub] = rest as [string, string | undefined, string | undefined];
    const t = this.type(group, version, plural ?? "");
    if (t.namespaced === false && ns !== undefined) throw new HttpError(404, "NotFound", "not namespaced");
    if (sub !== undefined && !(sub === "status" && t.status))
      throw new HttpError(404, "NotFound", `no subresource ${sub}`);
    if (name === undefined) {
      if (req.method === "GET") return isWatch ? this.watch(t, ns, url) : this.list(t, ns, url);
      if (req.method === "POST") return this.create(t, ns, await this.body(req));
      throw new HttpError(405, "MethodNotAllowed", req.method);
    }
    const key = `${t.namespaced ? (ns ?? "") : ""}/${name}`;
    const cur = this.store(t).get(key);
    if (req.method === "GET") {
      if (!cur) throw new HttpError(404, "NotFound", `${plural} "${name}" not found`);
      return Response.json(this.view(t, cur));
    }
    if (req.method === "DELETE") {
      if (!cur) throw new HttpError(404, "NotFound", `${plural} "${name}" not found`);
      this.put(t, clone(cur), "DELETED");
      return Response.json(this.view(t, cur));
    }
    if (!cur) throw new HttpError(404, "NotFound", `${plural} "${name}" not found`);
    let next: Obj;
    if (req.method === "PUT") {
      next = (await this.body(req)) as Obj;
      const rv = next.metadata?.resourceVersion;
      if (rv !== undefined && rv !== cur.metadata.resourceVersion)
        throw new HttpError(
          409,
          "Conflict",
          `Operation cannot be fulfilled on ${plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        );
    } else if (req.method === "PATCH") {
      const ct = (req.headers.get("content-type") ?? "").split(";")[0];
      const patch = await this.body(req);
      if (ct === "application/merge-patch+json" || ct === "application/strategic-merge-patch+json") {
        const prv = (patch as Obj).metadata?.resourceVersion;
        if (prv !== undefined && prv !== cur.metadata.resourceVersion)
          throw new HttpError(
            409,
            "Conflict",
            `Operation cannot be fulfilled on ${plural} "${name}": the object has been modified`,
          );
        next = mergePatch(cur, patch) as Obj;
      } else if (ct === "application/json-patch+json") next = jsonPatch(cur, patch) as Obj;
      else
        throw new HttpError(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
        );
    } else throw new HttpError(405, "MethodNotAllowed", req.method);
    next = clone(next);
    // Identity and bookkeeping are the server's.
    next.metadata = {
      ...next.metadata,
      name: cur.metadata.name,
      uid: cur.metadata.uid,
      creationTimestamp: cur.metadata.creationTimestamp,
    };
    if (t.namespaced) next.metadata.namespace = cur.metadata.namespace;
    if (t.status) {
      if (sub === "status") next = { ...cur, status: next.status };
      else next = { ...next, status: cur.status };
    }
    delete next.apiVersion;
    delete next.kind;
    this.validate(t, next);
    if (
      JSON.stringify(next) === JSON.stringify({ ...cur, apiVersion: undefined, kind: undefined }) ||
      this.same(cur, next)
    )
      return Response.json(this.view(t, cur));
    return Response.json(this.view(t, this.put(t, next, "MODIFIED")));
  }

  /**
   * Test controls, for the benchmark (which runs the server in its own process): create N
   * LoadBalancer Services in one go (as N creates would, watch events included), and count the
   * Services whose status holds an address.
   */
  private control(url: URL): Response {
    const services = TYPES.find((x) => x.plural === "services") as ResourceType;
    if (url.pathname === "/_test/create-services") {
      const n = Number(url.searchParams.get("n") ?? "0");
      const ns = url.searchParams.get("namespace") ?? "default";
      for (let i = 0; i < n; i++)
        this.create(services, ns, {
          metadata: { name: `svc-${i}` },
          spec: {
            type: "LoadBalancer",
            ports: [{ port: 80, protocol: "TCP" }],
            selector: { app: `svc-${i}` },
          },
        });
      return Response.json({ created: n });
    }
    if (url.pathname === "/_test/count-ingress") {
      let n = 0;
      for (const o of this.store(services).values())
        if (
          ((o.status as { loadBalancer?: { ingress?: unknown[] } } | undefined)?.loadBalancer?.ingress ?? [])
            .length > 0
        )
          n++;
      return Response.json({ withIngress: n, counts: this.counts });
    }
    throw new HttpError(404, "NotFound", url.pathname);
  }

  private same(a: Obj, b: Obj): boolean {
    const strip = (o: Obj) =>
      JSON.stringify({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
    return strip(a) === strip(b);
  }

  private async body(req: Request): Promise<unknown> {
    try {
      return JSON.parse(await req.text());
    } catch {
      throw new HttpError(400, "BadRequest", "the request body is not JSON");
    }
  }

  private validate(t: ResourceType, o: Obj): void {
    const name = o.metadata.name;
    if (typeof name !== "string" || !DNS1123.test(name) || name.length > 253)
      throw new HttpError(
        422,
        "Invalid",
        `${t.kind} "${String(name)}" is invalid: metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
      );
    if (t.kind === "Service") {
      const ing =
        (o.status as { loadBalancer?: { ingress?: { ip?: string }[] } } | undefined)?.loadBalancer?.ingress ??
        [];
      ing.forEach((i, n) => {
        if (i.ip !== undefined && parseIp(i.ip) === null)
          throw new HttpError(
            422,
            "Invalid",
            `Service "${name}" is invalid: status.loadBalancer.ingress[${n}].ip: Invalid value: "${i.ip}": must be a valid IP address`,
          );
      });
    }
    if (t.kind === "Lease") {
      const spec = (o.spec ?? {}) as Record<string, unknown>;
      for (const f of ["acquireTime", "renewTime"])
        if (spec[f] !== undefined && (typeof spec[f] !== "string" || !MICRO.test(spec[f] as string)))
          throw new HttpError(
            400,
            "BadRequest",
            `Lease in version "v1" cannot be handled as a Lease: v1.Lease.Spec: ${f}: parsing time "${String(spec[f])}" as MicroTime`,
          );
    }
    if (t.group === "events.k8s.io") {
      if (typeof o.eventTime !== "string" || !MICRO.test(o.eventTime))
        throw new HttpError(
          o.eventTime === undefined ? 422 : 400,
          o.eventTime === undefined ? "Invalid" : "BadRequest",
          `Event "${name}" is invalid: eventTime: Required value (a MicroTime)`,
        );
      for (const f of ["reportingController", "reportingInstance", "action", "reason"])
        if (typeof o[f] !== "string" || o[f] === "")
          throw new HttpError(422, "Invalid", `Event "${name}" is invalid: ${f}: Required value`);
      if (o.type !== "Normal" && o.type !== "Warning")
        throw new HttpError(
          422,
          "Invalid",
          `Event "${name}" is invalid: type: Unsupported value: "${String(o.type)}"`,
        );
    }
  }

  private create(t: ResourceType, ns: string | undefined, body: unknown): Response {
    const o = clone(body) as Obj;
    if (typeof o !== "object" || o === null || typeof o.metadata !== "object")
      throw new HttpError(400, "BadRequest", "no metadata");
    if (o.metadata.name === undefined && typeof o.metadata.generateName === "string")
      o.metadata.name = `${o.metadata.generateName}${randomUUID().slice(0, 5)}`;
    if (t.namespaced) {
      if (ns === undefined) throw new HttpError(405, "MethodNotAllowed", "create needs a namespace");
      if (o.metadata.namespace !== undefined && o.metadata.namespace !== ns)
        throw new HttpError(
          400,
          "BadRequest",
          "the namespace of the provided object does not match the namespace sent on the request",
        );
      if (!this.store(TYPES.find((x) => x.plural === "namespaces") as ResourceType).has(`/${ns}`))
        throw new HttpError(404, "NotFound", `namespaces "${ns}" not found`);
      o.metadata.namespace = ns;
    }
    const key = `${ns ?? ""}/${String(o.metadata.name)}`;
    if (this.store(t).has(key))
      throw new HttpError(409, "AlreadyExists", `${t.plural} "${String(o.metadata.name)}" already exists`);
    o.metadata.uid = randomUUID();
    o.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
    delete o.metadata.resourceVersion;
    delete o.apiVersion;
    delete o.kind;
    if (t.status && t.kind !== "Namespace" && t.kind !== "Node") delete o.status;
    if (t.kind === "Service") this.defaultService(o);
    if (t.kind === "Namespace") {
      o.metadata.labels = {
        ...(o.metadata.labels as Record<string, string>),
        "kubernetes.io/metadata.name": String(o.metadata.name),
      };
      o.status = { phase: "Active" };
    }
    this.validate(t, o);
    return Response.json(this.view(t, this.put(t, o)), { status: 201 });
  }

  private defaultService(o: Obj): void {
    o.spec ??= {};
    const spec = o.spec as Record<string, unknown>;
    spec.type ??= "ClusterIP";
    spec.sessionAffinity ??= "None";
    if (spec.type === "LoadBalancer" || spec.type === "NodePort") spec.externalTrafficPolicy ??= "Cluster";
    const policy = (spec.ipFamilyPolicy as string | undefined) ?? "SingleStack";
    let fams = (spec.ipFamilies as string[] | undefined) ?? [];
    if (fams.length === 0) fams = ["IPv4"];
    if (this.opts.dualStack && policy !== "SingleStack" && fams.length === 1)
      fams = [fams[0] as string, fams[0] === "IPv4" ? "IPv6" : "IPv4"];
    if (!this.opts.dualStack) fams = fams.filter((f) => f === "IPv4");
    if (policy === "RequireDualStack" && fams.length < 2)
      throw new HttpError(
        422,
        "Invalid",
        `Service "${String(o.metadata.name)}" is invalid: spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services`,
      );
    const ips = fams.map((f) => {
      const n = f === "IPv4" ? this.nextV4++ : this.nextV6++;
      return f === "IPv4" ? `10.96.${(n >> 8) & 255}.${n & 255}` : `fd00:96::${n.toString(16)}`;
    });
    spec.ipFamilies = fams;
    spec.ipFamilyPolicy = policy;
    spec.clusterIP = ips[0];
    spec.clusterIPs = ips;
    o.status = { loadBalancer: {} };
  }

  private list(t: ResourceType, ns: string | undefined, url: URL): Response {
    const sel = labelMatcher(url.searchParams.get("labelSelector"));
    const all = [...this.store(t).values()].filter(
      (o) => (ns === undefined || o.metadata.namespace === ns) && sel(o),
    );
    all.sort((a, b) =>
      String(a.metadata.namespace) + String(a.metadata.name) <
      String(b.metadata.namespace) + String(b.metadata.name)
        ? -1
        : 1,
    );
    const limit = Number(url.searchParams.get("limit") ?? "0");
    const cont = url.searchParams.get("continue");
    let start = 0;
    let rv = String(this.rv);
    if (cont) {
      const c = JSON.parse(Buffer.from(cont, "base64").toString()) as { start: number; rv: string };
      start = c.start;
      rv = c.rv;
    }
    const page = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const more = limit > 0 && start + limit < all.length;
    return Response.json({
      apiVersion: t.group ? `${t.group}/${t.version}` : t.version,
      kind: `${t.kind}List`,
      metadata: {
        resourceVersion: rv,
        ...(more
          ? { continue: Buffer.from(JSON.stringify({ start: start + limit, rv })).toString("base64") }
          : {}),
      },
      items: page.map((o) => this.view(t, o)),
    });
  }

  private watch(t: ResourceType, ns: string | undefined, url: URL): Response {
    const from = url.searchParams.get("resourceVersion") ?? "";
    const bookmarks = url.searchParams.get("allowWatchBookmarks") === "true";
    const timeout = Number(url.searchParams.get("timeoutSeconds") ?? "0");
    const enc = new TextEncoder();
    let ctl: ReadableStreamDefaultController<Uint8Array> | undefined;
    const timers: ReturnType<typeof setInterval>[] = [];
    let closed = false;
    const w: Watcher = {
      store: storeId(t),
      ns,
      t,
      send: (type, obj) => {
        if (closed) return;
        try {
          ctl?.enqueue(enc.encode(`${JSON.stringify({ type, object: obj })}\n`));
        } catch {
          w.close();
        }
      },
      close: () => {
        if (closed) return;
        closed = true;
        for (const x of timers) clearInterval(x);
        this.watchers.delete(w);
        try {
          ctl?.close();
        } catch {}
      },
    };
    const stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        ctl = c;
        if (from === "" || from === "0") {
          for (const o of this.store(t).values())
            if (ns === undefined || o.metadata.namespace === ns) w.send("ADDED", this.view(t, o));
        } else if (Number(from) < this.oldest) {
          w.send("ERROR", {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Failure",
            message: `too old resource version: ${from} (${this.oldest})`,
            reason: "Expired",
            code: 410,
          });
          w.close();
          return;
        } else {
          for (const ch of this.changes)
            if (
              ch.rv > Number(from) &&
              ch.store === w.store &&
              (ns === undefined || ch.obj.metadata.namespace === ns)
            )
              w.send(ch.type, this.view(t, ch.obj));
        }
        this.watchers.add(w);
        if (bookmarks)
          timers.push(
            setInterval(
              () =>
                w.send("BOOKMARK", {
                  kind: t.kind,
                  apiVersion: t.group ? `${t.group}/${t.version}` : t.version,
                  metadata: { resourceVersion: String(this.rv) },
                }),
              this.opts.bookmarkMs ?? 1000,
            ),
          );
        if (timeout > 0) timers.push(setInterval(() => w.close(), timeout * 1000));
      },
      cancel: () => w.close(),
    });
    return new Response(stream, {
      headers: { "Content-Type": "application/json", "Transfer-Encoding": "chunked" },
    });
  }
}
