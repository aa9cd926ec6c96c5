/**
 * vipd's own manifest kind, NodeSettings (vipd.io/v1alpha1): who this node is and how it runs —
 * node name and labels, interfaces for the XDP responder, the API listener, TLS and tokens, local
 * delivery, the load-balancer class, the site's members and live membership.
 */

import { z } from "zod";
import { apiVersion, IpString, LabelMap, Name, ObjectMeta } from "./common.ts";

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
    /**
     * The in-process BGP speaker. `gracefulRestartSeconds` is the restart time this node
     * advertises in its graceful-restart capability (RFC 4724): how long a helping peer keeps
     * this node's routes while it restarts (default 120, as MetalLB's FRR; BIRD and FRR as
     * helpers use the time the restarting side advertises). A box whose reboot takes longer
     * (an A/B system update) sets it above its reboot time. Read at start.
     */
    bgp: z
      .object({
        gracefulRestartSeconds: z.number().int().min(1).max(4095).default(120),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    // The same token twice would give one credential two names (and roles): refuse it here, with
    // its line, rather than at the first request.
    const firstOf = new Map<string, number>();
    s.api.tokens.forEach((t, i) => {
      const first = firstOf.get(t.hash);
      if (first === undefined) firstOf.set(t.hash, i);
      else
        ctx.addIssue({
          code: "custom",
          path: ["api", "tokens", i, "hash"],
          message: `the same token as api.tokens[${first}] (${s.api.tokens[first]?.name}); each token must be listed once`,
        });
    });
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

export type NodeSettings = z.infer<typeof NodeSettings>;
