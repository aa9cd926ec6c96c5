/**
 * Structured logs: one JSON object per line on stderr, with `ts`, `level`, `component` and
 * `message`, plus the caller's fields.
 *
 * The level threshold comes from the environment variable VIPD_LOG_LEVEL (debug, info, warn,
 * error; default info), read when the logger is created. Field values that JSON cannot carry are
 * made readable: bigint → decimal string, Error → { name, message }, Uint8Array → hex. The four
 * core keys always win over a field of the same name (that field is kept as `field.<name>`).
 *
 * @example
 * const log = createLogger("api");
 * log.info("listening", { address: "127.0.0.1:8080" });
 * // {"ts":"2026-11-26T12:00:00.000Z","level":"info","component":"api","message":"listening","address":"127.0.0.1:8080"}
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly component: string;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  /** Threshold; default: VIPD_LOG_LEVEL, else "info". */
  level?: LogLevel;
  /** Where lines go (without the trailing newline); default: stderr. */
  sink?: (line: string) => void;
  /** Clock; default: Date.now. */
  now?: () => number;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const CORE = new Set(["ts", "level", "component", "message"]);

export function isLogLevel(s: string): s is LogLevel {
  return Object.hasOwn(RANK, s);
}

/** The threshold named by `VIPD_LOG_LEVEL` (case-insensitive), or "info" if unset or unknown. */
export function levelFromEnv(env: Record<string, string | undefined> = process.env): LogLevel {
  const v = (env["VIPD_LOG_LEVEL"] ?? "").trim().toLowerCase();
  return isLogLevel(v) ? v : "info";
}

function stderrSink(line: string): void {
  process.stderr.write(`${line}\n`);
}

function plain(v: unknown, depth: number): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Error) return { name: v.name, message: v.message };
  if (v instanceof Uint8Array) return Buffer.from(v).toString("hex");
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? String(v) : v.toISOString();
  if (v instanceof Map) return plain(Object.fromEntries(v), depth);
  if (v instanceof Set) return plain([...v], depth);
  if (typeof v === "function" || typeof v === "symbol") return String(v);
  if (v === null || typeof v !== "object") return v;
  if (depth >= 6) return "[deep]";
  if (Array.isArray(v)) return v.map((x) => plain(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = plain(x, depth + 1);
  return out;
}

/** Formats one log line (no newline). Exported for tests and for tools that re-emit lines. */
export function formatLine(
  ts: number,
  level: LogLevel,
  component: string,
  message: string,
  fields?: LogFields,
): string {
  const rec: Record<string, unknown> = {
    ts: new Date(ts).toISOString(),
    level,
    component,
    message,
  };
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      rec[CORE.has(k) ? `field.${k}` : k] = plain(v, 0);
    }
  }
  try {
    return JSON.stringify(rec);
  } catch {
    // A cycle survived `plain` (it cannot, but a log call must never throw).
    return JSON.stringify({ ts: rec["ts"], level, component, message, fieldsError: "unserializable" });
  }
}

/** A logger for one component (e.g. "api", "bgp", "l2"). */
export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  const threshold = RANK[opts.level ?? levelFromEnv()];
  const sink = opts.sink ?? stderrSink;
  const now = opts.now ?? Date.now;
  const emit = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (RANK[level] < threshold) return;
    sink(formatLine(now(), level, component, message, fields));
  };
  return {
    component,
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    enabled: (level) => RANK[level] >= threshold,
  };
}
