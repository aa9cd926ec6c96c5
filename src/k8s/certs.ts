/**
 * The admission webhook's certificates, made by vipd itself: a small DER encoder (ITU-T X.690),
 * X.509 v3 certificates (RFC 5280) signed with ECDSA P-256 / SHA-256 (RFC 5758 §3.2), and the
 * pure rotation decision — given the Secret's data and the time, keep it, renew the serving
 * certificate, or start over with a new CA.
 *
 * Keys and signatures come from node:crypto; everything else here is values in, values out
 * (the clock is a parameter). The Secret holds `ca.crt` (the CA certificates the API server
 * should trust: the current CA first, then the previous one while it is still valid), `ca.key`,
 * `tls.crt` and `tls.key` (PEM), as MetalLB's cert rotator keeps them.
 */

import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  X509Certificate,
} from "node:crypto";

// --- DER (X.690 §8, definite lengths only) --------------------------------------------------

const concat = (parts: readonly Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

function tlv(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  let len: number[];
  if (n < 0x80) len = [n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = [0x80 | bytes.length, ...bytes];
  }
  return concat([Uint8Array.of(tag, ...len), body]);
}

const seq = (...items: Uint8Array[]) => tlv(0x30, concat(items));
const set = (...items: Uint8Array[]) => tlv(0x31, concat(items));
const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner);
const octets = (b: Uint8Array) => tlv(0x04, b);
const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
const bool = (v: boolean) => tlv(0x01, Uint8Array.of(v ? 0xff : 0));
const bitString = (b: Uint8Array, unused = 0) => tlv(0x03, concat([Uint8Array.of(unused), b]));

/** A non-negative INTEGER from big-endian bytes (a leading 0 keeps it positive). */
function integer(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && ((b[i + 1] ?? 0) & 0x80) === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0] ?? 0) & 0x80 ? concat([Uint8Array.of(0), v]) : v);
}

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (const n of rest) {
    const groups: number[] = [];
    let v = n;
    do {
      groups.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < groups.length - 1; i++) groups[i] = (groups[i] as number) | 0x80;
    out.push(...groups);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after; always UTC, whole seconds. */
function time(ms: number): Uint8Array {
  const iso = new Date(ms).toISOString(); // 2026-01-02T03:04:05.678Z
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = Number(iso.slice(0, 4));
  const enc = new TextEncoder();
  return year < 2050 ? tlv(0x17, enc.encode(digits.slice(2))) : tlv(0x18, enc.encode(digits));
}

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  authorityKeyIdentifier: "2.5.29.35",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

const name = (cn: string) => seq(set(seq(oid(OID.commonName), utf8(cn))));
const extension = (id: string, critical: boolean, value: Uint8Array) =>
  critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));

// --- certificates ----------------------------------------------------------------------------

export interface KeyPair {
  /** PKCS#8 PEM. */
  keyPem: string;
  /** SubjectPublicKeyInfo, DER. */
  spki: Uint8Array;
}

export function newKey(): KeyPair {
  const k = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return {
    keyPem: k.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    spki: new Uint8Array(k.publicKey.export({ type: "spki", format: "der" })),
  };
}

const keyId = (spki: Uint8Array): Uint8Array => new Uint8Array(createHash("sha1").update(spki).digest());

