/**
 * BFD authentication (RFC 5880 §6.7): simple password, keyed MD5, meticulous keyed MD5, keyed
 * SHA1 and meticulous keyed SHA1 — signing outgoing Control packets and verifying received ones,
 * including the sequence-number window.
 *
 * Pure: the per-session receive state (`AuthRxState`) goes in and comes out; hashing is
 * deterministic (node:crypto).
 */

import { createHash } from "node:crypto";
import {
  type AuthSection,
  type AuthTypeName,
  type ControlPacket,
  type DropReason,
  digestAuthLen,
  encodeControl,
} from "./codec.ts";

export interface AuthConfig {
  type: AuthTypeName;
  keyId: number;
  /** The shared secret (password or key), 1..16 bytes for password/MD5, 1..20 for SHA1. */
  secret: string;
}

/** bfd.AuthSeqKnown / bfd.RcvAuthSeq (RFC 5880 §6.8.1). */
export interface AuthRxState {
  known: boolean;
  rcvSeq: number;
}

export const AUTH_RX_INITIAL: AuthRxState = { known: false, rcvSeq: 0 };

const enc = new TextEncoder();

function isSha1(t: AuthTypeName): boolean {
  return t === "KeyedSha1" || t === "MeticulousKeyedSha1";
}

export function isMeticulous(t: AuthTypeName): boolean {
  return t === "MeticulousKeyedSha1" || t === "MeticulousKeyedMd5";
}

/** Checks an auth configuration; returns a message for the user, or null when it is valid. */
export function validateAuth(a: AuthConfig): string | null {
  const max = isSha1(a.type) ? 20 : 16;
  const n = enc.encode(a.secret).length;
  if (n < 1 || n > max) return `auth.secret must be 1..${max} bytes for ${a.type}, got ${n}`;
  if (!Number.isInteger(a.keyId) || a.keyId < 0 || a.keyId > 255) return "auth.keyId must be 0..255";
  return null;
}

function keyBytes(a: AuthConfig): Uint8Array {
  const out = new Uint8Array(isSha1(a.type) ? 20 : 16);
  out.set(enc.encode(a.secret).subarray(0, out.length));
  return out;
}

function hash(type: AuthTypeName, data: Uint8Array): Uint8Array {
  return new Uint8Array(
    createHash(isSha1(type) ? "sha1" : "md5")
      .update(data)
      .digest(),
  );
}

/**
 * Encodes `p` with an authentication section for `a` and sequence number `seq` (RFC 5880 §6.7.3,
 * §6.7.4: the digest is computed over the packet with the key in the digest field).
 */
export function encodeSigned(p: ControlPacket, a: AuthConfig, seq: number): Uint8Array {
  if (a.type === "SimplePassword") {
    return encodeControl({ ...p, auth: { type: a.type, keyId: a.keyId, password: enc.encode(a.secret) } });
  }
  const withKey = encodeControl({ ...p, auth: { type: a.type, keyId: a.keyId, seq, digest: keyBytes(a) } });
  withKey.set(hash(a.type, withKey), 32);
  return withKey;
}

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i]! ^ y[i]!;
  return d === 0;
}

/** Unsigned 32-bit distance from `from` forward to `to`. */
function seqAhead(from: number, to: number): number {
  return (to - from) >>> 0;
}

export type AuthVerdict = { ok: true; rx: AuthRxState } | { ok: false; reason: DropReason };

/**
 * Verifies the authentication section of a received packet (RFC 5880 §6.7.2–§6.7.4).
 * `raw` is the received packet (its first Length bytes are used); `auth` is the session's
 * configuration (undefined when the session uses none).
 */
export function verifyAuth(
  raw: Uint8Array,
  p: ControlPacket,
  auth: AuthConfig | undefined,
  rx: AuthRxState,
): AuthVerdict {
  if (!p.auth) return auth ? { ok: false, reason: "AuthMissing" } : { ok: true, rx };
  if (!auth) return { ok: false, reason: "AuthNotConfigured" };
  const s: AuthSection = p.auth;
  if (s.type !== auth.type) return { ok: false, reason: "AuthTypeMismatch" };
  if (s.keyId !== auth.keyId) return { ok: false, reason: "AuthUnknownKey" };
  if (s.type === "SimplePassword") {
    return equalBytes(s.password, enc.encode(auth.secret))
      ? { ok: true, rx }
      : { ok: false, reason: "AuthBadDigest" };
  }
  if (rx.known) {
    const ahead = seqAhead(rx.rcvSeq, s.seq);
    const lo = isMeticulous(s.type) ? 1 : 0;
    if (ahead < lo || ahead > 3 * p.detectMult) return { ok: false, reason: "AuthBadSequence" };
  }
  const len = 24 + digestAuthLen(s.type);
  const copy = raw.slice(0, len);
  copy.set(keyBytes(auth), 32);
  if (!equalBytes(hash(s.type, copy), s.digest)) return { ok: false, reason: "AuthBadDigest" };
  return { ok: true, rx: { known: true, rcvSeq: s.seq } };
}
