/**
 * Drain before a reboot: this node hands every layer-2 VIP it owns to the other members of its
 * site through the forced failover of `POST /api/v1/l2/failover` (a decline per Service that
 * travels with the heartbeats; src/plan/failover.ts), then waits — bounded — until it answers
 * for none of them any more. The hand-over is make-before-break (src/plan/handover.ts): this
 * node keeps answering a VIP until its new owner has announced it, so "answers for none" means
 * "the others own them". BGP is not touched here: when the reboot stops vipd, the speaker closes
 * its sessions the graceful-restart way (src/drivers/bgp.ts).
 *
 * At most MAX_DECLINES (16) Services can be declined at once; VIPs beyond that stay until vipd
 * stops, when its "leaving" heartbeat makes the others take them at once.
 */

import type { DrainReport } from "./service.ts";

/** What the drain needs of the node (the appliance Daemon as ApiRuntime provides it). */
export interface DrainTarget {
  /** This node's name. */
  self(): string;
  /** Per layer-2 VIP, its owner. */
  elections(): Promise<readonly { ip: string; owner?: string | undefined }[]>;
  /** The VIPs this node's data path answers for now (owned, or held during a hand-over). */
  answering(): Promise<readonly string[]>;
  /** Forced failover of one VIP (this node must own it). */
  failover(ip: string): Promise<{ ok: true } | { ok: false; error: string; message: string }>;
}

export interface DrainOptions {
  /** How long to wait for the others to own the VIPs (default 3000 ms). */
  timeoutMs?: number;
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export async function drainL2(t: DrainTarget, opts: DrainOptions = {}): Promise<DrainReport> {
  const now = opts.now ?? (() => performance.now());
  const sleep = opts.sleep ?? ((ms: number) => Bun.sleep(ms));
  const timeoutMs = opts.timeoutMs ?? 3000;
  const pollMs = opts.pollMs ?? 50;
  const started = now();
  const self = t.self();
  const mine = async (): Promise<Set<string>> =>
    new Set((await t.elections()).filter((e) => e.owner === self).map((e) => e.ip));
  let current = await mine();
  const owned = [...current];
  const refused: DrainReport["refused"] = [];
  // One failover per Service: its other addresses follow, so who owns what is read again after
  // each one that was taken (a refused one moves nothing; at most MAX_DECLINES are taken).
  for (const ip of owned) {
    if (!current.has(ip)) continue;
    const r = await t.failover(ip);
    if (r.ok) current = await mine();
    else refused.push({ ip, error: r.error, message: r.message });
  }
  const wasMine = new Set(owned);
  let left = new Set(await t.answering());
  while ([...left].some((ip) => wasMine.has(ip)) && now() - started < timeoutMs) {
    await sleep(pollMs);
    left = new Set(await t.answering());
  }
  return {
    handedOver: owned.filter((ip) => !left.has(ip)),
    left: owned.filter((ip) => left.has(ip)),
    refused,
    ms: Math.round(now() - started),
  };
}
