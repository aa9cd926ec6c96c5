/**
 * Community text forms: standard "A:B" and well-known names (RFC 1997, RFC 8326 graceful-shutdown)
 * and large communities "A:B:C" (RFC 8092), as the manifests write them.
 */
import type { LargeCommunity } from "./attributes.ts";

/** Standard community "65000:100" (or a well-known name) to its 32-bit value. */
export function parseCommunity(s: string): number | null {
  const named: Record<string, number> = {
    "no-export": 0xffffff01,
    "no-advertise": 0xffffff02,
    "no-export-subconfed": 0xffffff03,
    "graceful-shutdown": 0xffff0000,
  };
  const n = named[s.toLowerCase()];
  if (n !== undefined) return n;
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const hi = Number(m[1]);
  const lo = Number(m[2]);
  if (hi > 0xffff || lo > 0xffff) return null;
  return hi * 0x10000 + lo;
}

export function formatCommunity(c: number): string {
  return `${Math.floor(c / 0x10000)}:${c & 0xffff}`;
}

/** Large community "a:b:c" (three unsigned 32-bit numbers, RFC 8092). */
export function parseLargeCommunity(s: string): LargeCommunity | null {
  const m = /^(\d{1,10}):(\d{1,10}):(\d{1,10})$/.exec(s);
  if (!m) return null;
  const v = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (v.some((x) => x > 0xffffffff)) return null;
  return v as LargeCommunity;
}

export function formatLargeCommunity(c: LargeCommunity): string {
  return `${c[0]}:${c[1]}:${c[2]}`;
}
