/**
 * A failed API bind ends the start the same way in both modes: `vipd run` and `vipd k8s` log
 * "cannot serve the API; exiting" with the address and the error, and return exit code 1 — before
 * any driver or membership socket opens (the node composition binds the API first,
 * src/node/compose.ts). The port is taken by a real listener on loopback; `vipd k8s` talks to
 * the faithful in-process API server over TLS.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../../src/appliance/run.ts";
import { runK8s } from "../../src/k8s/run.ts";
import { fakeCluster } from "../k8s/harness.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A port on 127.0.0.1 held by a real listener for the duration of `body`. */
async function withTakenPort(body: (port: number) => Promise<void>): Promise<void> {
  const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    await body(holder.port);
  } finally {
    holder.stop(true);
  }
}

/** Captures what the loggers write (they write JSON lines to stdout/stderr). */
async function captured<T>(f: () => Promise<T>): Promise<{ value: T; text: string }> {
  const lines: string[] = [];
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const grab = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  process.stdout.write = grab as typeof process.stdout.write;
  process.stderr.write = grab as typeof process.stderr.write;
  try {
    return { value: await f(), text: lines.join("") };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

describe("a failed API bind: exit 1 with a clear message, in both modes", () => {
  test("vipd run", async () => {
    const d = mkdtempSync(join(tmpdir(), `vipd-bind-${process.pid}-`));
    dirs.push(d);
    writeFileSync(
      join(d, "vipd.yaml"),
      `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan }
spec: { addresses: ["10.0.0.5/32"] }
`,
    );
    await withTakenPort(async (port) => {
      const { value, text } = await captured(() =>
        run(
          ["--config", d, "--state-dir", "", "--api-listen", `127.0.0.1:${port}`, "--node-name", "a"],
          "test",
        ),
      );
      expect(value).toBe(1);
      expect(text).toContain("cannot serve the API; exiting");
      expect(text).toContain(String(port));
    });
  });

  test("vipd k8s", async () => {
    const c = await fakeCluster();
    try {
      await withTakenPort(async (port) => {
        const { value, text } = await captured(() =>
          runK8s(
            [
              "--kubeconfig",
              c.kubeconfig,
              "--node-name",
              "n1",
              "--no-controller",
              "--api-listen",
              `127.0.0.1:${port}`,
            ],
            "test",
          ),
        );
        expect(value).toBe(1);
        expect(text).toContain("cannot serve the API; exiting");
        expect(text).toContain(String(port));
      });
    } finally {
      await c.close();
    }
  }, 20_000);
});
