/**
 * BFD Control packet codec (RFC 5880 §4.1–§4.4) and the packet-only receive checks.
 *
 * Pure: bytes in, values out. `decodeControl` applies, in order, the checks of RFC 5880 §6.8.6
 * that need nothing but the packet (version, length, detect multiplier, multipoint bit, My
 * Discriminator); the session-dependent checks (Your Discriminator lookup, authentication) are
 * made by the manager and the FSM with the same `DropReason` vocabulary, so every discarded packet
 * has one named reason that is counted.
 *
 * Authentication sections are carried as raw structures here; digests are computed and checked in
 * `auth.ts`.
 */

export const BFD_VERSION = 1;
/** RFC 5880 §6.8.6: minimum Length without / with an authentication section. */
export const MIN_LEN = 24;
export const MIN_LEN_AUTH = 26;

export type BfdState = "AdminDown" | "Down" | "Init" | "Up";
export const STATE_CODE: Record<BfdState, number> = { AdminDown: 0, Down: 1, Init: 2, Up: 3 };
const STATE_OF: readonly BfdState[] = ["AdminDown", "Down", "Init", "Up"];

/** RFC 5880 §4.1 diagnostic codes. */
export const DIAG = {
  None: 0,
  ControlDetectionTimeExpired: 1,
  EchoFunctionFailed: 2,
  NeighborSignaledSessionDown: 3,
  ForwardingPlaneReset: 4,
  PathDown: 5,
  ConcatenatedPathDown: 6,
  AdministrativelyDown: 7,
  ReverseConcatenatedPathDown: 8,
} as const;
export type DiagName = keyof typeof DIAG;
const DIAG_NAMES = Object.keys(DIAG) as DiagName[];

/** Name of a diagnostic code; codes 9–31 are reserved and reported as `Reserved<N>`. */
export function diagName(code: number): string {
  return DIAG_NAMES[code] ?? `Reserved${code}`;
}

/** RFC 5880 §4.1 Auth Type values. */
export const AUTH_TYPE = {
  SimplePassword: 1,
  KeyedMd5: 2,
  MeticulousKeyedMd5: 3,
  KeyedSha1: 4,
  MeticulousKeyedSha1: 5,
} as const;
export type AuthTypeName = keyof typeof AUTH_TYPE;

/** An authentication section as it appears on the wire. */
export type AuthSection =
  | { type: "SimplePassword"; keyId: number; password: Uint8Array }
  | {
      type: "KeyedMd5" | "MeticulousKeyedMd5" | "KeyedSha1" | "MeticulousKeyedSha1";
      keyId: number;
      seq: number;
      /** 16 bytes for MD5, 20 for SHA1. */
      digest: Uint8Array;
    };

export interface ControlPacket {
  version: number;
  diag: number;
  state: BfdState;
  poll: boolean;
  final: boolean;
  /** C bit: control plane independent. */
  cpi: boolean;
  demand: boolean;
  multipoint: boolean;
  detectMult: number;
  myDiscr: number;
  yourDiscr: number;
  /** Microseconds, as on the wire. */
  desiredMinTx: number;
  requiredMinRx: number;
  requiredMinEchoRx: number;
  auth?: AuthSection;
}

/**
 * Every reason a received BFD packet can be discarded, in RFC 5880 §6.8.6 order. (Packets with a
 * wrong TTL never reach userspace: the socket filter in io.ts drops them in the kernel.)
 */
export type DropReason =
  | "BadVersion"
  | "TooShort"
  | "LengthExceedsPayload"
  | "ZeroDetectMult"
  | "MultipointSet"
  | "ZeroMyDiscriminator"
  | "UnknownYourDiscriminator"
  | "ZeroYourDiscriminatorNotDown"
  | "NoSessionForAddress"
  | "SourceAddressMismatch"
  | "AuthNotConfigured"
  | "AuthMissing"
  | "AuthMalformed"
  | "AuthTypeMismatch"
  | "AuthUnknownKey"
  | "AuthBadSequence"
  | "AuthBadDigest"
  | "SessionAdminDown";

export const DROP_REASONS: readonly DropReason[] = [
  "BadVersion",
  "TooShort",
  "LengthExceedsPayload",
  "ZeroDetectMult",
  "MultipointSet",
  "ZeroMyDiscriminator",
  "UnknownYourDiscriminator",
  "ZeroYourDiscriminatorNotDown",
  "NoSessionForAddress",
  "SourceAddressMismatch",
  "AuthNotConfigured",
  "AuthMissing",
  "AuthMalformed",
  "AuthTypeMismatch",
  "AuthUnknownKey",
  "AuthBadSequence",
  "AuthBadDigest",
  "SessionAdminDown",
];

export type Decoded = { ok: true; packet: ControlPacket } | { ok: false; reason: DropReason };

const AUTH_NAME: Record<number, AuthTypeName> = {
  1: "SimplePassword",
  2: "KeyedMd5",
  3: "MeticulousKeyedMd5",
  4: "KeyedSha1",
  5: "MeticulousKeyedSha1",
};

/** Auth Len for each digest type (RFC 5880 §4.3, §4.4). */
export function digestAuthLen(type: AuthTypeName): number {
  return type === "KeyedSha1" || type === "MeticulousKeyedSha1" ? 28 : 24;
}

/** Length in bytes of an encoded authentication section. */
export function authLen(a: AuthSection): number {
  return a.type === "SimplePassword" ? 3 + a.password.length : digestAuthLen(a.type);
}

