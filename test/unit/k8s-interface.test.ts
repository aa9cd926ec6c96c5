/**
 * `--interface auto`: the operator's VIPD_INTERFACE wins; otherwise the interface holding the
 * Node's InternalIP, never loopback, never a guess between two. (The same code against a real
 * network namespace: test/lab/k8s-interface.test.ts.) Also: the metrics listener answers only
 * /metrics and /livez.
 */

import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";
import { metricsOnly } from "../../src/api/metrics-listener.ts";
import type { KubeObject } from "../../src/k8s/client.ts";
import { chooseInterface, nodeInternalIps, resolveAuto } from "../../src/k8s/interface.ts";
import { createLogger } from "../../src/util/log.ts";
import { FakeRuntime } from "./api-runtime-fake.ts";

const node = (addresses: { type: string; address: string }[]): KubeObject => ({
  metadata: { name: "n1" },
  status: { addresses },
});

const LOCAL = {
  lo: [
    { address: "127.0.0.1", internal: true },
    { address: "::1", internal: true },
  ],
  eth0: [
    { address: "203.0.113.7", internal: false },
    { address: "fe80::1", internal: false },
  ],
  eth1: [
    { address: "10.0.0.5", internal: false },
    { address: "fd00:0:0:0::5", internal: false },
  ],
};

describe("chooseInterface", () => {
  test("the interface holding the Node's InternalIP, not the one with its ExternalIP", () => {
    const n = node([
      { type: "ExternalIP", address: "203.0.113.7" },
      { type: "InternalIP", address: "10.0.0.5" },
      { type: "Hostname", address: "n1" },
    ]);
    expect(nodeInternalIps(n)).toEqual(["10.0.0.5"]);
    expect(chooseInterface(nodeInternalIps(n), LOCAL)).toEqual({
      ok: true,
      name: "eth1",
      address: "10.0.0.5",
    });
  });

  test("IPv6 InternalIPs match whatever their spelling; the first InternalIP found locally wins", () => {
    expect(chooseInterface(["fd00::5"], LOCAL)).toEqual({ ok: true, name: "eth1", address: "fd00::5" });
    expect(chooseInterface(["192.0.2.1", "203.0.113.7"], LOCAL)).toMatchObject({ ok: true, name: "eth0" });
  });

  test("loopback never; none found, no InternalIP, or two holders: a clear refusal", () => {
    expect(chooseInterface(["127.0.0.1"], LOCAL)).toEqual({
      ok: false,
      message: "no local interface holds the Node's InternalIP (127.0.0.1): name one (VIPD_INTERFACE)",
    });
    expect(chooseInterface([], LOCAL)).toEqual({ ok: false, message: "the Node has no InternalIP address" });
    expect(
      chooseInterface(["10.0.0.5"], { ...LOCAL, br0: [{ address: "10.0.0.5", internal: false }] }),
    ).toEqual({
      ok: false,
      message:
        "the Node's InternalIP 10.0.0.5 is on several interfaces (br0, eth1): name one (VIPD_INTERFACE)",
    });
    expect(chooseInterface(["not-an-ip"], LOCAL)).toMatchObject({ ok: false });
  });
});

describe("resolveAuto", () => {
  const n = node([{ type: "InternalIP", address: "10.0.0.5" }]);
  test("VIPD_INTERFACE (e.g. from the optional ConfigMap) wins, comma-separated", () => {
    expect(resolveAuto("bond0, eth2", n, LOCAL)).toEqual({
      ok: true,
      names: ["bond0", "eth2"],
      why: "VIPD_INTERFACE",
    });
  });
  test("unset or empty: detected from the Node", () => {
    for (const env of [undefined, "", " "])
      expect(resolveAuto(env, n, LOCAL)).toEqual({
        ok: true,
        names: ["eth1"],
        why: "holds the Node's InternalIP 10.0.0.5",
      });
    expect(resolveAuto(undefined, undefined, LOCAL)).toEqual({
      ok: false,
      message: "this Node is not in the API server's Node list",
    });
  });
});

describe("metricsOnly", () => {
  const app = metricsOnly(
    createApp(new FakeRuntime(), {
      tokens: [],
      metricsOpen: true,
      log: createLogger("t", { level: "error" }),
    }),
  );
  const get = (path: string, method = "GET") => app.fetch(new Request(`http://x${path}`, { method }));

  test("serves /metrics and /livez", async () => {
    const m = await get("/metrics");
    expect(m.status).toBe(200);
    expect(await m.text()).toContain("metallb_k8s_client_config_loaded_bool 1");
    expect((await get("/livez")).status).toBe(200);
  });

  test("nothing else: no state, no configuration, no mutation", async () => {
    for (const p of ["/api/v1/status", "/api/v1/config", "/readyz", "/", "/openapi.json"]) {
      const r = await get(p);
      expect(r.status).toBe(404);
      expect(((await r.json()) as { error: string }).error).toBe("NotFound");
    }
    const r = await get("/metrics", "POST");
    expect(r.status).toBe(405);
    expect(((await r.json()) as { error: string }).error).toBe("MethodNotAllowed");
  });
});
