/**
 * zod schemas for every manifest vipd reads: MetalLB's `metallb.io` objects (IPAddressPool,
 * L2Advertisement, BGPAdvertisement, BGPPeer v1beta1/v1beta2, BFDProfile, Community), the subset of
 * core/v1 Service and Namespace that vipd reads, and vipd's own NodeSettings.
 *
 * The schemas are the single source of truth: the loader validates with them, the CRDs in
 * deploy/crds are generated from them, and the API documents them. Defaults and ranges follow
 * MetalLB v0.14 (its `api/v1beta1`, `api/v1beta2` kubebuilder markers).
 *
 * Per-object checks that need only the object itself live here (refinements); checks across
 * objects live in ./validate.ts.
 */

import { z } from "zod";
import { parseIp, parseRange } from "../util/ip.ts";

// ---------------------------------------------------------------------------------------------
// Shared pieces

const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const Name = z
  .string()
  .min(1, { message: "must not be empty", abort: true })
  .max(253, { message: "must be at most 253 characters", abort: true })
  .regex(DNS1123, "must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')");

const LabelMap = z.record(z.string(), z.string());

/** A label or annotation key as the API server accepts it: an optional DNS prefix and "/", then a name. */
const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const MetaKey = z
  .string()
  .max(317)
  .regex(
    QUALIFIED_NAME,
    "must be a key such as \"app\" or \"example.com/app\": a name of 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  );
/** A label value as the API server accepts it (empty, or up to 63 characters of a name). */
const LabelValue = z
  .string()
  .regex(
    /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/,
    "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  );

export const ObjectMeta = z
  .object({
    name: Name,
    namespace: Name.optional(),
    labels: z.record(MetaKey, LabelValue).optional(),
    annotations: z.record(MetaKey, z.string()).optional(),
    // Present in objects exported from a cluster (`kubectl get -o yaml`); accepted and ignored.
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generation: z.number().optional(),
    creationTimestamp: z.union([z.string(), z.null()]).optional(),
    generateName: z.string().optional(),
    finalizers: z.array(z.string()).optional(),
    ownerReferences: z.array(z.record(z.string(), z.unknown())).optional(),
    managedFields: z.array(z.record(z.string(), z.unknown())).optional(),
    deletionTimestamp: z.string().optional(),
  })
  .strict();

export const SelectorRequirement = z
  .object({
    key: z.string().min(1, "must not be empty"),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string()).optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === "In" || r.operator === "NotIn") && n === 0)
      ctx.addIssue({
        code: "custom",
        path: ["values"],
        message: `must be non-empty for operator ${r.operator}`,
      });
    if ((r.operator === "Exists" || r.operator === "DoesNotExist") && n > 0)
      ctx.addIssue({ code: "custom", path: ["values"], message: `must be empty for operator ${r.operator}` });
  });

export const LabelSelector = z
  .object({
    matchLabels: LabelMap.optional(),
    matchExpressions: z.array(SelectorRequirement).optional(),
  })
  .strict();

const uint32 = z.number().int("must be an integer").min(0).max(4294967295);
const asn = z
  .number()
  .int("must be an integer")
  .min(1, "must be an AS number from 1 to 4294967295")
  .max(4294967295);

