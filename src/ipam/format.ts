/**
 * Fast text for addresses on the allocation path: IPv4 through number arithmetic (the general
 * `formatIp` of src/util/ip.ts works on bigints and costs several times more); IPv6 delegates.
 * Output is identical to `formatIp`.
 */

import { formatIp, type Ip } from "../util/ip.ts";

export function ipText(ip: Ip): string {
  if (ip.family === 6) return formatIp(ip);
  const n = Number(ip.value);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
