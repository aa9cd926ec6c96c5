/** Probes a lab client runs against a VIP: arping (IPv4) and ndisc6 (IPv6), parsed. */

import type { Lab } from "./netns.ts";

/** arping from `ns` on eth0: [sent, received, distinct MACs that answered]. */
export async function arping(
  lab: Lab,
  ns: string,
  ip: string,
  count: number,
  intervalS = 0.1,
): Promise<[number, number, string[]]> {
  const r = await lab.run(ns, ["arping", "-c", String(count), "-W", String(intervalS), "-i", "eth0", ip], {
    allowFail: true,
    timeoutMs: 30_000,
  });
  const m = r.stdout.match(/(\d+) packets transmitted, (\d+) packets received/);
  if (m === null) throw new Error(`arping printed no statistics:\n${r.stdout}\n${r.stderr}`);
  const macs = [...r.stdout.matchAll(/bytes from ([0-9a-f:]{17}) /g)].map((x) => x[1] as string);
  return [Number(m[1]), Number(m[2]), [...new Set(macs)]];
}

/** ndisc6 from `ns` on eth0: the MAC that answered, or null. */
export async function ndisc(lab: Lab, ns: string, ip: string): Promise<string | null> {
  const r = await lab.run(ns, ["ndisc6", "-1", "-q", "-r", "2", "-w", "300", ip, "eth0"], {
    allowFail: true,
  });
  return r.code === 0 ? r.stdout.trim().toLowerCase() : null;
}
