/**
 * Kubernetes label selectors (metav1.LabelSelector): matchLabels and matchExpressions, evaluated
 * the way the API server does (all requirements ANDed; an empty selector matches everything).
 *
 * @example
 * selectorMatches({ matchExpressions: [{ key: "tier", operator: "In", values: ["ingress"] }] },
 *   { tier: "ingress" }); // true
 */

export type SelectorOperator = "In" | "NotIn" | "Exists" | "DoesNotExist";

export interface SelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[] | undefined;
}

export interface LabelSelector {
  matchLabels?: Record<string, string> | undefined;
  matchExpressions?: SelectorRequirement[] | undefined;
}

export type Labels = Record<string, string> | undefined;

/** True when `labels` satisfy every requirement of `sel`. */
export function selectorMatches(sel: LabelSelector, labels: Labels): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (l[k] !== v) return false;
  }
  for (const req of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(l, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case "In":
        if (!has || !values.includes(l[req.key] as string)) return false;
        break;
      case "NotIn":
        if (has && values.includes(l[req.key] as string)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}

/**
 * MetalLB's rule for lists of selectors (nodeSelectors, serviceSelectors, ...): an empty or absent
 * list matches everything; otherwise any one selector matching is enough.
 */
export function anySelectorMatches(sels: readonly LabelSelector[] | undefined, labels: Labels): boolean {
  if (sels === undefined || sels.length === 0) return true;
  return sels.some((s) => selectorMatches(s, labels));
}

/**
 * A selector's identity as MetalLB compares selectors for "duplicate definition": matchLabels by
 * key, the match expressions in their order, each expression's values sorted.
 */
export function selectorKey(sel: LabelSelector): string {
  const labels = Object.entries(sel.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([labels, (sel.matchExpressions ?? []).map(requirementKey)]);
}

/** A match expression's identity (key, operator, values sorted), as MetalLB compares them. */
export function requirementKey(req: SelectorRequirement): string {
  return JSON.stringify([req.key, req.operator, [...(req.values ?? [])].sort()]);
}
