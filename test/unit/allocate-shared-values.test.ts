/**
 * The allocation results share values between Services to save memory at 10,000 Services
 * (src/plan/allocate.ts, src/ipam/request.ts): one empty warnings array for every view without
 * warnings, one port list per distinct set, the planner's assignments holding the views' address
 * arrays. A shared value must never carry one Service's data into another's: a Service that gives
 * up its address gets its own warning, and the others keep none, run after run.
 */

import { expect, test } from "bun:test";
import { configFromText } from "../../src/config/index.ts";
import { basics } from "../../src/ipam/request.ts";
import { allocate, emptyAllocation } from "../../src/plan/allocate.ts";

const POOL = (addresses: string) => `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: { name: lan, namespace: metallb-system }
spec:
  addresses: [${addresses}]
`;

const service = (name: string, ip?: string) => `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop }
spec:
  type: LoadBalancer
  ports: [{ port: 80 }]
${ip === undefined ? "" : `  loadBalancerIP: ${ip}\n`}`;

function config(text: string) {
  const r = configFromText(text, "test.yaml");
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join("; "));
  return r.config;
}

test("a replaced Service's warning stays its own; views and assignments agree", () => {
  const first = config(`${POOL('"10.0.0.0/29"')}${service("a")}${service("b")}${service("c")}`);
  const s1 = allocate(first, emptyAllocation());
  expect(s1.services.map((v) => v.warnings)).toEqual([[], [], []]);
  for (const a of s1.assignments) {
    const v = s1.services.find((x) => `${x.namespace}/${x.name}` === a.key);
    expect(v?.ips).toEqual([...a.ips]);
  }
  // b asks for another address: it gives up the one it had (a warning of its own), a and c keep theirs.
  const bIp = s1.assignments.find((a) => a.key === "shop/b")?.ips[0];
  const other = bIp === "10.0.0.5" ? "10.0.0.6" : "10.0.0.5";
  const second = config(`${POOL('"10.0.0.0/29"')}${service("a")}${service("b", other)}${service("c")}`);
  const s2 = allocate(second, s1, {}, { full: true });
  const byName = new Map(s2.services.map((v) => [v.name, v]));
  expect(byName.get("b")?.ips).toEqual([other]);
  expect(byName.get("b")?.warnings.length).toBe(1);
  expect(byName.get("a")?.warnings).toEqual([]);
  expect(byName.get("c")?.warnings).toEqual([]);
  // And a third run over the same config: nobody carries b's warning.
  const s3 = allocate(second, s2, {}, { full: true });
  for (const v of s3.services) expect(v.warnings).toEqual([]);
  expect(s1.services.map((v) => v.warnings)).toEqual([[], [], []]);
});

test("Services with the same ports share one frozen port list; different ones do not mix", () => {
  const c = config(
    `${POOL('"10.0.0.0/29"')}${service("a")}${service("b")}---
apiVersion: v1
kind: Service
metadata: { name: d, namespace: shop }
spec:
  type: LoadBalancer
  ports: [{ port: 443 }, { port: 80 }, { port: 443 }]
`,
  );
  const [a, b, d] = c.services.map((s) => basics(s));
  expect(a?.ports).toEqual(["80/TCP"]);
  expect(a?.ports).toBe(b?.ports as readonly string[]);
  expect(Object.isFrozen(a?.ports)).toBe(true);
  expect(d?.ports).toEqual(["443/TCP", "80/TCP"]);
});
