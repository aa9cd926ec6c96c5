/**
 * Schema pieces every manifest kind shares: names, labels and annotations as the API server checks
 * them, object metadata, label selectors, Go durations, IP address strings, AS numbers.
 */

import { z } from "zod";
import { parseIp } from "../util/ip.ts";

// ---------------------------------------------------------------------------------------------
// Shared pieces

export const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const Name = z
  .string()
  .min(1, { message: "must not be empty", abort: true })
  .max(253, { message: "must be at most 253 characters", abort: true })
  .regex(DNS1123, "must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.')");

export const LabelMap = z.record(z.string(), z.string());

/** A label or annotation key as the API server accepts it: an optional DNS prefix and "/", then a name. */
export const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
export const MetaKey = z
  .string()
  .max(317)
  .regex(
    QUALIFIED_NAME,
    "must be a key such as \"app\" or \"example.com/app\": a name of 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  );
/** A label value as the API server accepts it (empty, or up to 63 characters of a name). */
export const LabelValue = z
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

export const uint32 = z.number().int("must be an integer").min(0).max(4294967295);
export const asn = z
  .number()
  .int("must be an integer")
  .min(1, "must be an AS number from 1 to 4294967295")
  .max(4294967295);

/** Go `time.ParseDuration` syntax as used by metav1.Duration ("90s", "1m30s", "500ms"). */
export const DURATION = /^(0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$/;
export const Duration = z.string().regex(DURATION, 'must be a duration such as "90s", "1m30s" or "500ms"');

export const UNIT_MS: Record<string, number> = {
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

export const apiVersion = <const V extends string>(...versions: [V, ...V[]]) =>
  z.enum(versions, { error: () => `must be one of ${versions.join(", ")}` });

export const IpString = z.string().refine((s) => parseIp(s) !== null, { message: "must be an IP address" });