function pem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END CERTIFICATE-----\n`;
}

export interface CertRequest {
  commonName: string;
  notBefore: number;
  notAfter: number;
  /** The subject's public key. */
  spki: Uint8Array;
  /** A CA certificate (keyCertSign) or a TLS server certificate for these DNS names. */
  ca: boolean;
  dnsNames?: readonly string[];
  /** The issuer; absent: self-signed with `selfKeyPem`. */
  issuer?: { commonName: string; spki: Uint8Array; keyPem: string };
  selfKeyPem?: string;
}

/** One X.509 v3 certificate, PEM. */
export function makeCert(r: CertRequest): string {
  const issuer = r.issuer ?? { commonName: r.commonName, spki: r.spki, keyPem: r.selfKeyPem ?? "" };
  if (issuer.keyPem === "") throw new Error("makeCert: no signing key");
  const serial = new Uint8Array(randomBytes(16));
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const exts: Uint8Array[] = [
    // basicConstraints: cA TRUE for the CA; an empty SEQUENCE (cA FALSE) for the server.
    extension(OID.basicConstraints, true, r.ca ? seq(bool(true)) : seq()),
    // keyUsage (§4.2.1.3), bits from the most significant: digitalSignature(0), keyCertSign(5), cRLSign(6).
    extension(
      OID.keyUsage,
      true,
      r.ca ? bitString(Uint8Array.of(0x86), 1) : bitString(Uint8Array.of(0x80), 7),
    ),
    extension(OID.subjectKeyIdentifier, false, octets(keyId(r.spki))),
    extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, keyId(issuer.spki)))),
  ];
  if (!r.ca) {
    exts.push(extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))));
    // dNSName is [2] IMPLICIT IA5String.
    const sans = (r.dnsNames ?? []).map((d) => tlv(0x82, new TextEncoder().encode(d)));
    exts.push(extension(OID.subjectAltName, false, seq(...sans)));
  }
  const alg = seq(oid(OID.ecdsaWithSha256));
  const tbs = seq(
    explicit(0, integer(Uint8Array.of(2))),
    integer(serial),
    alg,
    name(issuer.commonName),
    seq(time(r.notBefore), time(r.notAfter)),
    name(r.commonName),
    r.spki,
    explicit(3, seq(...exts)),
  );
  const sig = sign("sha256", tbs, createPrivateKey(issuer.keyPem));
  return pem(seq(tbs, alg, bitString(new Uint8Array(sig))));
}

/** The PEM blocks of a bundle. */
export const pemBlocks = (text: string): string[] =>
  text
    .match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)
    ?.map((b) => (b.endsWith("\n") ? b : `${b}\n`)) ?? [];

// --- the rotation decision -------------------------------------------------------------------

export interface CertPolicy {
  /** The webhook Service's DNS names (the API server checks the first form, svc.ns.svc). */
  dnsNames: readonly string[];
  caValidityMs: number;
  certValidityMs: number;
  /** Renew when less than this fraction of a certificate's lifetime is left (e.g. 1/3). */
  renewFraction: number;
}

export const DEFAULT_POLICY: Omit<CertPolicy, "dnsNames"> = {
  caValidityMs: 10 * 365 * 86_400_000,
  certValidityMs: 365 * 86_400_000,
  renewFraction: 1 / 3,
};

/** The Secret's data (decoded), as vipd reads and writes it. */
export interface CertBundle {
  "ca.crt": string;
  "ca.key": string;
  "tls.crt": string;
  "tls.key": string;
}

export type CertDecision =
  | { action: "keep" }
  | { action: "renew-cert" | "new-ca"; bundle: CertBundle; why: string };

interface Parsed {
  notBefore: number;
  notAfter: number;
  dns: string[];
  cert: X509Certificate;
}

function parse(pemText: string | undefined): Parsed | undefined {
  if (pemText === undefined || pemText === "") return undefined;
  try {
    const cert = new X509Certificate(pemText);
    const dns = (cert.subjectAltName ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.startsWith("DNS:"))
      .map((s) => s.slice(4));
    return { notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo), dns, cert };
  } catch {
    return undefined;
  }
}

const needsRenewal = (p: Parsed, now: number, fraction: number): boolean =>
  now < p.notBefore || now > p.notAfter - (p.notAfter - p.notBefore) * fraction;

/** A certificate's expiry (ms), or undefined if it cannot be read. */
export const notAfter = (pemText: string): number | undefined => parse(pemText)?.notAfter;

function serverCert(
  ca: { cert: string; keyPem: string },
  policy: CertPolicy,
  now: number,
): { cert: string; keyPem: string } {
  const caCert = new X509Certificate(ca.cert);
  const caSpki = new Uint8Array(caCert.publicKey.export({ type: "spki", format: "der" }));
  const k = newKey();
  const cert = makeCert({
    commonName: policy.dnsNames[0] ?? "vipd-webhook",
    notBefore: now - 5 * 60_000,
    notAfter: Math.min(now + policy.certValidityMs, Date.parse(caCert.validTo)),
    spki: k.spki,
    ca: false,
    dnsNames: policy.dnsNames,
    issuer: { commonName: "vipd-webhook-ca", spki: caSpki, keyPem: ca.keyPem },
  });
  return { cert, keyPem: k.keyPem };
}

/**
 * What to do with the Secret's data at `now`: keep it; renew the serving certificate (expiring,
 * wrong names, unreadable, not signed by the CA); or make a new CA (missing, unreadable or
 * expiring) — its bundle then still trusts the previous CA while that is valid, so the API server
 * accepts old and new serving certificates during the change.
 */
export function decide(data: Partial<CertBundle> | undefined, policy: CertPolicy, now: number): CertDecision {
  const caBlocks = pemBlocks(data?.["ca.crt"] ?? "");
  const ca = parse(caBlocks[0]);
  let caKeyOk = false;
  try {
    if (data?.["ca.key"]) caKeyOk = createPrivateKey(data["ca.key"]).asymmetricKeyType === "ec";
  } catch {}
  if (ca === undefined || !caKeyOk || needsRenewal(ca, now, policy.renewFraction)) {
    const k = newKey();
    const caPem = makeCert({
      commonName: "vipd-webhook-ca",
      notBefore: now - 5 * 60_000,
      notAfter: now + policy.caValidityMs,
      spki: k.spki,
      ca: true,
      selfKeyPem: k.keyPem,
    });
    const tls = serverCert({ cert: caPem, keyPem: k.keyPem }, policy, now);
    const previous = ca !== undefined && ca.notAfter > now ? (caBlocks[0] ?? "") : "";
    return {
      action: "new-ca",
      why: ca === undefined ? "no CA yet" : !caKeyOk ? "the CA key is unreadable" : "the CA expires soon",
      bundle: { "ca.crt": caPem + previous, "ca.key": k.keyPem, "tls.crt": tls.cert, "tls.key": tls.keyPem },
    };
  }
  const tls = parse(data?.["tls.crt"]);
  let why: string | undefined;
  if (tls === undefined) why = "no serving certificate yet";
  else if (needsRenewal(tls, now, policy.renewFraction)) why = "the serving certificate expires soon";
  else if ([...tls.dns].sort().join(",") !== [...policy.dnsNames].sort().join(","))
    why = "the Service's names changed";
  else if (!tls.cert.verify(ca.cert.publicKey)) why = "the serving certificate is not signed by the CA";
  else {
    try {
      if (!tls.cert.checkPrivateKey(createPrivateKey(data?.["tls.key"] ?? "")))
        why = "the serving key does not match";
    } catch {
      why = "the serving key is unreadable";
    }
  }
  if (why === undefined) return { action: "keep" };
  const caCrt = data?.["ca.crt"] ?? "";
  const fresh = serverCert({ cert: caBlocks[0] ?? "", keyPem: data?.["ca.key"] ?? "" }, policy, now);
  // Drop a previous CA once it has expired.
  const bundle = caBlocks.filter((b, i) => i === 0 || (parse(b)?.notAfter ?? 0) > now).join("");
  return {
    action: "renew-cert",
    why,
    bundle: {
      "ca.crt": bundle || caCrt,
      "ca.key": data?.["ca.key"] ?? "",
      "tls.crt": fresh.cert,
      "tls.key": fresh.keyPem,
    },
  };
}

/** The DNS names of a Service, as the API server and in-cluster clients name it. */
export const serviceDnsNames = (service: string, namespace: string): string[] => [
  `${service}.${namespace}.svc`,
  `${service}.${namespace}.svc.cluster.local`,
  `${service}.${namespace}`,
  service,
];
