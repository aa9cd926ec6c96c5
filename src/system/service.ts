/**
 * System updates on the edge-node image (the driver): receives a RAUC bundle streamed by the API
 * onto the data partition (size-limited), has RAUC check its signature and compatibility before
 * anything is written to a slot (`rauc info`), installs it into the other root slot
 * (`rauc install`, progress from its output), reports slots and versions (`rauc status
 * --output-format=json`, the booted root's build-info.json, vipd-boot-check's trial log), and
 * reboots. The pure parts are ./rauc.ts and ./update-state.ts.
 *
 * Present only where RAUC is configured (/etc/rauc/system.conf): `systemUpdatesIfPresent()`.
 */

import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../util/log.ts";
import {
  cleanRaucError,
  installErrorFrom,
  lastTrial,
  parseBootLog,
  parseProgressLine,
  parseRaucInfo,
  parseRaucStatus,
  type RaucStatus,
  type TrialOutcome,
} from "./rauc.ts";
import type { SeedState } from "./seed-state.ts";
import {
  parseLastResult,
  type UpdateEvent,
  type UpdateResult,
  type UpdateRunning,
  UpdateTracker,
} from "./update-state.ts";

export type SystemErrorCode =
  | "PayloadTooLarge"
  | "EmptyBody"
  | "IncompleteBody"
  | "InvalidBundle"
  | "IncompatibleBundle"
  | "UpdateInProgress"
  | "Rebooting"
  | "InstallFailed";