/** Encodes a Control packet. Throws on values that cannot be represented (caller bug). */
export function encodeControl(p: ControlPacket): Uint8Array {
  const aLen = p.auth ? authLen(p.auth) : 0;
  const len = MIN_LEN + aLen;
  const out = new Uint8Array(len);
  const v = new DataView(out.buffer);
  if (p.diag < 0 || p.diag > 31) throw new RangeError(`diag ${p.diag} out of range 0..31`);
  if (p.detectMult < 0 || p.detectMult > 255) throw new RangeError(`detectMult ${p.detectMult} out of range`);
  out[0] = ((p.version & 7) << 5) | p.diag;
  out[1] =
    (STATE_CODE[p.state] << 6) |
    (p.poll ? 0x20 : 0) |
    (p.final ? 0x10 : 0) |
    (p.cpi ? 0x08 : 0) |
    (p.auth ? 0x04 : 0) |
    (p.demand ? 0x02 : 0) |
    (p.multipoint ? 0x01 : 0);
  out[2] = p.detectMult;
  out[3] = len;
  v.setUint32(4, p.myDiscr >>> 0);
  v.setUint32(8, p.yourDiscr >>> 0);
  v.setUint32(12, p.desiredMinTx >>> 0);
  v.setUint32(16, p.requiredMinRx >>> 0);
  v.setUint32(20, p.requiredMinEchoRx >>> 0);
  const a = p.auth;
  if (a) {
    out[24] = AUTH_TYPE[a.type];
    out[25] = aLen;
    out[26] = a.keyId;
    if (a.type === "SimplePassword") {
      if (a.password.length < 1 || a.password.length > 16)
        throw new RangeError("password must be 1..16 bytes");
      out.set(a.password, 27);
    } else {
      const want = aLen - 8;
      if (a.digest.length !== want) throw new RangeError(`${a.type} digest must be ${want} bytes`);
      out[27] = 0;
      v.setUint32(28, a.seq >>> 0);
      out.set(a.digest, 32);
    }
  }
  return out;
}

/**
 * Decodes a Control packet received in a UDP payload, discarding it with a named reason in the
 * order RFC 5880 §6.8.6 lists the packet-only checks.
 */
export function decodeControl(buf: Uint8Array): Decoded {
  // The version lives in the first byte; anything shorter than that is simply too short.
  if (buf.length < 1) return { ok: false, reason: "TooShort" };
  const version = buf[0]! >> 5;
  if (version !== BFD_VERSION) return { ok: false, reason: "BadVersion" };
  if (buf.length < 4) return { ok: false, reason: "TooShort" };
  const flags = buf[1]!;
  const hasAuth = (flags & 0x04) !== 0;
  const len = buf[3]!;
  if (len < (hasAuth ? MIN_LEN_AUTH : MIN_LEN)) return { ok: false, reason: "TooShort" };
  if (len > buf.length) return { ok: false, reason: "LengthExceedsPayload" };
  const v = new DataView(buf.buffer, buf.byteOffset, len);
  const detectMult = buf[2]!;
  if (detectMult === 0) return { ok: false, reason: "ZeroDetectMult" };
  if ((flags & 0x01) !== 0) return { ok: false, reason: "MultipointSet" };
  const myDiscr = v.getUint32(4);
  if (myDiscr === 0) return { ok: false, reason: "ZeroMyDiscriminator" };
  const packet: ControlPacket = {
    version,
    diag: buf[0]! & 0x1f,
    state: STATE_OF[flags >> 6]!,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    cpi: (flags & 0x08) !== 0,
    demand: (flags & 0x02) !== 0,
    multipoint: false,
    detectMult,
    myDiscr,
    yourDiscr: v.getUint32(8),
    desiredMinTx: v.getUint32(12),
    requiredMinRx: v.getUint32(16),
    requiredMinEchoRx: v.getUint32(20),
  };
  if (hasAuth) {
    const auth = decodeAuth(buf.subarray(MIN_LEN, len));
    if (!auth) return { ok: false, reason: "AuthMalformed" };
    packet.auth = auth;
  }
  return { ok: true, packet };
}

/** Parses an authentication section; null when its type or length is malformed. */
function decodeAuth(b: Uint8Array): AuthSection | null {
  if (b.length < 3) return null;
  const type = AUTH_NAME[b[0]!];
  const aLen = b[1]!;
  const keyId = b[2]!;
  if (!type || aLen > b.length) return null;
  if (type === "SimplePassword") {
    if (aLen < 4 || aLen > 19) return null;
    return { type, keyId, password: b.slice(3, aLen) };
  }
  if (aLen !== digestAuthLen(type)) return null;
  const v = new DataView(b.buffer, b.byteOffset, aLen);
  return { type, keyId, seq: v.getUint32(4), digest: b.slice(8, aLen) };
}

/** A Control packet with every field at its RFC 5880 default; override what matters. */
export function controlPacket(fields: Partial<ControlPacket>): ControlPacket {
  return {
    version: BFD_VERSION,
    diag: 0,
    state: "Down",
    poll: false,
    final: false,
    cpi: false,
    demand: false,
    multipoint: false,
    detectMult: 3,
    myDiscr: 1,
    yourDiscr: 0,
    desiredMinTx: 1_000_000,
    requiredMinRx: 1_000_000,
    requiredMinEchoRx: 0,
    ...fields,
  };
}
