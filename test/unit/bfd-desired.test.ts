/**
 * MetalLB BGPPeer + BFDProfile manifests → BFD sessions (src/bfd/desired.ts), parsed through the
 * real config schemas, then checked by the manager's own validation.
 */

import { expect, test } from "bun:test";
import { bfdSessionsFor } from "../../src/bfd/desired.ts";
import { validateSessions } from "../../src/bfd/manager.ts";
import { BFDProfile, BGPPeer } from "../../src/config/schemas.ts";

const profile = BFDProfile.parse({
  apiVersion: "metallb.io/v1beta1",
  kind: "BFDProfile",
  metadata: { name: "fast", namespace: "metallb-system" },
  spec: { receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3, minimumTtl: 250 },
});
const peer = (name: string, spec: Record<string, unknown>) =>
  BGPPeer.parse({
    apiVersion: "metallb.io/v1beta2",
    kind: "BGPPeer",
    metadata: { name, namespace: "metallb-system" },
    spec: { myASN: 64500, peerASN: 64501, ...spec },
  });

test("peers with a bfdProfile get sessions; the rest do not; problems are named", () => {
  const r = bfdSessionsFor(
    [
      peer("tor1", { peerAddress: "10.0.0.1", bfdProfile: "fast" }),
      peer("edge", {
        peerAddress: "192.0.2.9",
        sourceAddress: "10.0.0.5",
        ebgpMultiHop: true,
        bfdProfile: "fast",
      }),
      peer("plain", { peerAddress: "10.0.0.2" }),
      peer("typo", { peerAddress: "10.0.0.3", bfdProfile: "fsat" }),
    ],
    [profile],
  );
  expect(r.sessions.map((s) => [s.key, s.peer, s.local, s.multihop])).toEqual([
    ["tor1", "10.0.0.1", undefined, false],
    ["edge", "192.0.2.9", "10.0.0.5", true],
  ]);
  expect(r.sessions[1]!.profile).toMatchObject({
    transmitInterval: 50,
    receiveInterval: 50,
    minimumTtl: 250,
  });
  expect(r.problems).toEqual(['BGPPeer typo: BFDProfile "fsat" does not exist; BFD not started for it']);
  expect(validateSessions(r.sessions)).toEqual([]);
});
