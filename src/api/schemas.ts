/**
 * The zod schemas of every body the HTTP API sends or receives. They are the single source of
 * the OpenAPI 3.1 document (`/openapi.json`) and of the TypeScript types of the runtime
 * interface (`runtime.ts`), so the document cannot drift from the code.
 *
 * Counts that can exceed 2^53 (addresses in a /48 or /64 pool, 64-bit packet counters) are
 * decimal strings.
 */

import { z } from "@hono/zod-openapi";
import { DNS1123 } from "../config/common.ts";
import { parseIp } from "../util/ip.ts";

/** A non-negative integer written in decimal, of any size. */
export const DecimalString = z
  .string()
  .regex(/^(0|[1-9][0-9]*)$/)
  .openapi({
    description: "A non-negative integer in decimal (may exceed 2^53)",
    example: "18446744073709551616",
  });

export const ErrorBody = z
  .object({
    error: z
      .string()
      .openapi({ description: "Machine-readable reason (UpperCamelCase)", example: "Unauthorized" }),
    message: z.string().openapi({ description: "What went wrong, for a person" }),
  })
  .openapi("Error");

export const Problem = z
  .object({
    file: z.string().openapi({ description: "Source name; `<request>` for a pushed manifest set" }),
    line: z.number().int().nonnegative().openapi({ description: "1-based line; 0 when unknown" }),
    doc: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .openapi({ description: "0-based document index in the file" }),
    kind: z.string().optional().openapi({ description: "Kind of the offending object, when known" }),
    name: z.string().optional().openapi({ description: "metadata.name of the offending object, when known" }),
    field: z
      .string()
      .openapi({ description: "Dotted path of the field, e.g. spec.addresses[0]; - for a whole document" }),
    message: z.string(),
    pointer: z.string().openapi({
      description: "JSON pointer (RFC 6901) to the field within its document",
      example: "/spec/addresses/0",
    }),
  })
  .openapi("Problem");

export const InvalidConfigBody = ErrorBody.extend({
  problems: z.array(Problem).optional().openapi({
    description:
      "Present when error is InvalidConfig (at most 200, then one saying how many more) or a budget refusal (TooDeep, TooManyDocuments, TooManyNodes)",
  }),
  omitted: z
    .number()
    .int()
    .nonnegative()
    .optional()
    .openapi({ description: "Problems left out of the list" }),
}).openapi("InvalidConfig");

export const DriverHealth = z
  .object({ name: z.string(), healthy: z.boolean(), detail: z.string().optional() })
  .openapi("DriverHealth");

export const StatusSummary = z
  .object({
    node: z.string(),
    version: z.string(),
    startedAt: z.string().openapi({ description: "RFC 3339 time the process started" }),
    uptimeSeconds: z.number().nonnegative(),
    configGeneration: z.number().int().nonnegative().openapi({
      description: "Increments on every applied configuration; 0 before the first",
    }),
    ready: z.boolean().openapi({ description: "Configuration loaded (driver health is listed separately)" }),
    drivers: z.array(DriverHealth),
    pendingRestart: z.array(z.string()).optional().openapi({
      description:
        "Settings applied as configuration since this process started that take effect only after a restart",
    }),
  })
  .openapi("StatusSummary");

export const ServiceView = z
  .object({
    namespace: z.string(),
    name: z.string(),
    ips: z.array(z.string()).openapi({ description: "Assigned addresses; empty when none" }),
    pool: z.string().optional(),
    reason: z.string().optional().openapi({ description: "Why the service has no (or not all) addresses" }),
    warnings: z.array(z.string()),
  })
  .openapi("Service");

export const IpFamily = z.enum(["IPv4", "IPv6"]).openapi("IpFamily");

export const PoolFamilyUsage = z
  .object({ family: IpFamily, assigned: DecimalString, available: DecimalString })
  .openapi("PoolFamilyUsage");

export const PoolView = z
  .object({ name: z.string(), autoAssign: z.boolean(), families: z.array(PoolFamilyUsage) })
  .openapi("Pool");

