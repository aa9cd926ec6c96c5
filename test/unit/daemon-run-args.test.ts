/**
 * `vipd run`'s command line (src/appliance/run.ts): flags, defaults, and HOST:PORT parsing for
 * --api-listen (IPv4, bracketed IPv6, names).
 */
import { describe, expect, test } from "bun:test";
import { parseRunArgs, splitHostPort } from "../../src/appliance/run.ts";

describe("parseRunArgs", () => {
  test("defaults: state in /var/lib/vipd, no local delivery, node name and API address left to settings", () => {
    expect(parseRunArgs(["--config", "/etc/vipd"])).toEqual({
      configPaths: ["/etc/vipd"],
      nodeName: undefined,
      apiListen: undefined,
      localDelivery: false,
      stateDir: "/var/lib/vipd",
    });
  });

  test("every flag, --config repeated in order, --state-dir '' for none", () => {
    expect(
      parseRunArgs([
        "--config",
        "a.yaml",
        "--config",
        "conf.d",
        "--node-name",
        "edge-1",
        "--api-listen",
        "[::1]:8080",
        "--local-delivery",
        "--state-dir",
        "",
      ]),
    ).toEqual({
      configPaths: ["a.yaml", "conf.d"],
      nodeName: "edge-1",
      apiListen: "[::1]:8080",
      localDelivery: true,
      stateDir: undefined,
    });
  });

  test("errors: no --config, an unknown flag, a stray positional, a flag without its value", () => {
    expect(parseRunArgs([])).toEqual({ error: "--config is required" });
    expect("error" in parseRunArgs(["--config", "a", "--frobnicate"])).toBe(true);
    expect("error" in parseRunArgs(["--config", "a", "extra"])).toBe(true);
    expect("error" in parseRunArgs(["--config"])).toBe(true);
  });
});

describe("splitHostPort", () => {
  test("IPv4, bracketed IPv6, names, port 0 (any free port)", () => {
    expect(splitHostPort("127.0.0.1:7473")).toEqual({ hostname: "127.0.0.1", port: 7473 });
    expect(splitHostPort("[::1]:7473")).toEqual({ hostname: "::1", port: 7473 });
    expect(splitHostPort("[fd00::1]:80")).toEqual({ hostname: "fd00::1", port: 80 });
    expect(splitHostPort("localhost:8080")).toEqual({ hostname: "localhost", port: 8080 });
    expect(splitHostPort("0.0.0.0:0")).toEqual({ hostname: "0.0.0.0", port: 0 });
  });

  test("refused: no port, a port above 65535, not a number", () => {
    expect(splitHostPort("127.0.0.1")).toBeNull();
    expect(splitHostPort("127.0.0.1:65536")).toBeNull();
    expect(splitHostPort("127.0.0.1:http")).toBeNull();
    expect(splitHostPort("nonsense")).toBeNull();
  });
});
