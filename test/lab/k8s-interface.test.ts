/**
 * `vipd k8s --interface auto` in a real network namespace: a node with two uplinks (veth pairs
 * to a neighbour namespace), IPv4 and IPv6 addresses; the interface chosen for a Node object is
 * the one the kernel lists with the Node's InternalIP, read through the same code `vipd k8s` runs
 * (src/k8s/interface.ts: os.networkInterfaces() inside the namespace). Needs root.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Lab } from "../support/netns.ts";

const ROOT = join(import.meta.dir, "../..");
let lab: Lab | undefined;
afterAll(async () => {
  await lab?.destroy();
});

/** resolveAuto inside the node's namespace, for a Node with these addresses. */
async function detect(l: Lab, addresses: { type: string; address: string }[], env = ""): Promise<unknown> {
  const script = `
    import { localInterfaces, resolveAuto } from "${ROOT}/src/k8s/interface.ts";
    const node = { metadata: { name: "n1" }, status: { addresses: JSON.parse(process.env.NODE_ADDRESSES) } };
    console.log(JSON.stringify(resolveAuto(process.env.VIPD_INTERFACE, node, localInterfaces())));`;
  const r = await l.run("node", [
    "env",
    `VIPD_INTERFACE=${env}`,
    `NODE_ADDRESSES=${JSON.stringify(addresses)}`,
    "bun",
    "-e",
    script,
  ]);
  return JSON.parse(r.stdout.trim());
}

describe("--interface auto in a network namespace", () => {
  test("chooses the interface that holds the Node's InternalIP (IPv4 and IPv6); VIPD_INTERFACE wins", async () => {
    lab = await Lab.create("ifauto");
    await lab.addNs("node");
    await lab.addNs("peer");
    await lab.veth("node", "up0", "peer", "p0");
    await lab.veth("node", "up1", "peer", "p1");
    await lab.addr("node", "up0", "198.51.100.5/24");
    await lab.addr("node", "up1", "10.88.0.5/24");
    await lab.addr("node", "up1", "fd00:88::5/64");
    // The neighbour holds the same subnets: only the node's own addresses count.
    await lab.addr("peer", "p1", "10.88.0.1/24");

    expect(
      await detect(lab, [
        { type: "ExternalIP", address: "198.51.100.5" },
        { type: "InternalIP", address: "10.88.0.5" },
      ]),
    ).toEqual({ ok: true, names: ["up1"], why: "holds the Node's InternalIP 10.88.0.5" });
    expect(await detect(lab, [{ type: "InternalIP", address: "198.51.100.5" }])).toMatchObject({
      ok: true,
      names: ["up0"],
    });
    expect(await detect(lab, [{ type: "InternalIP", address: "fd00:88:0::5" }])).toMatchObject({
      ok: true,
      names: ["up1"],
    });
    // The neighbour's address is not the node's; loopback never counts.
    expect(await detect(lab, [{ type: "InternalIP", address: "10.88.0.1" }])).toEqual({
      ok: false,
      message: "no local interface holds the Node's InternalIP (10.88.0.1): name one (VIPD_INTERFACE)",
    });
    expect(await detect(lab, [{ type: "InternalIP", address: "127.0.0.1" }])).toMatchObject({ ok: false });
    expect(await detect(lab, [{ type: "InternalIP", address: "10.88.0.5" }], "up0")).toEqual({
      ok: true,
      names: ["up0"],
      why: "VIPD_INTERFACE",
    });
  });
});
