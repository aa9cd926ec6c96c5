/**
 * The admission webhook's pure parts: the AdmissionReview answer (src/k8s/webhook.ts) and the
 * certificates vipd makes and rotates on an injected clock (src/k8s/certs.ts), checked with
 * openssl (an independent X.509 implementation).
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_POLICY, decide, notAfter, pemBlocks, serviceDnsNames } from "../../src/k8s/certs.ts";
import type { KubeObject } from "../../src/k8s/client.ts";
import { configStateStatus } from "../../src/k8s/config-state.ts";
import type { CrObject } from "../../src/k8s/configset.ts";
import { type AdmissionContext, review } from "../../src/k8s/webhook.ts";

const NS = "vipd-system";
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 11, 1);

const pool = (name: string, addresses: string[], ns = NS): KubeObject => ({
  apiVersion: "metallb.io/v1beta1",
  kind: "IPAddressPool",
  metadata: { name, namespace: ns, creationTimestamp: "2026-01-01T00:00:00Z" },
  spec: { addresses },
});

const ctx = (current: CrObject[] = []): AdmissionContext => ({
  namespace: NS,
  current: () => current,
  secrets: () => new Map(),
});

const admission = (obj: KubeObject, operation = "CREATE", kind = "IPAddressPool") => ({
  apiVersion: "admission.k8s.io/v1",
  kind: "AdmissionReview",
  request: {
    uid: "u-1",
    kind: { group: "metallb.io", version: "v1beta1", kind },
    resource: { group: "metallb.io", version: "v1beta1", resource: "ipaddresspools" },
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    operation,
    object: obj,
  },
});

describe("review (AdmissionReview v1)", () => {
  test("an invalid address is refused with the field and the problem, as `vipd validate` says it", () => {
    const a = review(admission(pool("bad", ["192.168.300.0/24"])), ctx());
    expect(a).toEqual({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: {
        uid: "u-1",
        allowed: false,
        status: {
          code: 422,
          reason: "Invalid",
          message: 'IPAddressPool/bad: spec.addresses[0]: "192.168.300.0" is not an IP address',
        },
      },
    });
  });

  test("a valid pool is admitted; one overlapping a pool already there is refused, naming both", () => {
    expect(review(admission(pool("good", ["10.0.0.0/24"])), ctx()).response).toEqual({
      uid: "u-1",
      allowed: true,
    });
    const current: CrObject[] = [{ kind: "IPAddressPool", obj: pool("lan", ["10.0.0.0/24"]) }];
    const r = review(admission(pool("other", ["10.0.0.128/25"])), ctx(current)).response;
    expect(r.allowed).toBe(false);
    expect(r.status?.message).toContain("overlaps");
    expect(r.status?.message).toContain('pool "');
    // Updating the pool itself to a new range is no overlap with its old self.
    expect(review(admission(pool("lan", ["10.0.0.0/25"]), "UPDATE"), ctx(current)).response.allowed).toBe(
      true,
    );
  });

  test("an advertisement naming a missing pool is refused; problems already there do not refuse others", () => {
    const adv: KubeObject = {
      apiVersion: "metallb.io/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: "l2", namespace: NS },
      spec: { ipAddressPools: ["nope"] },
    };
    expect(review(admission(adv, "CREATE", "L2Advertisement"), ctx()).response.status?.message).toBe(
      'L2Advertisement/l2: spec.ipAddressPools[0]: IPAddressPool "nope" does not exist',
    );
    // Two overlapping pools got in while the webhook was off: an unrelated pool is still admitted.
    const broken: CrObject[] = [
      { kind: "IPAddressPool", obj: pool("a", ["10.9.0.0/24"]) },
      { kind: "IPAddressPool", obj: pool("b", ["10.9.0.0/24"]) },
    ];
    expect(review(admission(pool("c", ["10.8.0.0/24"])), ctx(broken)).response.allowed).toBe(true);
  });

  test("objects outside vipd's namespace are refused (vipd would ignore them); DELETE is always admitted", () => {
    const r = review(admission(pool("x", ["10.0.0.0/24"], "default")), ctx()).response;
    expect(r.status?.message).toContain(
      'metadata.namespace: vipd reads metallb.io objects only from its namespace "vipd-system"',
    );
    expect(review(admission(pool("bad", ["nope"]), "DELETE"), ctx()).response.allowed).toBe(true);
  });

  test("a body that is not an AdmissionReview v1 throws (the server answers 400)", () => {
    expect(() => review({ apiVersion: "admission.k8s.io/v1beta1", request: { uid: "x" } }, ctx())).toThrow(
      "AdmissionReview",
    );
    expect(() => review(null, ctx())).toThrow();
  });
});

describe("ConfigurationState status", () => {
  test("Valid with no problems; Invalid with one line per object left out", () => {
    expect(configStateStatus([])).toEqual({ result: "Valid", errorSummary: "" });
    const st = configStateStatus([
      {
        kind: "IPAddressPool",
        namespace: NS,
        name: "bad",
        uid: "u",
        problems: [
          {
            file: "f",
            line: 0,
            kind: "IPAddressPool",
            name: "bad",
            field: "spec.addresses[0]",
            message: "no",
            pointer: "",
          },
        ],
      },
    ]);
    expect(st).toEqual({
      result: "Invalid",
      errorSummary: "IPAddressPool/bad is not in force: IPAddressPool/bad: spec.addresses[0]: no",
    });
  });
});

function openssl(args: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(["openssl", ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

describe("webhook certificates (injected clock)", () => {
  const policy = { ...DEFAULT_POLICY, dnsNames: serviceDnsNames("vipd-webhook", NS) };

  test("made from nothing: a CA and a serving certificate for the Service's names that openssl verifies", () => {
    const d = decide(undefined, policy, T0);
    if (d.action === "keep") throw new Error("expected new certificates");
    expect(d.action).toBe("new-ca");
    const dir = mkdtempSync(join(tmpdir(), "vipd-certs-"));
    try {
      writeFileSync(join(dir, "ca.crt"), d.bundle["ca.crt"]);
      writeFileSync(join(dir, "tls.crt"), d.bundle["tls.crt"]);
      // -attime: verify at the injected time, not the machine's.
      const v = openssl([
        "verify",
        "-attime",
        String(T0 / 1000 + 60),
        "-purpose",
        "sslserver",
        "-CAfile",
        join(dir, "ca.crt"),
        join(dir, "tls.crt"),
      ]);
      expect(v).toEqual({ code: 0, out: `${join(dir, "tls.crt")}: OK\n` });
      const text = openssl(["x509", "-in", join(dir, "tls.crt"), "-noout", "-ext", "subjectAltName"]).out;
      expect(text).toContain("DNS:vipd-webhook.vipd-system.svc,");
      expect(
        openssl(["x509", "-in", join(dir, "ca.crt"), "-noout", "-ext", "basicConstraints"]).out,
      ).toContain("CA:TRUE");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(decide(d.bundle, policy, T0 + DAY).action).toBe("keep");
  });

  test("rotation: the serving certificate is renewed when a third of its year is left, the CA at a third of ten years", () => {
    const first = decide(undefined, policy, T0);
    if (first.action === "keep") throw new Error("expected new certificates");
    const b = first.bundle;
    expect(decide(b, policy, T0 + 240 * DAY).action).toBe("keep");
    const renew = decide(b, policy, T0 + 250 * DAY);
    expect(renew).toMatchObject({ action: "renew-cert", why: "the serving certificate expires soon" });
    if (renew.action === "keep") return;
    expect(renew.bundle["ca.crt"]).toBe(b["ca.crt"]);
    expect(renew.bundle["ca.key"]).toBe(b["ca.key"]);
    expect(notAfter(renew.bundle["tls.crt"])).toBeGreaterThan(T0 + 600 * DAY);
    // Names changed (another Service name): renewed.
    expect(decide(b, { ...policy, dnsNames: serviceDnsNames("other", NS) }, T0 + DAY)).toMatchObject({
      action: "renew-cert",
      why: "the Service's names changed",
    });
    // Near the CA's end: a new CA, and the bundle still trusts the old one while it is valid.
    const late = T0 + 7 * 365 * DAY;
    const ca2 = decide(b, policy, late);
    expect(ca2).toMatchObject({ action: "new-ca", why: "the CA expires soon" });
    if (ca2.action === "keep") return;
    const blocks = pemBlocks(ca2.bundle["ca.crt"]);
    expect(blocks.length).toBe(2);
    expect(blocks[1]).toBe(pemBlocks(b["ca.crt"])[0] as string);
    expect(decide(ca2.bundle, policy, late + DAY).action).toBe("keep");
    // A serving certificate never outlives its CA.
    expect(notAfter(ca2.bundle["tls.crt"])).toBeLessThanOrEqual(notAfter(blocks[0] as string) as number);
  });

  test("garbage in the Secret is replaced, never served", () => {
    const first = decide(undefined, policy, T0);
    if (first.action === "keep") return;
    expect(decide({ ...first.bundle, "tls.crt": "not a certificate" }, policy, T0).action).toBe("renew-cert");
    expect(decide({ ...first.bundle, "ca.key": "junk" }, policy, T0).action).toBe("new-ca");
    const other = decide(undefined, policy, T0);
    if (other.action === "keep") return;
    // A serving certificate from another CA, or a key that is not its own.
    expect(decide({ ...first.bundle, "tls.crt": other.bundle["tls.crt"] }, policy, T0)).toMatchObject({
      why: "the serving certificate is not signed by the CA",
    });
    expect(decide({ ...first.bundle, "tls.key": other.bundle["tls.key"] }, policy, T0)).toMatchObject({
      why: "the serving key does not match",
    });
  });
});