/** Go `time.ParseDuration` syntax as used by metav1.Duration ("90s", "1m30s", "500ms"). */
const DURATION = /^(0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$/;
export const Duration = z.string().regex(DURATION, 'must be a duration such as "90s", "1m30s" or "500ms"');

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds in a Go duration string (already validated by `Duration`). */
export function durationMs(s: string): number {
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
    total += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  return total;
}

const apiVersion = <const V extends string>(...versions: [V, ...V[]]) =>
  z.enum(versions, { error: () => `must be one of ${versions.join(", ")}` });

// ---------------------------------------------------------------------------------------------
// metallb.io objects

const AddressEntry = z.string().superRefine((s, ctx) => {
  const r = parseRange(s);
  if (!r.ok) ctx.addIssue({ code: "custom", message: r.error });
});

export const ServiceAllocation = z
  .object({
    priority: z.number().int("must be an integer").optional(),
    namespaces: z.array(Name).optional(),
    namespaceSelectors: z.array(LabelSelector).optional(),
    serviceSelectors: z.array(LabelSelector).optional(),
  })
  .strict();

export const IPAddressPoolSpec = z
  .object({
    addresses: z.array(AddressEntry).min(1, "must list at least one CIDR, range or address"),
    autoAssign: z.boolean().default(true),
    avoidBuggyIPs: z.boolean().default(false),
    serviceAllocation: ServiceAllocation.optional(),
  })
  .strict();

/** Status is written by the controller; accepted in input (exported objects) and ignored. */
const AnyStatus = z.record(z.string(), z.unknown()).optional();

export const IPAddressPool = z
  .object({
    apiVersion: apiVersion("metallb.io/v1beta1"),
    kind: z.literal("IPAddressPool"),
    metadata: ObjectMeta,
    spec: IPAddressPoolSpec,
    status: AnyStatus,
  })
  .strict();

export const PreferredNodeSelector = z
  .object({
    weight: z.number().int("must be an integer").min(1).max(100),
    preference: LabelSelector,
  })
  .strict();

export const L2AdvertisementSpec = z
  .object({
    ipAddressPools: z.array(Name).optional(),
    ipAddressPoolSelectors: z.array(LabelSelector).optional(),
    nodeSelectors: z.array(LabelSelector).optional(),
    interfaces: z
      .array(z.string().regex(/^[^\s/]{1,15}$/, "must be a network interface name (1-15 characters, no '/')"))
      .optional(),
    serviceSelectors: z.array(LabelSelector).optional(),
    preferredNodeSelectors: z.array(PreferredNodeSelector).optional(),
  })
  .strict();

export const L2Advertisement = z
  .object({
    apiVersion: apiVersion("metallb.io/v1beta1"),
    kind: z.literal("L2Advertisement"),
    metadata: ObjectMeta,
    spec: L2AdvertisementSpec.default({}),
    status: AnyStatus,
  })
  .strict();

const STD_COMMUNITY = /^(\d{1,5}):(\d{1,5})$/;
const LARGE_COMMUNITY = /^large:(\d{1,10}):(\d{1,10}):(\d{1,10})$/;

/** A standard (`a:b`, 16 bits each) or large (`large:a:b:c`, 32 bits each) community literal. */
export function parseCommunity(s: string): { kind: "standard" | "large"; parts: number[] } | null {
  const std = STD_COMMUNITY.exec(s);
  if (std) {
    const parts = [Number(std[1]), Number(std[2])];
    return parts.every((p) => p <= 0xffff) ? { kind: "standard", parts } : null;
  }
  const large = LARGE_COMMUNITY.exec(s);
  if (large) {
    const parts = [Number(large[1]), Number(large[2]), Number(large[3])];
    return parts.every((p) => p <= 0xffffffff) ? { kind: "large", parts } : null;
  }
  return null;
}

/** A community literal, or the name of an alias declared in a Community object (checked later). */
const CommunityRef = z.string().superRefine((s, ctx) => {
  if (/^\d/.test(s) || s.startsWith("large:")) {
    if (parseCommunity(s) === null)
      ctx.addIssue({
        code: "custom",
        message: `"${s}" is not a community: use "a:b" (16-bit values) or "large:a:b:c" (32-bit values)`,
      });
  } else if (!/^[A-Za-z][-A-Za-z0-9_.]*$/.test(s)) {
    ctx.addIssue({ code: "custom", message: `"${s}" is neither a community value nor an alias name` });
  }
});

export const BGPAdvertisementSpec = z
  .object({
    aggregationLength: z.number().int("must be an integer").min(0).max(32).default(32),
    aggregationLengthV6: z.number().int("must be an integer").min(0).max(128).default(128),
    localPref: uint32.optional(),
    communities: z.array(CommunityRef).optional(),
    ipAddressPools: z.array(Name).optional(),
    ipAddressPoolSelectors: z.array(LabelSelector).optional(),
    nodeSelectors: z.array(LabelSelector).optional(),
    peers: z.array(Name).optional(),
    serviceSelectors: z.array(LabelSelector).optional(),
  })
  .strict();

export const BGPAdvertisement = z
  .object({
    apiVersion: apiVersion("metallb.io/v1beta1"),
    kind: z.literal("BGPAdvertisement"),
    metadata: ObjectMeta,
    spec: BGPAdvertisementSpec.default({ aggregationLength: 32, aggregationLengthV6: 128 }),
    status: AnyStatus,
  })
  .strict();

export const CommunitySpec = z
  .object({
    communities: z
      .array(
        z
          .object({
            name: z
              .string()
              .regex(/^[A-Za-z][-A-Za-z0-9_.]*$/, "must start with a letter (letters, digits, - _ .)"),
            value: z.string().refine((v) => parseCommunity(v) !== null, {
              message: 'must be "a:b" (16-bit values) or "large:a:b:c" (32-bit values)',
            }),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

export const Community = z
  .object({
    apiVersion: apiVersion("metallb.io/v1beta1"),
    kind: z.literal("Community"),
    metadata: ObjectMeta,
    spec: CommunitySpec,
    status: AnyStatus,
  })
  .strict();

const IpString = z.string().refine((s) => parseIp(s) !== null, { message: "must be an IP address" });

export const SecretReference = z.object({ name: Name, namespace: Name.optional() }).strict();

export const BGPPeerSpec = z
  .object({
    myASN: asn,
    peerASN: asn.optional(),
    dynamicASN: z.enum(["internal", "external"]).optional(),
    peerAddress: IpString.optional(),
    interface: z
      .string()
      .regex(/^[^\s/]{1,15}$/, "must be a network interface name")
      .optional(),
    sourceAddress: IpString.optional(),
    peerPort: z.number().int("must be an integer").min(1).max(16384).default(179),
    holdTime: Duration.optional(),
    keepaliveTime: Duration.optional(),
    connectTime: Duration.optional(),
    routerID: z
      .string()
      .refine((s) => parseIp(s)?.family === 4, { message: "must be an IPv4 address" })
      .optional(),
    nodeSelectors: z.array(LabelSelector).optional(),
    password: z.string().max(80, "must be at most 80 characters (TCP-MD5 key)").optional(),
    passwordSecret: SecretReference.optional(),
    bfdProfile: Name.optional(),
    enableGracefulRestart: z.boolean().optional(),
    ebgpMultiHop: z.boolean().optional(),
    vrf: z.string().optional(),
    disableMP: z.boolean().optional(),
    dualStackAddressFamily: z.boolean().optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.peerASN !== undefined && s.dynamicASN !== undefined)
      ctx.addIssue({ code: "custom", path: ["dynamicASN"], message: "cannot be set together with peerASN" });
    if (s.peerASN === undefined && s.dynamicASN === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["peerASN"],
        message: "one of peerASN or dynamicASN is required",
      });
    if (s.peerAddress !== undefined && s.interface !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["interface"],
        message: "cannot be set together with peerAddress",
      });
    if (s.peerAddress === undefined && s.interface === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["peerAddress"],
        message: "one of peerAddress or interface is required",
      });
    if (s.password !== undefined && s.passwordSecret !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["passwordSecret"],
        message: "cannot be set together with password",
      });
    if (
      s.peerAddress &&
      s.sourceAddress &&
      parseIp(s.peerAddress)?.family !== parseIp(s.sourceAddress)?.family
    )
      ctx.addIssue({
        code: "custom",
        path: ["sourceAddress"],
        message: "must be of the same IP family as peerAddress",
      });
    const hold = s.holdTime !== undefined && DURATION.test(s.holdTime) ? durationMs(s.holdTime) : undefined;
    const keep =
      s.keepaliveTime !== undefined && DURATION.test(s.keepaliveTime)
        ? durationMs(s.keepaliveTime)
        : undefined;
    if (hold !== undefined && hold !== 0 && hold < 3000)
      ctx.addIssue({
        code: "custom",
        path: ["holdTime"],
        message: "must be 0 or at least 3s (RFC 4271 §4.2)",
      });
    if (hold !== undefined && hold !== 0 && keep !== undefined && keep > hold)
      ctx.addIssue({ code: "custom", path: ["keepaliveTime"], message: "must not be greater than holdTime" });
    if (hold === 0 && keep !== undefined && keep !== 0)
      ctx.addIssue({ code: "custom", path: ["keepaliveTime"], message: "must be 0 when holdTime is 0" });
    if (s.ebgpMultiHop && s.peerASN !== undefined && s.peerASN === s.myASN)
      ctx.addIssue({
        code: "custom",
        path: ["ebgpMultiHop"],
        message: "cannot be set for an iBGP peer (myASN = peerASN)",
      });
    if (s.ebgpMultiHop && s.dynamicASN === "internal")
      ctx.addIssue({
        code: "custom",
        path: ["ebgpMultiHop"],
        message: 'cannot be set with dynamicASN "internal"',
      });
  });

export const BGPPeer = z
  .object({
    apiVersion: apiVersion("metallb.io/v1beta2", "metallb.io/v1beta1"),
    kind: z.literal("BGPPeer"),
    metadata: ObjectMeta,
    spec: BGPPeerSpec,
    status: AnyStatus,
  })
  .strict();

const ms = (min: number, max: number, def: number) =>
  z
    .number({ error: "must be a number of milliseconds" })
    .int("must be a whole number of milliseconds")
    .min(min, `must be at least ${min} ms`)
    .max(max, `must be at most ${max} ms`)
    .default(def);

export const BFDProfileSpec = z
  .object({
    receiveInterval: ms(10, 60000, 300),
    transmitInterval: ms(10, 60000, 300),
    detectMultiplier: z.number().int("must be an integer").min(2).max(255).default(3),
    echoInterval: ms(10, 60000, 50),
    echoMode: z.boolean().default(false),
    passiveMode: z.boolean().default(false),
    minimumTtl: z.number().int("must be an integer").min(1).max(254).default(254),
  })
  .strict();

export const BFDProfile = z
  .object({
    apiVersion: apiVersion("metallb.io/v1beta1"),
    kind: z.literal("BFDProfile"),
    metadata: ObjectMeta,
    spec: BFDProfileSpec.default({
      receiveInterval: 300,
      transmitInterval: 300,
      detectMultiplier: 3,
      echoInterval: 50,
      echoMode: false,
      passiveMode: false,
      minimumTtl: 254,
    }),
    status: AnyStatus,
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// core/v1: the parts of Service and Namespace that vipd reads

export const ServicePort = z
  .object({
    name: z.string().optional(),
    port: z.number().int("must be an integer").min(1).max(65535),
    protocol: z.enum(["TCP", "UDP", "SCTP"]).default("TCP"),
    targetPort: z.union([z.number().int().min(1).max(65535), z.string().min(1)]).optional(),
    nodePort: z.number().int().min(1).max(65535).optional(),
    appProtocol: z.string().optional(),
  })
  .strict();

export const ServiceSpec = z
  .object({
    type: z.enum(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]).default("ClusterIP"),
    ports: z.array(ServicePort).optional(),
    selector: LabelMap.optional(),
    loadBalancerIP: IpString.optional(),
    loadBalancerClass: z.string().min(1).optional(),
    ipFamilies: z
      .array(z.enum(["IPv4", "IPv6"]))
      .max(2, "must list at most two families")
      .optional(),
    ipFamilyPolicy: z.enum(["SingleStack", "PreferDualStack", "RequireDualStack"]).optional(),
    externalTrafficPolicy: z.enum(["Cluster", "Local"]).default("Cluster"),
    clusterIP: z.string().optional(),
    clusterIPs: z.array(z.string()).optional(),
    // Accepted because real Services carry them; vipd does not act on them.
    internalTrafficPolicy: z.enum(["Cluster", "Local"]).optional(),
    sessionAffinity: z.enum(["None", "ClientIP"]).optional(),
    sessionAffinityConfig: z.record(z.string(), z.unknown()).optional(),
    healthCheckNodePort: z.number().int().optional(),
    allocateLoadBalancerNodePorts: z.boolean().optional(),
    publishNotReadyAddresses: z.boolean().optional(),
    externalIPs: z.array(z.string()).optional(),
    externalName: z.string().optional(),
    loadBalancerSourceRanges: z.array(z.string()).optional(),
    trafficDistribution: z.string().optional(),
  })
  .strict();

export const LoadBalancerIngress = z
  .object({
    ip: z.string().optional(),
    hostname: z.string().optional(),
    ipMode: z.enum(["VIP", "Proxy"]).optional(),
    ports: z.array(z.record(z.string(), z.unknown())).optional(),
  })
  .strict();

export const ServiceStatus = z
  .object({
    loadBalancer: z
      .object({ ingress: z.array(LoadBalancerIngress).optional() })
      .strict()
      .optional(),
    conditions: z.array(z.record(z.string(), z.unknown())).optional(),
  })
  .strict();

export const Service = z
  .object({
    apiVersion: apiVersion("v1"),
    kind: z.literal("Service"),
    metadata: ObjectMeta,
    spec: ServiceSpec,
    status: ServiceStatus.optional(),
  })
  .strict();

export const Namespace = z
  .object({
    apiVersion: apiVersion("v1"),
    kind: z.literal("Namespace"),
    metadata: ObjectMeta,
    spec: z.record(z.string(), z.unknown()).optional(),
    status: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

// ---------------------------------------------------------------------------------------------
// vipd's own: NodeSettings

export const ApiToken = z
  .object({
    name: z.string().min(1),
    role: z.enum(["admin", "read"]),
    /** `sha256:<64 hex>` of the bearer token; the token itself is never stored. */
    hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be "sha256:" followed by 64 lowercase hex digits'),
  })
  .strict();

export const NodeSettingsSpec = z
  .object({
    nodeName: Name.optional(),
    labels: LabelMap.default({}),
    interfaces: z.array(z.string().regex(/^[^\s/]{1,15}$/, "must be a network interface name")).default([]),
    api: z
      .object({
        listen: z
          .string()
          .regex(/^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/, "must be HOST:PORT")
          .default("127.0.0.1:7473"),
        tls: z
          .object({
            certFile: z.string().min(1),
            keyFile: z.string().min(1),
            clientCAFile: z.string().min(1).optional(),
          })
          .strict()
          .optional(),
        tokens: z.array(ApiToken).default([]),
        metricsOpen: z.boolean().default(true),
      })
      .strict()
      .default({ listen: "127.0.0.1:7473", tokens: [], metricsOpen: true }),
    /** Install each owned VIP as a local address so services on this node receive its traffic. */
    localDelivery: z.boolean().default(false),
    /** Handle only Services with this loadBalancerClass (unset: classless Services). */
    loadBalancerClass: z.string().min(1).optional(),
    /**
     * The other vipd nodes of this site (appliance mode), for the per-VIP layer-2 election. This
     * node is always a member; with no members listed it owns every VIP it is eligible for.
     */
    members: z
      .array(
        z
          .object({
            name: Name,
            labels: LabelMap.default({}),
            /** Where this member's heartbeats are sent (needed with `cluster.keyFile`). */
            address: IpString.optional(),
          })
          .strict(),
      )
      .default([]),
    /**
     * Live membership among `members`: authenticated heartbeats (HMAC-SHA256 with the key in
     * keyFile) every intervalMs; a member silent for deadAfterMs is dead; a returning one must be
     * heard for riseMs before it counts again. Without keyFile, every listed member counts as alive.
     */
    cluster: z
      .object({
        keyFile: z.string().min(1).optional(),
        port: z.number().int().min(1).max(65535).default(7946),
        intervalMs: z.number().int().min(10).max(10_000).default(50),
        deadAfterMs: z.number().int().min(30).max(60_000).default(200),
        riseMs: z.number().int().min(0).max(600_000).default(1000),
      })
      .strict()
      .default({ port: 7946, intervalMs: 50, deadAfterMs: 200, riseMs: 1000 }),
    /** The XDP responder on `interfaces`. */
    xdp: z
      .object({
        mode: z.enum(["auto", "native", "generic"]).default("auto"),
        /**
         * Replies stop this long after vipd stops refreshing its liveness stamp (0: never).
         * Default: 30 s alone (covers a restart), 2 × cluster.deadAfterMs with live membership
         * (a dead or stopped owner must stop answering about when the others take over).
         */
        livenessWindowMs: z.number().int().min(0).max(3_600_000).optional(),
      })
      .strict()
      .default({ mode: "auto" }),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.cluster.deadAfterMs < 2 * s.cluster.intervalMs)
      ctx.addIssue({
        code: "custom",
        path: ["cluster", "deadAfterMs"],
        message: `must be at least twice cluster.intervalMs (${2 * s.cluster.intervalMs})`,
      });
    if (s.cluster.keyFile !== undefined)
      s.members.forEach((m, i) => {
        if (m.address === undefined && m.name !== s.nodeName)
          ctx.addIssue({
            code: "custom",
            path: ["members", i, "address"],
            message: "is required when cluster.keyFile is set (heartbeats are sent there)",
          });
      });
  });

export const NodeSettings = z
  .object({
    apiVersion: apiVersion("vipd.io/v1alpha1"),
    kind: z.literal("NodeSettings"),
    metadata: ObjectMeta,
    spec: NodeSettingsSpec.default({
      labels: {},
      interfaces: [],
      api: { listen: "127.0.0.1:7473", tokens: [], metricsOpen: true },
      localDelivery: false,
      members: [],
      cluster: { port: 7946, intervalMs: 50, deadAfterMs: 200, riseMs: 1000 },
      xdp: { mode: "auto" },
    }),
  })
  .strict();

// ---------------------------------------------------------------------------------------------

/** Every kind vipd reads, by `kind`. */
export const SCHEMAS = {
  IPAddressPool,
  L2Advertisement,
  BGPAdvertisement,
  BGPPeer,
  BFDProfile,
  Community,
  Service,
  Namespace,
  NodeSettings,
} as const;

export type Kind = keyof typeof SCHEMAS;
export const KINDS = Object.keys(SCHEMAS) as Kind[];

export type IPAddressPool = z.infer<typeof IPAddressPool>;
export type L2Advertisement = z.infer<typeof L2Advertisement>;
export type BGPAdvertisement = z.infer<typeof BGPAdvertisement>;
export type BGPPeer = z.infer<typeof BGPPeer>;
export type BFDProfile = z.infer<typeof BFDProfile>;
export type Community = z.infer<typeof Community>;
export type Service = z.infer<typeof Service>;
export type Namespace = z.infer<typeof Namespace>;
export type NodeSettings = z.infer<typeof NodeSettings>;
export type LabelSelectorT = z.infer<typeof LabelSelector>;

export type AnyObject =
  | IPAddressPool
  | L2Advertisement
  | BGPAdvertisement
  | BGPPeer
  | BFDProfile
  | Community
  | Service
  | Namespace
  | NodeSettings;
