/**
 * Test PKI for the k8s tier: a CA and a server certificate for 127.0.0.1 made by openssl in a
 * temporary directory, and a kubeconfig (CA data + bearer token) that points at a server.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** PEM text of the CA certificate. */
  caPem: string;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  const r = Bun.spawnSync(["openssl", ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.toString()}`);
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), `vipd-k8s-pki-${process.pid}-`));
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=vipd-test-ca",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
    ],
    dir,
  );
  writeFileSync(
    join(dir, "san.cnf"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=127.0.0.1",
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
    ],
    dir,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      "san.cnf",
      "-out",
      "server.crt",
    ],
    dir,
  );
  return {
    dir,
    caCert: join(dir, "ca.crt"),
    serverCert: join(dir, "server.crt"),
    serverKey: join(dir, "server.key"),
    caPem: readFileSync(join(dir, "ca.crt"), "utf8"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Writes a kubeconfig for `server` (https URL) trusting the test CA, with a bearer token. */
export function writeKubeconfig(pki: Pki, server: string, token: string, name = "kubeconfig"): string {
  const path = join(pki.dir, name);
  const ca = Buffer.from(pki.caPem).toString("base64");
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: test
  user:
    token: ${token}
contexts:
- name: test
  context:
    cluster: test
    user: test
current-context: test
`,
  );
  return path;
}