export const L2View = z
  .object({
    ip: z.string().openapi({ description: "The VIP" }),
    node: z.string().openapi({ description: "The node that owns and answers for it" }),
    interface: z.string(),
    mac: z.string().openapi({ example: "02:00:00:00:00:01" }),
    handingOver: z.boolean().optional().openapi({
      description:
        "True for a short hold after this node lost the VIP to another live node: it keeps answering until the new owner has announced (make before break)",
    }),
  })
  .openapi("L2Announcement");

export const BgpState = z
  .enum(["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"])
  .openapi("BgpState");

export const BgpPeerView = z
  .object({
    name: z.string().optional(),
    address: z.string(),
    asn: z.number().int().min(0).max(4294967295),
    localAsn: z.number().int().min(0).max(4294967295).optional(),
    state: BgpState,
    uptimeSeconds: z.number().nonnegative().optional().openapi({ description: "Time in Established" }),
    prefixesSent: z.number().int().nonnegative(),
    prefixesReceived: z.number().int().nonnegative(),
    lastError: z.string().optional(),
  })
  .openapi("BgpPeer");

export const BfdState = z.enum(["AdminDown", "Down", "Init", "Up"]).openapi("BfdState");

export const BfdSessionView = z
  .object({
    peer: z.string(),
    local: z.string().optional(),
    interface: z.string().optional(),
    state: BfdState,
    diagnostic: z.string().optional(),
    detectTimeMs: z.number().nonnegative().optional(),
    uptimeSeconds: z.number().nonnegative().optional(),
  })
  .openapi("BfdSession");

export const XdpInterface = z
  .object({
    name: z.string(),
    mode: z.enum(["native", "generic", "offload", "none"]),
    programId: z.number().int().nonnegative().optional(),
    counters: z.record(z.string(), DecimalString).openapi({
      description: "Per-reason packet counters (e.g. arp_replied, passed_not_ours)",
    }),
  })
  .openapi("XdpInterface");

export const XdpView = z.object({ interfaces: z.array(XdpInterface) }).openapi("Xdp");

export const ConfigView = z
  .object({
    etag: z.string().openapi({ description: "Entity tag of this manifest set (also the ETag header)" }),
    yaml: z.string().openapi({ description: "The whole manifest set, multi-document YAML" }),
  })
  .openapi("Config");

export const ApplyResult = z
  .object({
    etag: z.string(),
    pendingRestart: z
      .array(z.string())
      .optional()
      .openapi({
        description:
          "With 202: settings (since this process started) that take effect only after vipd restarts",
        example: ["NodeSettings.spec.interfaces"],
      }),
  })
  .openapi("ApplyResult");

export const ValidateResult = z
  .object({
    valid: z.boolean(),
    problems: z.array(Problem).openapi({
      description:
        "At most 200, in source order; when there are more, a last one says how many were left out",
    }),
    omitted: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .openapi({ description: "Problems left out of the list (present when > 0)" }),
  })
  .openapi("ValidateResult");

export const Liveness = z.object({ status: z.literal("ok") }).openapi("Liveness");

export const Readiness = z.object({ ready: z.boolean(), reasons: z.array(z.string()) }).openapi("Readiness");

export const NotOwnerReason = z
  .enum([
    "NotAlive",
    "NotReady",
    "ExcludedByLabel",
    "NetworkUnavailable",
    "NodeSelectors",
    "NoLocalEndpoint",
    "Declined",
    "PassedOver",
    "LowerInOrder",
  ])
  .openapi("NotOwnerReason");

export const L2ElectionView = z
  .object({
    ip: z.string().openapi({ description: "The VIP" }),
    services: z.array(z.string()).openapi({ description: "Services (namespace/name) holding it" }),
    owner: z
      .string()
      .optional()
      .openapi({ description: "The node that answers for it; absent when none is eligible" }),
    candidates: z
      .array(z.string())
      .openapi({ description: "Eligible nodes in election order (preference weight, then sha256(node#ip))" }),
    notOwner: z
      .array(z.object({ node: z.string(), reason: NotOwnerReason, message: z.string() }))
      .openapi({ description: "Every other member, with why it is not the owner" }),
    lease: z
      .object({
        state: z.enum(["Held", "Acquiring", "Waiting"]),
        holder: z.string().optional(),
        until: z.string().optional(),
      })
      .optional()
      .openapi({
        description:
          "Kubernetes mode with --l2-lease-fencing, on the elected node: this node's claim on the VIP's " +
          "Lease (Waiting: who holds it, until when); it announces the VIP only while Held",
      }),
  })
  .openapi("L2Election");

