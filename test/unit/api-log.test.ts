/** The structured logger (src/util/log.ts): one JSON object per line, level filter from env. */

import { describe, expect, test } from "bun:test";
import { createLogger, formatLine, levelFromEnv } from "../../src/util/log.ts";

describe("createLogger", () => {
  test("writes one JSON line per call with ts, level, component, message and fields", () => {
    const lines: string[] = [];
    const log = createLogger("bgp", { level: "debug", sink: (l) => lines.push(l), now: () => 0 });
    log.info("session established", { peer: "192.0.2.1", asn: 64512 });
    expect(lines).toEqual([
      '{"ts":"1970-01-01T00:00:00.000Z","level":"info","component":"bgp","message":"session established","peer":"192.0.2.1","asn":64512}',
    ]);
  });

  test("filters below the threshold", () => {
    const lines: string[] = [];
    const log = createLogger("l2", { level: "warn", sink: (l) => lines.push(l) });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(lines.map((l) => JSON.parse(l).level)).toEqual(["warn", "error"]);
    expect(log.enabled("info")).toBe(false);
    expect(log.enabled("error")).toBe(true);
  });

  test("VIPD_LOG_LEVEL sets the threshold; unknown values fall back to info", () => {
    expect(levelFromEnv({ VIPD_LOG_LEVEL: "DEBUG" })).toBe("debug");
    expect(levelFromEnv({ VIPD_LOG_LEVEL: " error " })).toBe("error");
    expect(levelFromEnv({ VIPD_LOG_LEVEL: "verbose" })).toBe("info");
    expect(levelFromEnv({})).toBe("info");
  });

  test("the level comes from the environment of a real process, and lines go to stderr", () => {
    const script =
      'import { createLogger } from "./src/util/log.ts"; const l = createLogger("x"); l.debug("d"); l.info("i"); l.error("e");';
    const run = (level: string) =>
      Bun.spawnSync(["bun", "-e", script], {
        env: { ...process.env, VIPD_LOG_LEVEL: level },
        cwd: `${import.meta.dir}/../..`,
      });
    const quiet = run("error");
    expect(quiet.stdout.toString()).toBe("");
    expect(
      quiet.stderr
        .toString()
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).message),
    ).toEqual(["e"]);
    const loud = run("debug");
    expect(
      loud.stderr
        .toString()
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).message),
    ).toEqual(["d", "i", "e"]);
  });
});

describe("formatLine", () => {
  test("core keys win; values JSON cannot carry are made readable", () => {
    const rec = JSON.parse(
      formatLine(0, "error", "api", "boom", {
        level: "spoof",
        message: "spoof",
        big: 1n << 70n,
        err: new TypeError("bad"),
        bytes: new Uint8Array([1, 255]),
        when: new Date(1000),
        set: new Set([1]),
        skipped: undefined,
      }),
    );
    expect(rec).toEqual({
      ts: "1970-01-01T00:00:00.000Z",
      level: "error",
      component: "api",
      message: "boom",
      "field.level": "spoof",
      "field.message": "spoof",
      big: "1180591620717411303424",
      err: { name: "TypeError", message: "bad" },
      bytes: "01ff",
      when: "1970-01-01T00:00:01.000Z",
      set: [1],
    });
  });

  test("a cyclic field does not throw", () => {
    const a: Record<string, unknown> = {};
    a["self"] = a;
    expect(() => JSON.parse(formatLine(0, "info", "x", "m", { a }))).not.toThrow();
  });
});
