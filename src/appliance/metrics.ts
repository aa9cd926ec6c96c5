/** The daemon's own metric families: configuration reloads and layer-2 owner changes. */

import type { MetricFamily } from "../api/runtime.ts";
import { ownerChangeMetric } from "../node/applier.ts";

export interface ReloadCounts {
  applied: number;
  unchanged: number;
  rejected: number;
}

export interface OwnerChangeCounts {
  acquired: number;
  released: number;
  moved: number;
}

/** Reads of the manifests on disk, by result, and whether the last one was valid. */
export function reloadMetrics(reloads: ReloadCounts, lastReloadOk: boolean): MetricFamily[] {
  return [
    {
      name: "vipd_config_reloads_total",
      help: "Reads of the manifests on disk (start, SIGHUP, file change), by result",
      type: "counter",
      samples: (["applied", "unchanged", "rejected"] as const).map((result) => ({
        labels: { result },
        value: reloads[result],
      })),
    },
    {
      name: "vipd_config_last_reload_successful",
      help: "1 when the last read of the manifests on disk was valid, 0 when it was rejected",
      type: "gauge",
      samples: [{ value: lastReloadOk ? 1 : 0 }],
    },
  ];
}

export function daemonMetrics(
  reloads: ReloadCounts,
  lastReloadOk: boolean,
  owners: OwnerChangeCounts,
): MetricFamily[] {
  return [...reloadMetrics(reloads, lastReloadOk), ownerChangeMetric(owners)];
}
