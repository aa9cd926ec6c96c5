/**
 * The XDP driver's pure half: validating the desired set, and the diff against the map.
 * A story: the node owns two VIPs on eth0; one moves to eth1, one changes MAC, one goes away.
 */

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { formatIp, parseIp } from "../../src/util/ip.ts";
import { entryId, formatMac, parseMac, type VipEntry } from "../../src/xdp/layout.ts";
import { diffEntries, type InterfaceInfo, resolveDesired } from "../../src/xdp/plan.ts";

const IFS: Record<string, InterfaceInfo> = {
  eth0: { ifindex: 2, mac: parseMac("02:00:00:00:00:02")! },
  eth1: { ifindex: 3, mac: parseMac("02:00:00:00:00:03")! },
};
const lookup = (n: string) => IFS[n] ?? null;

describe("resolveDesired", () => {
  test("the MAC defaults to the interface's own; an explicit one wins", () => {
    const r = resolveDesired(
      [
        { ifname: "eth0", ip: "192.0.2.10" },
        { ifname: "eth1", ip: "2001:db8::10", mac: "02:aa:bb:cc:dd:ee" },
      ],
      lookup,
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.entries.map((e) => [e.ifname, e.ifindex, formatIp(e.ip), formatMac(e.mac)])).toEqual([
      ["eth0", 2, "192.0.2.10", "02:00:00:00:00:02"],
      ["eth1", 3, "2001:db8::10", "02:aa:bb:cc:dd:ee"],
    ]);
  });

  test("the same VIP twice on one interface collapses; on two interfaces it is two entries", () => {
    const r = resolveDesired(
      [
        { ifname: "eth0", ip: "192.0.2.10" },
        { ifname: "eth0", ip: "192.0.2.10" },
        { ifname: "eth1", ip: "192.0.2.10" },
      ],
      lookup,
    );
    expect(r.ok && r.entries.length).toBe(2);
  });

  test("every problem is reported, each naming its entry, and nothing is resolved", () => {
    const r = resolveDesired(
      [
        { ifname: "eth9", ip: "192.0.2.10" },
        { ifname: "eth0", ip: "192.0.2.300" },
        { ifname: "eth0", ip: "192.0.2.11", mac: "zz" },
        { ifname: "eth0", ip: "192.0.2.12", mac: "01:00:5e:00:00:01" },
        { ifname: "eth0", ip: "ff02::1" },
        { ifname: "eth0", ip: "192.0.2.13" },
        { ifname: "eth0", ip: "192.0.2.13", mac: "02:00:00:00:00:99" },
      ],
      lookup,
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual([
      'entry 0 (eth9 192.0.2.10): no interface named "eth9"',
      'entry 1 (eth0 192.0.2.300): "192.0.2.300" is not an IP address',
      'entry 2 (eth0 192.0.2.11): "zz" is not a MAC address',
      "entry 3 (eth0 192.0.2.12): 01:00:5e:00:00:01 is not a unicast MAC address",
      "entry 4 (eth0 ff02::1): a multicast address cannot be a VIP",
      "entry 6 (eth0 192.0.2.13): already listed with MAC 02:00:00:00:00:02, now 02:00:00:00:00:99",
    ]);
  });
});

describe("diffEntries", () => {
  const e = (ifindex: number, ip: string, mac: string): VipEntry => ({
    ifindex,
    ip: parseIp(ip)!,
    mac: parseMac(mac)!,
  });

  test("a VIP moves to eth1, one changes MAC, one goes away, one stays", () => {
    const current = [
      e(2, "192.0.2.10", "02:00:00:00:00:02"),
      e(2, "192.0.2.11", "02:00:00:00:00:02"),
      e(2, "192.0.2.12", "02:00:00:00:00:02"),
      e(2, "192.0.2.13", "02:00:00:00:00:02"),
    ];
    const desired = [
      { ...e(3, "192.0.2.10", "02:00:00:00:00:03"), ifname: "eth1" },
      { ...e(2, "192.0.2.11", "02:00:00:00:00:99"), ifname: "eth0" },
      { ...e(2, "192.0.2.13", "02:00:00:00:00:02"), ifname: "eth0" },
    ];
    const d = diffEntries(current, desired);
    const ids = (xs: VipEntry[]) => xs.map((x) => entryId(x.ifindex, x.ip));
    expect(ids(d.add)).toEqual(["3/192.0.2.10"]);
    expect(ids(d.change)).toEqual(["2/192.0.2.11"]);
    expect(ids(d.remove)).toEqual(["2/192.0.2.10", "2/192.0.2.12"]);
    expect(d.unchanged).toBe(1);
  });

  test("applying the diff to any map gives exactly the desired set, and a second diff is empty", () => {
    const entry = fc
      .record({
        ifindex: fc.integer({ min: 1, max: 3 }),
        last: fc.integer({ min: 0, max: 7 }),
        m: fc.integer({ min: 0, max: 2 }),
      })
      .map(({ ifindex, last, m }) => e(ifindex, `192.0.2.${last}`, `02:00:00:00:00:0${m}`));
    const uniq = (xs: VipEntry[]) => [...new Map(xs.map((x) => [entryId(x.ifindex, x.ip), x])).values()];
    fc.assert(
      fc.property(fc.array(entry), fc.array(entry), (cur, want) => {
        const current = uniq(cur);
        const desired = uniq(want).map((x) => ({ ...x, ifname: `if${x.ifindex}` }));
        const d = diffEntries(current, desired);
        const map = new Map(current.map((x) => [entryId(x.ifindex, x.ip), formatMac(x.mac)]));
        for (const r of d.remove) map.delete(entryId(r.ifindex, r.ip));
        for (const a of [...d.add, ...d.change]) map.set(entryId(a.ifindex, a.ip), formatMac(a.mac));
        expect(map).toEqual(new Map(desired.map((x) => [entryId(x.ifindex, x.ip), formatMac(x.mac)])));
        const after = [...map].map(([id, mac]) => {
          const [ifindex, ip] = id.split("/") as [string, string];
          return e(Number(ifindex), ip, mac);
        });
        const again = diffEntries(after, desired);
        expect([again.add.length, again.change.length, again.remove.length]).toEqual([0, 0, 0]);
      }),
    );
  });
});
