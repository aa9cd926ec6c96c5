/**
 * zod schemas for the parts of Kubernetes core/v1 Service and Namespace that vipd reads (the
 * MetalLB objects are in ./schemas.ts, vipd's own NodeSettings in ./node-settings.ts). Fields
 * real Services carry but vipd does not act on are accepted, so exported objects load unchanged.
 */

import { z } from "zod";
import { apiVersion, IpString, LabelMap, ObjectMeta } from "./common.ts";

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

export type Service = z.infer<typeof Service>;
export type Namespace = z.infer<typeof Namespace>;
