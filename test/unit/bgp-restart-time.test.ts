/**
 * NodeSettings.spec.bgp.gracefulRestartSeconds: the restart time this node advertises in its
 * graceful-restart capability (RFC 4724), which a helping peer (BIRD, FRR) holds the node's routes
 * for while it restarts. Through the real validator, the driver's peer config and the OPEN codec.
 */
import { describe, expect, test } from "bun:test";
import { buildOpen } from "../../src/bgp/negotiate.ts";
import { type Config, configFromText, formatProblem } from "../../src/config/index.ts";
import { peerConfig } from "../../src/drivers/bgp.ts";

const PEER = `apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: { name: tor }
spec: { myASN: 64500, peerASN: 64501, peerAddress: 10.1.0.1, enableGracefulRestart: true }
`;
const settings = (bgp: string) => `---
apiVersion: vipd.io/v1alpha1
kind: NodeSettings
metadata: { name: n }
spec:
  bgp: ${bgp}
`;

function config(yaml: string): Config {
  const r = configFromText(yaml, "c.yaml");
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join("\n"));
  return r.config;
}

/** The restart time in the OPEN this node sends to the config's one peer. */
function advertised(c: Config): number | undefined {
  const p = c.peers[0];
  if (!p) throw new Error("no peer");
  const open = buildOpen(peerConfig(p, c.nodeSettings?.spec.bgp?.gracefulRestartSeconds), {
    bgpId: 1,
    holdTime: 90,
    restarting: false,
  });
  const gr = open.capabilities.find((x) => x.kind === "graceful-restart");
  return gr?.kind === "graceful-restart" ? gr.time : undefined;
}

describe("NodeSettings.spec.bgp.gracefulRestartSeconds", () => {
  test("unset: the OPEN advertises 120 s (MetalLB's FRR default)", () => {
    expect(advertised(config(PEER))).toBe(120);
    expect(advertised(config(`${PEER}${settings("{}")}`))).toBe(120);
  });
  test("a peer without enableGracefulRestart gets no graceful-restart capability, whatever the time", () => {
    const plain = PEER.replace(", enableGracefulRestart: true", "");
    expect(advertised(config(`${plain}${settings("{ gracefulRestartSeconds: 600 }")}`))).toBeUndefined();
  });
  test("set: the OPEN advertises it", () => {
    expect(advertised(config(`${PEER}${settings("{ gracefulRestartSeconds: 600 }")}`))).toBe(600);
    expect(advertised(config(`${PEER}${settings("{ gracefulRestartSeconds: 4095 }")}`))).toBe(4095);
  });
  test("out of range or not a whole number: refused with file:line and the field", () => {
    for (const bad of ["0", "4096", "1.5", '"300s"']) {
      const r = configFromText(`${PEER}${settings(`{ gracefulRestartSeconds: ${bad} }`)}`, "c.yaml");
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      const text = r.problems.map(formatProblem).join("\n");
      expect(text).toContain("c.yaml:10:");
      expect(text).toContain("gracefulRestartSeconds");
    }
  });
  test("an unknown field under bgp is refused (strict)", () => {
    const r = configFromText(`${PEER}${settings("{ restartTime: 300 }")}`, "c.yaml");
    expect(r.ok).toBe(false);
  });
});
