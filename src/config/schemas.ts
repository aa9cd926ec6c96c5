/**
 * zod schemas for every manifest vipd reads: MetalLB's `metallb.io` objects (IPAddressPool,
 * L2Advertisement, BGPAdvertisement, BGPPeer v1beta1/v1beta2, BFDProfile, Community), and the table
 * of every kind vipd reads. The subset of core/v1 Service and Namespace is in ./core.ts, vipd's own
 * NodeSettings in ./node-settings.ts, and the pieces all kinds share in ./common.ts.
 *
 * The schemas are the single source of truth: the loader validates with them, the CRDs in
 * deploy/crds are generated from them, and the API documents them. Defaults and ranges follow
 * MetalLB v0.14 (its `api/v1beta1`, `api/v1beta2` kubebuilder markers).
 *
 * Per-object checks that need only the object itself live here (refinements): among them
 * MetalLB's "duplicate definition" checks (internal/config/config.go) and its CRDs' CEL rules,
 * which the generated CRDs also carry as x-kubernetes-validations. Checks across objects live in
 * ./validate.ts.
 */

import { z } from "zod";
import { parseIp, parseRange } from "../util/ip.ts";
import {
  apiVersion,
  asn,
  DNS1123,
  DURATION,
  Duration,
  durationMs,
  IpString,
  LabelSelector,
  Name,
  ObjectMeta,
  uint32,
} from "./common.ts";
import { Namespace, Service } from "./core.ts";
import { NodeSettings } from "./node-settings.ts";
import { requirementKey, selectorKey } from "./selector.ts";

export { Duration, durationMs, LabelSelector, Name, ObjectMeta, SelectorRequirement } from "./common.ts";
export { LoadBalancerIngress, Namespace, Service, ServicePort, ServiceSpec, ServiceStatus } from "./core.ts";
export { ApiToken, NodeSettings, NodeSettingsSpec } from "./node-settings.ts";

// ---------------------------------------------------------------------------------------------
// MetalLB's "duplicate definition" checks (internal/config/config.go: validateDuplicate,
// validateLabelSelectorDuplicate): a list may not name the same thing twice, a selector list may
// not hold the same selector twice, nor a selector the same match expression or value twice.

type Path = (string | number)[];
type Sel = z.infer<typeof LabelSelector>;

/** Reports every repeated item of a list of names or values, at the repeat. */
function uniqueItems(ctx: z.RefinementCtx, items: readonly string[] | undefined, path: Path, what: string) {
  const first = new Map<string, number>();
  items?.forEach((v, i) => {
    const j = first.get(v);
    if (j === undefined) first.set(v, i);
    else
      ctx.addIssue({
        code: "custom",
        path: [...path, i],
        message: `duplicate definition of ${what} "${v}" (also at [${j}]); list it once`,
      });
  });
}

/** Reports repeated selectors in a list, repeated match expressions, and repeated values. */
function uniqueSelectors(ctx: z.RefinementCtx, sels: readonly Sel[] | undefined, path: Path, what: string) {
  const first = new Map<string, number>();
  sels?.forEach((sel, i) => {
    const exprs = new Map<string, number>();
    (sel.matchExpressions ?? []).forEach((e, k) => {
      const at = [...path, i, "matchExpressions", k];
      uniqueItems(ctx, e.values, [...at, "values"], "match expression value");
      const key = requirementKey(e);
      const j = exprs.get(key);
      if (j === undefined) exprs.set(key, k);
      else
        ctx.addIssue({
          code: "custom",
          path: at,
          message: `duplicate definition of match expressions (the same as matchExpressions[${j}]); keep one`,
        });
    });
    const key = selectorKey(sel);
    const j = first.get(key);
    if (j === undefined) first.set(key, i);
    else
      ctx.addIssue({
        code: "custom",
        path: [...path, i],
        message: `duplicate definition of ${what} (the same selector as [${j}]); keep one`,
      });
  });
}

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
  .strict()
  .superRefine((s, ctx) => {
    uniqueItems(ctx, s.namespaces, ["namespaces"], "namespaces");
    uniqueSelectors(ctx, s.namespaceSelectors, ["namespaceSelectors"], "namespaceSelectors");
    uniqueSelectors(ctx, s.serviceSelectors, ["serviceSelectors"], "serviceSelectors");
  });

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
  .strict()
  .superRefine((s, ctx) => {
    uniqueItems(ctx, s.ipAddressPools, ["ipAddressPools"], "ipAddressPools");
    uniqueSelectors(ctx, s.ipAddressPoolSelectors, ["ipAddressPoolSelectors"], "ipAddressPoolSelectors");
    uniqueSelectors(ctx, s.nodeSelectors, ["nodeSelectors"], "nodeSelectors");
    uniqueSelectors(ctx, s.serviceSelectors, ["serviceSelectors"], "serviceSelectors");
  });

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

/** MetalLB's CRD rule (x-kubernetes-validations on BGPAdvertisement.spec), carried into ours. */
const SELECTORS_WITHOUT_AGGREGATION =
  "!has(self.serviceSelectors) || self.serviceSelectors.size() == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))";

