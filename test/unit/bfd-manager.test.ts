/**
 * BfdManager input validation and BFDProfile handling (no sockets: every call here is rejected
 * before the manager touches the network, and must change nothing).
 */

import { describe, expect, test } from "bun:test";
import { BfdConfigError, BfdManager, type DesiredSession, validateSessions } from "../../src/bfd/manager.ts";
import { DEFAULT_PROFILE, profileToParams, validateProfile } from "../../src/bfd/profile.ts";

const ok: DesiredSession = { key: "r1", peer: "192.0.2.1", multihop: false, profile: DEFAULT_PROFILE };

describe("BFDProfile", () => {
  test("MetalLB defaults are valid and map to microseconds", () => {
    expect(validateProfile(DEFAULT_PROFILE)).toEqual([]);
    expect(
      profileToParams({ ...DEFAULT_PROFILE, transmitInterval: 50, receiveInterval: 70, passiveMode: true }),
    ).toEqual({
      desiredMinTxUs: 50_000,
      requiredMinRxUs: 70_000,
      detectMult: 3,
      passive: true,
    });
  });

  test("echo mode is rejected with a message saying it is not supported", () => {
    const errs = validateProfile({ ...DEFAULT_PROFILE, echoMode: true });
    expect(errs).toHaveLength(1);
    expect(errs[0]).toContain("echoMode");
    expect(errs[0]).toContain("not supported");
  });

  test("out-of-range fields are named", () => {
    const errs = validateProfile({
      ...DEFAULT_PROFILE,
      receiveInterval: 5,
      detectMultiplier: 1,
      minimumTtl: 255,
    });
    expect(errs.map((e) => e.split(":")[0])).toEqual(["receiveInterval", "detectMultiplier", "minimumTtl"]);
  });
});

describe("setSessions validation", () => {
  const cases: [string, DesiredSession[], string][] = [
    ["duplicate keys", [ok, { ...ok, peer: "192.0.2.2" }], "duplicate key"],
    ["a peer that is not an address", [{ ...ok, peer: "router-1" }], "peer: not an IP address"],
    ["mixed families", [{ ...ok, local: "2001:db8::1" }], "differ in family"],
    ["two sessions to one peer", [ok, { ...ok, key: "r2" }], "another session already runs to 192.0.2.1"],
    ["echo mode", [{ ...ok, profile: { ...DEFAULT_PROFILE, echoMode: true } }], "echo mode is not supported"],
    [
      "a SHA1 key longer than 20 bytes",
      [{ ...ok, auth: { type: "KeyedSha1", keyId: 1, secret: "x".repeat(21) } }],
      "auth.secret must be 1..20 bytes",
    ],
  ];
  for (const [name, desired, msg] of cases) {
    test(`${name} is refused`, () => {
      const problems = validateSessions(desired);
      expect(problems.join("\n")).toContain(msg);
    });
  }

  test("a refused set throws BfdConfigError and leaves the manager empty", async () => {
    const m = new BfdManager({});
    const err = await m
      .setSessions([{ ...ok, profile: { ...DEFAULT_PROFILE, echoMode: true } }])
      .catch((e) => e);
    expect(err).toBeInstanceOf(BfdConfigError);
    expect((err as BfdConfigError).problems[0]).toContain('session "r1": echoMode');
    expect(m.status().sessions).toEqual([]);
    await m.close();
  });

  test("a local address this host does not have: a clear error, nothing changes, nothing sent", async () => {
    const m = new BfdManager({});
    // 198.51.100.0/24 (TEST-NET-2) is configured nowhere: bind fails before any socket is usable.
    const err = await m.setSessions([{ ...ok, local: "198.51.100.77" }]).catch((e: unknown) => e);
    expect(String(err)).toContain("cannot open a BFD socket on 198.51.100.77");
    expect(String(err)).toContain("EADDRNOTAVAIL");
    expect(m.status().sessions).toEqual([]);
    await m.close();
  });

  test("the same peer may have a single-hop and a multihop session", () => {
    expect(validateSessions([ok, { ...ok, key: "r1-mh", multihop: true }])).toEqual([]);
  });
});

describe("metrics", () => {
  test("every BFD family passes the API's Prometheus naming rules", async () => {
    const { familyProblem } = await import("../../src/api/metrics.ts");
    const { bfdMetricFamilies } = await import("../../src/bfd/metrics.ts");
    const m = new BfdManager({});
    const st = m.status();
    st.sessions.push({
      key: "r1",
      peer: "192.0.2.1",
      local: null,
      multihop: false,
      state: "Up",
      remoteState: "Up",
      localDiscr: 1,
      remoteDiscr: 2,
      txIntervalMs: 50,
      rxIntervalMs: 50,
      detectionTimeMs: 150,
      detectMult: 3,
      remoteDetectMult: 3,
      lastDiag: "None",
      flaps: 2,
      pollActive: false,
      srcPort: 49152,
      packetsSent: 10,
      packetsReceived: 9,
    });
    st.socketErrors["ECONNREFUSED"] = 1;
    const fams = bfdMetricFamilies(st);
    for (const f of fams) expect([f.name, familyProblem(f, new Set())]).toEqual([f.name, null]);
    const up = fams.find((f) => f.name === "vipd_bfd_session_up")!;
    expect(up.samples).toEqual([{ labels: { session: "r1" }, value: 1 }]);
    expect(fams.find((f) => f.name === "vipd_bfd_session_detection_time_seconds")!.samples[0]!.value).toBe(
      0.15,
    );
    await m.close();
  });
});
