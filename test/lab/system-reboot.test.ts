/**
 * A reboot through the API hands the node's traffic over first (issue #19, upgrade without
 * losing traffic): a 2-node site, `POST /api/v1/system/reboot` on the VIP's owner; the reboot
 * command is this test's own script (VIPD_REBOOT_COMMAND; RAUC's presence is faked with
 * VIPD_RAUC_CONF naming an empty system.conf), and at the instant vipd runs it the script asks,
 * from the client's namespace with arping, who answers for the VIP. Only the other node may: it
 * owns the VIP before the "reboot" begins. Real vipd processes, real XDP, real ARP. Needs root.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClusterLab, type LabNode, until, VIP } from "../support/cluster-lab/cluster-lab.ts";

setDefaultTimeout(90_000);

const work = mkdtempSync(join(tmpdir(), `vipd-reboot-${process.pid}-`));
const record = join(work, "reboot-record.txt");
let c: ClusterLab;

beforeAll(async () => {
  c = await ClusterLab.create({
    tag: "rbt",
    names: ["n1", "n2"],
    intervalMs: 100,
    deadAfterMs: 1000,
    riseMs: 1000,
  });
  const conf = join(work, "system.conf");
  writeFileSync(conf, "");
  const script = join(work, "reboot.sh");
  // The "reboot": which MACs answer ARP for the VIP on the client's segment right now.
  writeFileSync(
    script,
    `#!/bin/sh
out=$(ip netns exec ${c.lab.nsName("client")} arping -c 3 -w 2 -I eth0 ${VIP} 2>&1)
printf 'called from %s\\n%s\\n' "$(ip netns identify $$)" "$out" > ${record}.tmp
mv ${record}.tmp ${record}
`,
  );
  chmodSync(script, 0o755);
  // The nodes inherit this process's environment (test/support/netns.ts spawn).
  process.env.VIPD_RAUC_CONF = conf;
  process.env.VIPD_REBOOT_COMMAND = script;
  await c.startAll();
}, 120_000);

afterAll(async () => {
  delete process.env.VIPD_RAUC_CONF;
  delete process.env.VIPD_REBOOT_COMMAND;
  await c?.destroy();
  rmSync(work, { recursive: true, force: true });
});

test("POST /api/v1/system/reboot: the other node owns the VIP before the reboot command runs", async () => {
  const ownerName = await c.settled();
  const owner = c.node(ownerName);
  const other = c.nodes.find((n) => n.name !== ownerName) as LabNode;
  const r = await c.post<{ rebooting: boolean; drainsFirst: boolean }>(owner, "/api/v1/system/reboot", {});
  expect(r.code).toBe(202);
  expect(r.body).toMatchObject({ rebooting: true, drainsFirst: true });

  await until("the reboot command to run", async () => existsSync(record), 20_000, 100);
  const text = readFileSync(record, "utf8");
  console.log(`reboot command's view:\n${text}`);
  // It ran on the owner (its namespace), once the other node answered for the VIP alone.
  expect(text).toContain(`called from ${c.lab.nsName(ownerName)}`);
  const macs = new Set(
    [...text.matchAll(/([0-9a-f]{2}(?::[0-9a-f]{2}){5})/gi)].map((m) => m[1]!.toLowerCase()),
  );
  expect(macs.has(other.mac)).toBe(true);
  expect(macs.has(owner.mac)).toBe(false);
  // And the nodes agree: the other node owns it, the old owner holds nothing.
  expect(await c.holders()).toEqual([other.name]);
  const drained = owner.logs.find((l) => l.includes("drained before the reboot"));
  expect(drained).toBeDefined();
  console.log(`drain: ${drained}`);
});