export const BGPAdvertisementSpec = z
  .object({
    // MetalLB's CRD: minimum 1 (IPv4), no minimum for IPv6.
    aggregationLength: z.number().int("must be an integer").min(1).max(32).default(32),
    aggregationLengthV6: z.number().int("must be an integer").min(0).max(128).default(128),
    localPref: uint32.optional(),
    communities: z.array(CommunityRef).optional(),
    ipAddressPools: z.array(Name).optional(),
    ipAddressPoolSelectors: z.array(LabelSelector).optional(),
    nodeSelectors: z.array(LabelSelector).optional(),
    peers: z.array(Name).optional(),
    serviceSelectors: z.array(LabelSelector).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    uniqueItems(ctx, s.ipAddressPools, ["ipAddressPools"], "ipAddressPools");
    uniqueItems(ctx, s.communities, ["communities"], "community");
    uniqueItems(ctx, s.peers, ["peers"], "peers");
    uniqueSelectors(ctx, s.ipAddressPoolSelectors, ["ipAddressPoolSelectors"], "ipAddressPoolSelectors");
    uniqueSelectors(ctx, s.nodeSelectors, ["nodeSelectors"], "nodeSelectors");
    uniqueSelectors(ctx, s.serviceSelectors, ["serviceSelectors"], "serviceSelectors");
    // An aggregate covers every Service of the block, not only those the selectors choose.
    if ((s.serviceSelectors?.length ?? 0) > 0) {
      if (s.aggregationLength !== 32)
        ctx.addIssue({
          code: "custom",
          path: ["aggregationLength"],
          message:
            "serviceSelectors and aggregationLength are mutually exclusive: an aggregate would cover Services the selectors do not choose; keep 32 or use another BGPAdvertisement",
        });
      if (s.aggregationLengthV6 !== 128)
        ctx.addIssue({
          code: "custom",
          path: ["aggregationLengthV6"],
          message:
            "serviceSelectors and aggregationLengthV6 are mutually exclusive: an aggregate would cover Services the selectors do not choose; keep 128 or use another BGPAdvertisement",
        });
    }
  })
  .meta({
    "x-kubernetes-validations": [
      {
        rule: SELECTORS_WITHOUT_AGGREGATION,
        message: "serviceSelectors and non-default aggregation lengths are mutually exclusive",
      },
    ],
  });

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

/**
 * corev1.SecretReference. MetalLB reads a secret only when `name` is not empty, and its own
 * ConfigMap converter writes `passwordSecret: {}`: a reference without a name is no reference.
 */
export const SecretReference = z
  .object({
    name: z
      .string()
      .max(253, "must be at most 253 characters")
      .refine((n) => n === "" || DNS1123.test(n), "must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')")
      .optional(),
    namespace: Name.optional(),
  })
  .strict();

/** MetalLB's CRD rules on connectTime (x-kubernetes-validations), carried into ours. */
const CONNECT_TIME_RULES = [
  {
    rule: "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535",
    message: "connect time should be between 1 seconds to 65535",
  },
  {
    rule: "duration(self).getMilliseconds() % 1000 == 0",
    message: "connect time should contain a whole number of seconds",
  },
];

export const BGPPeerSpec = z
  .object({
    myASN: asn,
    // 0 is "not set", as in MetalLB (its CRD allows 0; config.go reads 0 as no peer ASN).
    peerASN: uint32.optional(),
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
    connectTime: Duration.meta({ "x-kubernetes-validations": CONNECT_TIME_RULES }).optional(),
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
    // v1beta2: the AS this session presents to the peer instead of myASN (FRR's
    // `neighbor X local-as ASN no-prepend replace-as`, which MetalLB configures from it). 0 = unset.
    localASN: uint32.optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const s = { ...spec, peerASN: spec.peerASN === 0 ? undefined : spec.peerASN };
    uniqueSelectors(ctx, s.nodeSelectors, ["nodeSelectors"], "nodeSelectors");
    if (s.connectTime !== undefined && DURATION.test(s.connectTime)) {
      // As CEL's duration getSeconds() / getMilliseconds(): whole units, truncated.
      const ms = Math.trunc(durationMs(s.connectTime));
      const secs = Math.trunc(ms / 1000);
      if (secs < 1 || secs > 65535)
        ctx.addIssue({ code: "custom", path: ["connectTime"], message: "must be between 1s and 65535s" });
      else if (ms % 1000 !== 0)
        ctx.addIssue({ code: "custom", path: ["connectTime"], message: "must be a whole number of seconds" });
    }
    if (s.localASN !== undefined && s.localASN !== 0) {
      const ibgp = s.peerASN !== undefined ? s.peerASN === s.myASN : s.dynamicASN === "internal";
      if (s.localASN === s.myASN)
        ctx.addIssue({
          code: "custom",
          path: ["localASN"],
          message: "must differ from myASN (it replaces myASN on this session; leave it out to use myASN)",
        });
      else if (ibgp)
        ctx.addIssue({
          code: "custom",
          path: ["localASN"],
          message:
            "applies to eBGP peers only (FRR's local-as, which MetalLB configures from it, refuses iBGP peers)",
        });
      else if (s.peerASN !== undefined && s.localASN === s.peerASN)
        ctx.addIssue({
          code: "custom",
          path: ["localASN"],
          message: "must differ from peerASN: the peer would see an iBGP session where this side runs eBGP",
        });
    }
    if (s.peerASN !== undefined && s.dynamicASN !== undefined)
      ctx.addIssue({ code: "custom", path: ["dynamicASN"], message: "cannot be set together with peerASN" });
    if (s.peerASN === undefined && s.dynamicASN === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["peerASN"],
        message:
          spec.peerASN === 0
            ? "0 means no peer AS: give the peer's AS (1 to 4294967295) or dynamicASN"
            : "one of peerASN or dynamicASN is required",
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
    if (s.password !== undefined && s.passwordSecret?.name)
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
  })
  // A secret reference without a name is no reference (MetalLB reads only a non-empty name), and
  // peerASN 0 is no peer ASN: both are dropped here, so the rest of vipd never sees them.
  .overwrite((s) => {
    const { passwordSecret, peerASN, ...rest } = s;
    return {
      ...rest,
      ...(peerASN !== undefined && peerASN !== 0 ? { peerASN } : {}),
      ...(passwordSecret?.name ? { passwordSecret } : {}),
    };
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
