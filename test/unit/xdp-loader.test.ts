/**
 * The loader's safety rails that need no root: it never mounts a bpf filesystem over a directory
 * that holds something, and it finds the compiled object where a deployment puts it.
 */

import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { defaultObjPath, ensureBpffs, LoaderError, objectCandidates } from "../../src/xdp/loader.ts";

const dir = mkdtempSync(`${tmpdir()}/vipd-xdp-loader-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a pin directory whose parent is a non-empty, non-bpf directory is refused, untouched", async () => {
  const parent = `${dir}/busy`;
  mkdirSync(parent);
  writeFileSync(`${parent}/precious`, "data");
  let err: unknown;
  try {
    await ensureBpffs(`${parent}/vipd`);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(LoaderError);
  expect(String(err)).toContain(`${parent} is not a bpf filesystem and is not empty`);
  expect(Bun.file(`${parent}/precious`).size).toBe(4);
});

test("the object is looked for in $VIPD_XDP_OBJECT first, then next to the executable, then the system, then the build", () => {
  const obj = `${dir}/custom.o`;
  writeFileSync(obj, "");
  const before = process.env.VIPD_XDP_OBJECT;
  process.env.VIPD_XDP_OBJECT = obj;
  try {
    const c = objectCandidates();
    expect(c[0]).toBe(obj);
    expect(c.slice(3, 5)).toEqual(["/usr/lib/vipd/arp_responder.o", "/usr/lib/vipd/xdp/arp_responder.o"]);
    expect(c[c.length - 1]).toEndWith("/build/xdp/arp_responder.o");
    expect(defaultObjPath()).toBe(obj);
  } finally {
    if (before === undefined) delete process.env.VIPD_XDP_OBJECT;
    else process.env.VIPD_XDP_OBJECT = before;
  }
});

test("a missing XDP object is explained to the operator first, the developer's build step last", async () => {
  const { missingObjectMessage } = await import("../../src/xdp/loader.ts");
  const msg = missingObjectMessage("/usr/lib/vipd/xdp/arp_responder.o", [
    "/usr/lib/vipd/xdp/arp_responder.o",
    "/opt/build/xdp/arp_responder.o",
  ]);
  expect(msg).toStartWith(
    "the XDP program file is missing: /usr/lib/vipd/xdp/arp_responder.o does not exist",
  );
  expect(msg).toContain("(also looked in /opt/build/xdp/arp_responder.o)");
  expect(msg).toContain("cannot answer ARP/NDP");
  expect(msg).toContain("update or re-flash the node");
  expect(msg).toContain("VIPD_XDP_OBJECT");
  // The developer's hint is there, but after everything an operator needs.
  expect(msg.indexOf("scripts/build-xdp.sh")).toBeGreaterThan(msg.indexOf("VIPD_XDP_OBJECT"));
  expect(msg).toEndWith("Developers: scripts/build-xdp.sh builds it from a source checkout.");
});