/** A refusal or failure with the HTTP status and error code the API answers with. */
export class SystemError extends Error {
  constructor(
    readonly status: 400 | 409 | 413 | 422 | 500 | 503,
    readonly code: SystemErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface SystemView {
  compatible: string;
  booted: string | null;
  primary: string | null;
  /** The booted root's build information (image version, vipd, kernel, ...). */
  image: Record<string, string>;
  slots: RaucStatus["slots"];
  /** Set when RAUC could not be asked (the rest is what could be read). */
  error?: string;
  update: { running: UpdateRunning | null; last: UpdateResult | null; lastTrial: TrialOutcome | null };
  maxBundleBytes: number;
  /** What vipd-seed did with the site's seed at this boot (null: no record). */
  seed?: SeedState | null;
}

/** What a drain before a reboot did (src/system/drain.ts). */
export interface DrainReport {
  /** Layer-2 VIPs another member owns now. */
  handedOver: string[];
  /** VIPs this node still answered for when the drain gave up waiting. */
  left: string[];
  /** Why a VIP could not be handed over (no other eligible node, ...). */
  refused: { ip: string; error: string; message: string }[];
  ms: number;
}

/** What the API needs from the node's update machinery. */
export interface SystemUpdates {
  readonly maxBundleBytes: number;
  view(): Promise<SystemView>;
  /** Receives, checks and installs a bundle; throws SystemError for a refusal (nothing changed). */
  update(body: ReadableStream<Uint8Array> | null, declared: number | null, by: string): Promise<UpdateResult>;
  /**
   * Drains this node (hands its layer-2 VIPs to the other members, bounded), then runs the
   * reboot command; starts after `delayMs` (so the answer gets out). Refused while an update runs.
   */
  reboot(by: string, delayMs?: number): void;
}

export interface SystemUpdatesOptions {
  /** Where bundles are received and the last result is kept (default /var/lib/vipd/update). */
  dir?: string;
  /** Largest bundle accepted, in bytes (default 640 MiB). */
  maxBundleBytes?: number;
  buildInfo?: string;
  log: Logger;
  now?: () => number;
  /** Update progress for the watch stream (event type `update`). */
  onEvent?: (e: UpdateEvent) => void;
  /** Before the reboot command: hands the node's traffic to the other members (bounded). */
  drain?: () => Promise<DrainReport>;
  /** The reboot command (default `systemctl reboot`; $VIPD_REBOOT_COMMAND, space-separated). */
  rebootCommand?: string[];
  /** The `rauc` executable (default "rauc" from PATH). */
  rauc?: string;
  /** Run `rauc info` outside vipd's sandbox as a transient unit (systemd-run); default true. */
  transientCheck?: boolean;
}

export const DEFAULT_MAX_BUNDLE_BYTES = 640 * 1024 * 1024;
const RAUC_CONF = "/etc/rauc/system.conf";
/** The bundle being received, in the update directory (removed when its install ends). */
const UPLOAD_FILE = "upload.raucb";

interface Ran {
  code: number;
  out: string;
  err: string;
}

async function run(cmd: string[], timeoutMs: number, onLine?: (line: string) => void): Promise<Ran> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const readOut = async (): Promise<string> => {
    let all = "";
    let pending = "";
    const dec = new TextDecoder();
    for await (const chunk of p.stdout) {
      const text = dec.decode(chunk, { stream: true });
      all += text;
      pending += text;
      const lines = pending.split(/\r?\n|\r/);
      pending = lines.pop() ?? "";
      for (const l of lines) onLine?.(l);
    }
    if (pending !== "") onLine?.(pending);
    return all;
  };
  const [out, err, code] = await Promise.all([readOut(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, out, err };
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

export class RaucSystemUpdates implements SystemUpdates {
  readonly maxBundleBytes: number;
  private readonly dir: string;
  private readonly buildInfo: string;
  private readonly log: Logger;
  private readonly tracker: UpdateTracker;
  private rebooting = false;
  private readonly opts: SystemUpdatesOptions;
  private readonly rauc: string;
  /** The `rauc status` running now: concurrent callers share it (single flight). */
  private statusInFlight: Promise<RaucStatus> | null = null;

  constructor(opts: SystemUpdatesOptions) {
    this.opts = opts;
    this.rauc = opts.rauc ?? "rauc";
    this.dir = opts.dir ?? "/var/lib/vipd/update";
    this.maxBundleBytes = opts.maxBundleBytes ?? DEFAULT_MAX_BUNDLE_BYTES;
    this.buildInfo = opts.buildInfo ?? "/usr/lib/vipd/build-info.json";
    this.log = opts.log;
    this.tracker = new UpdateTracker(
      opts.now ?? Date.now,
      parseLastResult(readText(join(this.dir, "last-update.json"))),
      opts.onEvent,
    );
    this.removeStaleUpload();
  }

  /**
   * A bundle half-received when the node lost power (or vipd was killed) is never installed: no
   * update survives a restart of vipd. Removed at start, so it does not hold the data partition.
   */
  private removeStaleUpload(): void {
    const file = join(this.dir, UPLOAD_FILE);
    try {
      unlinkSync(file);
      this.log.warn("removed an update bundle left half-received by the previous run", { file });
    } catch {
      // none: the usual case
    }
  }

  /**
   * `rauc status`, one at a time: a caller that asks while one runs gets that one's answer (each
   * GET /api/v1/system asks, and one took over 30 s under TCG; piling them up made it slower).
   */
  private raucStatus(): Promise<RaucStatus> {
    if (this.statusInFlight === null) {
      this.statusInFlight = this.raucStatusOnce().finally(() => {
        this.statusInFlight = null;
      });
    }
    return this.statusInFlight;
  }

  private async raucStatusOnce(): Promise<RaucStatus> {
    // 120 s: under QEMU/TCG on a loaded machine one `rauc status` (D-Bus + the boot backend's
    // shell calls) was measured over 30 s, and a killed one failed an install (500 InternalError).
    // --detailed: without it RAUC leaves out each slot's status (the bundle version installed).
    const r = await run([this.rauc, "status", "--detailed", "--output-format=json"], 120_000);
    if (r.code !== 0) throw new Error(`rauc status: ${cleanRaucError(r.err || r.out)}`);
    return parseRaucStatus(r.out);
  }

  async view(): Promise<SystemView> {
    let image: Record<string, string> = {};
    try {
      image = JSON.parse(readText(this.buildInfo) ?? "{}") as Record<string, string>;
    } catch {
      image = {};
    }
    const trial = lastTrial(parseBootLog(readText(join(this.dir, "boot.log")) ?? ""));
    const update = { running: this.tracker.current(), last: this.tracker.lastResult(), lastTrial: trial };
    try {
      const st = await this.raucStatus();
      return { ...st, image, update, maxBundleBytes: this.maxBundleBytes };
    } catch (e) {
      return {
        compatible: "",
        booted: null,
        primary: null,
        image,
        slots: [],
        error: (e as Error).message,
        update,
        maxBundleBytes: this.maxBundleBytes,
      };
    }
  }

  async update(
    body: ReadableStream<Uint8Array> | null,
    declared: number | null,
    by: string,
  ): Promise<UpdateResult> {
    if (this.rebooting) throw new SystemError(409, "Rebooting", "the node is rebooting");
    if (declared !== null && declared > this.maxBundleBytes)
      throw new SystemError(
        413,
        "PayloadTooLarge",
        `the bundle (${declared} bytes) exceeds the limit of ${this.maxBundleBytes} bytes`,
      );
    if (!this.tracker.begin(by, declared))
      throw new SystemError(409, "UpdateInProgress", "an update is running already; see GET /api/v1/system");
    const file = join(this.dir, UPLOAD_FILE);
    let bytes = 0;
    const refuse = (e: SystemError): never => {
      const r = this.tracker.finish({
        result: "refused",
        error: e.code,
        message: e.message,
        bundleBytes: bytes,
      });
      this.store(r);
      throw e;
    };
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      bytes = await this.receive(body, declared, file).catch((e) => {
        if (e instanceof SystemError) refuse(e);
        throw e;
      });
      this.log.info("update bundle received", { bytes, by });
      this.tracker.phase("checking", "verifying the bundle's signature and compatibility");
      const info = await this.check(file).catch((e) => {
        if (e instanceof SystemError) refuse(e);
        throw e;
      });
      this.tracker.phase("installing", `installing ${info.version}`);
      const r = await run([this.rauc, "install", file], 1_800_000, (line) => {
        const p = parseProgressLine(line);
        if (p) this.tracker.progress(p);
      });
      if (r.code !== 0) {
        // The command line only says that it failed; the service's journal says why.
        const j = await run(
          ["journalctl", "-u", "rauc.service", "-o", "cat", "-n", "30", "--no-pager"],
          30_000,
        );
        const msg = installErrorFrom(j.out) ?? cleanRaucError(r.err || r.out);
        const done = this.tracker.finish({
          result: "failed",
          error: "InstallFailed",
          message: `rauc install: ${msg}`,
          bundleVersion: info.version,
          bundleBytes: bytes,
        });
        this.store(done);
        throw new SystemError(500, "InstallFailed", `rauc install: ${msg}`);
      }
      const st = await this.raucStatus().catch(() => null);
      const done = this.tracker.finish({
        result: "installed",
        message: `installed ${info.version} into slot ${st?.primary ?? "?"}; it boots at the next reboot and is kept only if vipd becomes ready`,
        bundleVersion: info.version,
        bundleBytes: bytes,
        ...(st?.primary ? { slot: st.primary } : {}),
      });
      this.store(done);
      this.log.info("update installed", { version: info.version, slot: st?.primary, by });
      return done;
    } catch (e) {
      if (this.tracker.current() !== null) {
        const done = this.tracker.finish({
          result: "failed",
          error: "InternalError",
          message: (e as Error).message,
          bundleBytes: bytes,
        });
        this.store(done);
      }
      throw e;
    } finally {
      try {
        unlinkSync(file);
      } catch {
        // not there
      }
    }
  }

  /** Streams the body into `file`; refuses an oversized, empty or incomplete body. */
  private async receive(body: ReadableStream<Uint8Array> | null, declared: number | null, file: string) {
    if (body === null) throw new SystemError(400, "EmptyBody", "send the bundle as the request body");
    const sink = Bun.file(file).writer({ highWaterMark: 1 << 20 });
    let bytes = 0;
    const reader = body.getReader();
    try {
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (e) {
          throw new SystemError(
            400,
            "IncompleteBody",
            `the upload broke off after ${bytes} bytes: ${(e as Error).message}`,
          );
        }
        if (chunk.done) break;
        bytes += chunk.value.byteLength;
        if (bytes > this.maxBundleBytes) {
          await reader.cancel().catch(() => {});
          throw new SystemError(
            413,
            "PayloadTooLarge",
            `the bundle exceeds the limit of ${this.maxBundleBytes} bytes`,
          );
        }
        sink.write(chunk.value);
        this.tracker.received(bytes);
        await sink.flush();
      }
    } finally {
      await sink.end();
    }
    if (bytes === 0) throw new SystemError(400, "EmptyBody", "the body is empty; send a bundle");
    if (declared !== null && bytes !== declared)
      throw new SystemError(400, "IncompleteBody", `received ${bytes} of the ${declared} bytes declared`);
    return bytes;
  }

  /**
   * RAUC checks the bundle (signature against the node's keyring, then its manifest); nothing is
   * written to a slot. `rauc info` runs as a transient unit outside vipd's sandbox (it mounts the
   * bundle and unpacks the manifest), so its own error message reaches the caller.
   */
  private async check(file: string): Promise<{ compatible: string; version: string }> {
    const transient =
      this.opts.transientCheck === false
        ? []
        : [
            "systemd-run",
            "--wait",
            "--pipe",
            "--quiet",
            "--collect",
            "--service-type=exec",
            "-p",
            "TimeoutSec=300",
          ];
    const r = await run([...transient, this.rauc, "info", "--output-format=json", file], 330_000);
    if (r.code !== 0)
      throw new SystemError(
        400,
        "InvalidBundle",
        `the bundle was refused: ${cleanRaucError(r.err || r.out)}`,
      );
    const info = parseRaucInfo(r.out);
    const st = await this.raucStatus();
    if (info.compatible !== st.compatible)
      throw new SystemError(
        422,
        "IncompatibleBundle",
        `the bundle is for '${info.compatible}', this node is '${st.compatible}'`,
      );
    return info;
  }

  private store(r: UpdateResult): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const path = join(this.dir, "last-update.json");
      writeFileSync(`${path}.tmp`, `${JSON.stringify(r)}\n`, { mode: 0o600 });
      renameSync(`${path}.tmp`, path);
    } catch (e) {
      this.log.warn("cannot record the update's result", { error: (e as Error).message });
    }
  }

