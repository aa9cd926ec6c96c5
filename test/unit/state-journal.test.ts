/**
 * The state file as table + journal (src/appliance/state-file.ts): over random sequences of
 * assignment tables (Services added, re-addressed, removed; unchanged ones the same objects, as
 * the allocator hands them), what a restart reads (readHeld) is always the table last written;
 * a line cut short by a crash ends the journal; a journal left beside a newer table is ignored.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  ASSIGNMENTS_FILE,
  HeldFile,
  heldText,
  JOURNAL_FILE,
  readHeld,
} from "../../src/appliance/state-file.ts";
import type { PlannedAssignment } from "../../src/plan/plan-types.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), `vipd-journal-${process.pid}-`));
  dirs.push(d);
  return d;
};

const table = (as: readonly PlannedAssignment[]) =>
  Object.fromEntries(as.map((a) => [a.key, { ips: [...a.ips], pool: a.pool }]));

const step = fc.oneof(
  fc.record({
    op: fc.constant("add" as const),
    key: fc.nat(30),
    ip: fc.nat(200),
    pool: fc.constantFrom("a", "b"),
  }),
  fc.record({ op: fc.constant("readdress" as const), at: fc.nat(), ip: fc.nat(200) }),
  fc.record({ op: fc.constant("remove" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("same" as const) }),
  fc.record({ op: fc.constant("restart" as const) }),
);

describe("the state file's journal", () => {
  test("after every write, a restart reads exactly the table last written", () => {
    const kinds = { whole: 0, appended: 0 };
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
        const dir = tempDir();
        let file = new HeldFile(dir, heldText);
        let as: PlannedAssignment[] = [];
        for (const s of steps) {
          const next = as.slice();
          if (s.op === "add") {
            const key = `ns/s${s.key}`;
            const i = next.findIndex((a) => a.key === key);
            const a = { key, pool: s.pool, ips: [`10.0.0.${s.ip}`] };
            if (i >= 0) next[i] = a;
            else next.push(a);
          } else if (s.op === "readdress" && next.length > 0) {
            const i = s.at % next.length;
            const old = next[i] as PlannedAssignment;
            next[i] = { ...old, ips: [`10.0.1.${s.ip}`, "fd00::1"] };
          } else if (s.op === "remove" && next.length > 0) next.splice(s.at % next.length, 1);
          else if (s.op === "restart") {
            // A new process: its first write is whole, whatever the journal held.
            kinds.whole += file.counts.whole;
            kinds.appended += file.counts.appended;
            file.close();
            expect(readHeld(dir)).toEqual(table(as));
            file = new HeldFile(dir, heldText);
          }
          next.sort((x, y) => (x.key < y.key ? -1 : 1));
          as = next;
          file.write(as);
          expect(readHeld(dir)).toEqual(table(as));
        }
        kinds.whole += file.counts.whole;
        kinds.appended += file.counts.appended;
        file.close();
        rmSync(dir, { recursive: true, force: true });
      }),
      { seed: 20261203, numRuns: 100 },
    );
    expect(kinds.appended).toBeGreaterThan(100);
    expect(kinds.whole).toBeGreaterThan(100);
  }, 60_000);

  test("a one-Service change appends one line; the table is written whole at first only", () => {
    const dir = tempDir();
    const file = new HeldFile(dir, heldText);
    const as: PlannedAssignment[] = Array.from({ length: 2000 }, (_, i) => ({
      key: `ns/s${String(i).padStart(5, "0")}`,
      pool: "lan",
      ips: [`10.1.${i >> 8}.${i & 255}`],
    }));
    file.write(as);
    const table0 = readFileSync(join(dir, ASSIGNMENTS_FILE), "utf8");
    const more = [...as, { key: "ns/t", pool: "lan", ips: ["10.2.0.1"] }];
    file.write(more);
    expect(file.counts).toEqual({ whole: 1, appended: 1 });
    expect(readFileSync(join(dir, ASSIGNMENTS_FILE), "utf8")).toBe(table0);
    expect(readFileSync(join(dir, JOURNAL_FILE), "utf8").trim().split("\n")).toHaveLength(2);
    expect(readHeld(dir)["ns/t"]).toEqual({ ips: ["10.2.0.1"], pool: "lan" });
    file.close();
  });

  test("a line cut short by a crash ends the journal; what came before it counts", () => {
    const dir = tempDir();
    const file = new HeldFile(dir, heldText);
    const a = { key: "ns/a", pool: "lan", ips: ["10.0.0.1"] };
    file.write([a]);
    const b = { key: "ns/b", pool: "lan", ips: ["10.0.0.2"] };
    file.write([a, b]);
    file.close();
    appendFileSync(join(dir, JOURNAL_FILE), '{"k":"ns/c","v":{"ips":["10.0');
    expect(readHeld(dir)).toEqual(table([a, b]));
  });

  test("a journal left beside a newer table (a crash before it was emptied) is ignored", () => {
    const dir = tempDir();
    const one = new HeldFile(dir, heldText);
    const a = { key: "ns/a", pool: "lan", ips: ["10.0.0.1"] };
    one.write([a]);
    one.write([a, { key: "ns/b", pool: "lan", ips: ["10.0.0.2"] }]);
    one.close();
    const stale = join(dir, "stale");
    copyFileSync(join(dir, JOURNAL_FILE), stale);
    // The next process re-addressed b: its table, then the crash left the old journal.
    const two = new HeldFile(dir, heldText);
    const b2 = { key: "ns/b", pool: "lan", ips: ["10.0.0.9"] };
    two.write([a, b2]);
    two.close();
    copyFileSync(stale, join(dir, JOURNAL_FILE));
    expect(readHeld(dir)).toEqual(table([a, b2]));
    // No journal at all, or one without its first line: the table alone.
    writeFileSync(join(dir, JOURNAL_FILE), "");
    expect(readHeld(dir)).toEqual(table([a, b2]));
  });
});
