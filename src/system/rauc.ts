/**
 * What RAUC (the A/B update tool of the edge-node image, image/README.md → Update) answers, read
 * without running anything: `rauc status --output-format=json` → the slots; the progress lines
 * of `rauc install`; `rauc info --output-format=json` (the bundle check); and the trial log that vipd-boot-check writes on the node
 * (/var/lib/vipd/update/boot.log) → the last trial's outcome. Pure: text in, values out.
 */

export interface SlotView {
  /** RAUC's slot name, e.g. "rootfs.1". */
  name: string;
  /** The boot loader's name for it: "A" or "B". */
  bootname: string;
  device: string;
  /** RAUC's state: "booted", "active" or "inactive". */
  state: string;
  /** "good" when the boot loader will boot it, "bad" otherwise (from the ESP's entries). */
  bootStatus: string;
  booted: boolean;
  /** The slot the boot loader picks next. */
  primary: boolean;
  /** Version of the bundle last installed into it (null: flashed, never updated). */
  bundleVersion: string | null;
  installedAt: string | null;
  installCount: number | null;
}

export interface RaucStatus {
  compatible: string;
  /** Boot name of the booted slot ("A"/"B"), or null. */
  booted: string | null;
  /** Boot name of the primary slot, or null. */
  primary: string | null;
  slots: SlotView[];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function obj(v: Json | undefined): { [k: string]: Json } | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v : null;
}
function str(v: Json | undefined): string | null {
  return typeof v === "string" ? v : null;
}

/** Parses `rauc status --output-format=json`; throws an Error naming what is missing. */
export function parseRaucStatus(text: string): RaucStatus {
  let root: Json;
  try {
    root = JSON.parse(text) as Json;
  } catch {
    throw new Error(`rauc status: not JSON: ${text.slice(0, 120)}`);
  }
  const top = obj(root);
  if (top === null || !Array.isArray(top["slots"])) throw new Error("rauc status: no slots list");
  const primaryName = str(top["boot_primary"]);
  const bootedName = str(top["booted"]);
  const slots: SlotView[] = [];
  for (const entry of top["slots"]) {
    const e = obj(entry);
    if (e === null) continue;
    for (const [name, raw] of Object.entries(e)) {
      const s = obj(raw);
      if (s === null) continue;
      const status = obj(s["slot_status"]);
      const bundle = obj(status?.["bundle"]);
      const installed = obj(status?.["installed"]);
      const bootname = str(s["bootname"]) ?? "";
      const count = installed?.["count"];
      slots.push({
        name,
        bootname,
        device: str(s["device"]) ?? "",
        state: str(s["state"]) ?? "unknown",
        bootStatus: str(s["boot_status"]) ?? "unknown",
        booted: str(s["state"]) === "booted" || (bootedName !== null && bootname === bootedName),
        primary: primaryName !== null && (name === primaryName || bootname === primaryName),
        bundleVersion: str(bundle?.["version"]),
        installedAt: str(installed?.["timestamp"]),
        installCount: typeof count === "number" ? count : null,
      });
    }
  }
  slots.sort((a, b) => a.bootname.localeCompare(b.bootname));
  return {
    compatible: str(top["compatible"]) ?? "",
    booted: slots.find((s) => s.booted)?.bootname ?? bootedName,
    primary: slots.find((s) => s.primary)?.bootname ?? null,
    slots,
  };
}

export interface Progress {
  percent: number;
  message: string;
}

/** One line of `rauc install` output ("  40% Copying image to rootfs.1"); null for other lines. */
export function parseProgressLine(line: string): Progress | null {
  const m = /^\s*(\d{1,3})%\s+(.*?)\s*$/.exec(line);
  if (!m) return null;
  const percent = Number(m[1]);
  if (percent > 100) return null;
  return { percent, message: m[2] ?? "" };
}

/** `rauc info --output-format=json`: the bundle's compatible and version; throws when absent. */
export function parseRaucInfo(text: string): { compatible: string; version: string } {
  let v: Json;
  try {
    v = JSON.parse(text.trim()) as Json;
  } catch {
    throw new Error(`rauc info: not JSON: ${text.slice(0, 120)}`);
  }
  const o = obj(v);
  const compatible = str(o?.["compatible"]);
  const version = str(o?.["version"]);
  if (compatible === null || version === null) throw new Error("rauc info: no compatible or version");
  return { compatible, version };
}

/**
 * RAUC's message for a refused bundle, without D-Bus's wrapping ("Call failed: ...") and
 * GLib's error domain prefixes, on one line.
 */
export function cleanRaucError(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const last = lines.find((l) => /^Call failed:/.test(l)) ?? lines[lines.length - 1] ?? "";
  return (
    last
      .replace(/^Call failed:\s*/, "")
      .replace(/^(rauc-Error|GDBus\.Error:[\w.]+):\s*/, "")
      .slice(0, 500) || "no message"
  );
}

/**
 * The reason of a failed install in the RAUC service's journal lines (`rauc install` itself only
 * says "Installing `X` failed"): the last "Installation error: ..." or "... failed: ..." line.
 */
export function installErrorFrom(journal: string): string | null {
  const lines = journal.split("\n").map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /(?:^|: )Installation error: (.*)$/.exec(lines[i] as string);
    if (m) return m[1] as string;
  }
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i] as string;
    if (/(error|failed)/i.test(l) && !/^installing `.*` failed: \d+$/.test(l) && !/: finished$/.test(l))
      return l;
  }
  return null;
}

export interface TrialEntry {
  at: string;
  slot: string;
  message: string;
}

export interface TrialOutcome {
  /** "good": marked good after a trial; "rolledBack": the trial slot used up its tries; "trying". */
  outcome: "good" | "rolledBack" | "notReady" | "trying";
  slot: string;
  at: string;
  message: string;
}

/** Lines of vipd-boot-check's log: `2026-12-02T12:00:00Z slot B: message`. */
export function parseBootLog(text: string): TrialEntry[] {
  const out: TrialEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+) slot ([AB?]): (.*)$/.exec(line.trim());
    if (m) out.push({ at: m[1] as string, slot: m[2] as string, message: m[3] as string });
  }
  return out;
}

/** The last trial's outcome in the log (lines about an already good slot do not count). */
export function lastTrial(entries: readonly TrialEntry[]): TrialOutcome | null {
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i] as TrialEntry;
    const rolled = /^slot ([AB]) used up its tries/.exec(e.message);
    if (rolled) return { outcome: "rolledBack", slot: rolled[1] as string, at: e.at, message: e.message };
    if (e.message.startsWith("marked good"))
      return { outcome: "good", slot: e.slot, at: e.at, message: e.message };
    if (e.message.startsWith("not marked good"))
      return { outcome: "notReady", slot: e.slot, at: e.at, message: e.message };
    if (/is on trial/.test(e.message))
      return { outcome: "trying", slot: e.slot, at: e.at, message: e.message };
  }
  return null;
}