  reboot(by: string, delayMs = 1_000): void {
    if (this.tracker.current() !== null)
      throw new SystemError(409, "UpdateInProgress", "an update is running; reboot when it has finished");
    if (this.rebooting) throw new SystemError(409, "Rebooting", "the node is rebooting already");
    this.rebooting = true;
    this.log.info("reboot requested", { by });
    const cmd = this.opts.rebootCommand ?? rebootCommandFromEnv();
    setTimeout(() => {
      void (async () => {
        // Hand the traffic over first; a drain that fails does not stop the reboot.
        if (this.opts.drain !== undefined) {
          try {
            const d = await this.opts.drain();
            this.log.info("drained before the reboot", { ...d });
          } catch (e) {
            this.log.warn("drain before the reboot failed; rebooting anyway", {
              error: (e as Error).message,
            });
          }
        }
        const r = await run(cmd, 30_000).catch((e) => ({ code: -1, out: "", err: (e as Error).message }));
        if (r.code !== 0) {
          this.rebooting = false;
          this.log.error("reboot failed", { command: cmd.join(" "), error: cleanRaucError(r.err || r.out) });
        }
      })();
    }, delayMs);
  }
}

/** $VIPD_REBOOT_COMMAND split on spaces, or `systemctl reboot`. */
export function rebootCommandFromEnv(env = process.env): string[] {
  const words = (env.VIPD_REBOOT_COMMAND ?? "").split(" ").filter((w) => w !== "");
  return words.length > 0 ? words : ["systemctl", "reboot"];
}

/**
 * The node's system updates when RAUC is configured here (the edge image; $VIPD_RAUC_CONF names
 * another system.conf, for tests), else undefined.
 */
export function systemUpdatesIfPresent(
  log: Logger,
  opts: Omit<SystemUpdatesOptions, "log"> = {},
): SystemUpdates | undefined {
  return existsSync(process.env.VIPD_RAUC_CONF ?? RAUC_CONF)
    ? new RaucSystemUpdates({ ...opts, log })
    : undefined;
}