export const ClusterMemberView = z
  .object({
    name: z.string(),
    self: z.boolean().openapi({ description: "This node" }),
    state: z.enum(["Unknown", "Rising", "Alive", "Dead"]).openapi({
      description: "Membership state as this node sees it (self: Alive)",
    }),
    ready: z.boolean().openapi({
      description: "Takes part in elections (said so in its heartbeats; self: not holding back)",
    }),
    holdReason: z
      .enum(["start", "pause", "partition"])
      .optional()
      .openapi({ description: "Self only, when not ready: why it holds back" }),
    lastHeardMsAgo: z.number().nonnegative().optional(),
    flaps: z.number().int().nonnegative().openapi({ description: "Times it went from Alive to Dead" }),
    declines: z.array(z.object({ ip: z.string(), to: z.string().optional() })).openapi({
      description: "VIPs it declines (forced failover)",
    }),
  })
  .openapi("ClusterMember");

export const FailoverRequest = z
  .object({
    ip: z
      .string()
      .min(1)
      .max(64)
      .refine((s) => parseIp(s) !== null, { message: "must be an IPv4 or IPv6 address" })
      .openapi({ description: "A VIP this node owns", example: "10.77.0.100" }),
    node: z
      .string()
      .min(1)
      .max(253)
      .regex(DNS1123, "must be a node name (lowercase RFC 1123: a-z, 0-9, '-', '.')")
      .optional()
      .openapi({ description: "Move it to this eligible node (default: the next candidate)" }),
    cancel: z
      .boolean()
      .optional()
      .openapi({ description: "Withdraw this node's earlier decline of the VIP instead" }),
  })
  .strict()
  .openapi("FailoverRequest");

export const FailoverResult = z
  .object({
    ip: z.string(),
    from: z.string().optional().openapi({ description: "The node that declined it (this one)" }),
    to: z.string().optional().openapi({ description: "The new owner as this node sees it at once" }),
    declined: z.array(z.string()).openapi({ description: "Every VIP this node now declines" }),
    cancelled: z
      .boolean()
      .optional()
      .openapi({ description: "With cancel: whether a decline was withdrawn" }),
  })
  .openapi("FailoverResult");

/** A page's metadata (only on a page that is not the last: see src/api/paging.ts). */
export const ListMeta = z
  .object({
    continue: z.string().openapi({ description: "Send as ?continue= for the next page (opaque)" }),
    remainingItemCount: z.number().int().nonnegative().openapi({ description: "Items after this page" }),
  })
  .openapi("ListMeta");

/**
 * `{ items: [...] }`: every list is wrapped, so fields can be added without breaking clients. A
 * page that is not the last also has `metadata` (`continue`, `remainingItemCount`).
 */
export function listOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({ items: z.array(item), metadata: ListMeta.optional() }).openapi(name);
}

export const ServiceList = listOf(ServiceView, "ServiceList");
export const PoolList = listOf(PoolView, "PoolList");
export const L2List = listOf(L2View, "L2AnnouncementList");
export const BgpPeerList = listOf(BgpPeerView, "BgpPeerList");
export const BfdSessionList = listOf(BfdSessionView, "BfdSessionList");
export const L2ElectionList = listOf(L2ElectionView, "L2ElectionList");
export const ClusterMemberList = listOf(ClusterMemberView, "ClusterMemberList");

export type ProblemT = z.infer<typeof Problem>;
export type StatusSummaryT = z.infer<typeof StatusSummary>;
export type ServiceViewT = z.infer<typeof ServiceView>;
export type PoolViewT = z.infer<typeof PoolView>;
export type L2ViewT = z.infer<typeof L2View>;
export type BgpPeerViewT = z.infer<typeof BgpPeerView>;
export type BfdSessionViewT = z.infer<typeof BfdSessionView>;
export type XdpViewT = z.infer<typeof XdpView>;
export type L2ElectionViewT = z.infer<typeof L2ElectionView>;
export type ClusterMemberViewT = z.infer<typeof ClusterMemberView>;
export type FailoverRequestT = z.infer<typeof FailoverRequest>;
export type FailoverResultT = z.infer<typeof FailoverResult>;
