#!/usr/bin/env bun
/**
 * A small stand-alone entry to the XDP driver, for the lab tests, the benchmark and operators:
 *
 *   bun src/xdp/cli.ts serve --if IF --vip IP [--vip IP ...] [--mac MAC] [--state FILE]
 *                            [--pin-dir DIR] [--window-ms N] [--mode auto|native|generic]
 *       opens the driver, applies, heartbeats until SIGTERM/SIGINT, then closes (pins stay).
 *       With --state FILE (JSON: [{ "ifname", "ip", "mac"? }]) the file is re-read and applied on
 *       SIGHUP. Prints one JSON line per event: {"event":"ready",...}, {"event":"applied",...},
 *       {"event":"status",...} (on SIGUSR1), {"event":"error",...}.
 *   bun src/xdp/cli.ts detach [--pin-dir DIR]     detaches everywhere, removes pins and maps
 *   bun src/xdp/cli.ts status [--pin-dir DIR]     entries and counters of the pinned maps
 *   bun src/xdp/cli.ts send --if IF --hex FRAME   sends one raw Ethernet frame (AF_PACKET), for tests
 */

import { readFileSync } from "node:fs";
import { formatIp } from "../util/ip.ts";
import { type DesiredEntry, detachAll, XdpDriver } from "./driver.ts";
import { formatMac } from "./layout.ts";
import { ifNameToIndex, PacketSocket } from "./libbpf.ts";
import type { AttachModeOption } from "./loader.ts";
import { DEFAULT_PIN_DIR, XdpMaps } from "./maps.ts";

interface Args {
  cmd: string;
  ifs: string[];
  vips: string[];
  mac?: string;
  state?: string;
  pinDir: string;
  windowMs?: number;
  mode: AttachModeOption;
  hex?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { cmd: argv[0] ?? "", ifs: [], vips: [], pinDir: DEFAULT_PIN_DIR, mode: "auto" };
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i];
    const val = argv[i + 1];
    if (val === undefined) throw new Error(`${flag} needs a value`);
    i++;
    switch (flag) {
      case "--if":
        a.ifs.push(val);
        break;
      case "--vip":
        a.vips.push(val);
        break;
      case "--mac":
        a.mac = val;
        break;
      case "--hex":
        a.hex = val;
        break;
      case "--state":
        a.state = val;
        break;
      case "--pin-dir":
        a.pinDir = val;
        break;
      case "--window-ms":
        a.windowMs = Number(val);
        break;
      case "--mode":
        if (val !== "auto" && val !== "native" && val !== "generic") throw new Error(`bad --mode ${val}`);
        a.mode = val;
        break;
      default:
        throw new Error(`unknown flag ${flag}`);
    }
  }
  return a;
}

const json = (v: unknown) =>
  JSON.stringify(v, (_k, x) =>
    typeof x === "bigint" ? Number(x) : x instanceof Uint8Array ? formatMac(x) : x,
  );
const say = (event: string, data: object) => process.stdout.write(`${json({ event, ...data })}\n`);

function desiredOf(a: Args): DesiredEntry[] {
  if (a.state !== undefined) return JSON.parse(readFileSync(a.state, "utf8")) as DesiredEntry[];
  return a.ifs.flatMap((ifname) => a.vips.map((ip) => ({ ifname, ip, ...(a.mac ? { mac: a.mac } : {}) })));
}

async function serve(a: Args): Promise<void> {
  // The driver's timers and its timing worker are unref'd: this keeps the process alive until a
  // signal, from before the open (a process with nothing ref'd exits while it awaits the worker).
  const keepAlive = setInterval(() => {}, 1 << 30);
  const driver = await XdpDriver.open({ pinDir: a.pinDir, livenessWindowMs: a.windowMs, mode: a.mode });
  let busy = Promise.resolve();
  const reapply = () => {
    busy = busy.then(async () => {
      try {
        const desired = desiredOf(a);
        const t0 = performance.now();
        const result = await driver.apply(desired);
        const ms = Math.round((performance.now() - t0) * 10) / 10;
        say("applied", { ...result, ms, ...(desired.length > 100 ? { added: result.added.length } : {}) });
      } catch (e) {
        say("error", { message: e instanceof Error ? e.message : String(e) });
      }
    });
    return busy;
  };
  await reapply();
  say("ready", { pid: process.pid, status: driver.status() });
  process.on("SIGHUP", () => void reapply());
  process.on("SIGUSR1", () => say("status", { status: driver.status(), entries: driver.entries() }));
  await new Promise<void>((resolve) => {
    process.on("SIGTERM", resolve);
    process.on("SIGINT", resolve);
  });
  clearInterval(keepAlive);
  await busy;
  await driver.close();
  say("stopped", {});
}

async function status(a: Args): Promise<void> {
  const maps = XdpMaps.open(a.pinDir);
  try {
    const entries = maps
      .listVips()
      .map((e) => ({ ifindex: e.ifindex, ip: formatIp(e.ip), mac: formatMac(e.mac) }));
    say("status", { entries, liveness: maps.liveness(), counters: maps.counters() });
  } finally {
    maps.close();
  }
}

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2));
  switch (a.cmd) {
    case "serve":
      await serve(a);
      return 0;
    case "detach":
      say("detached", await detachAll(a.pinDir));
      return 0;
    case "status":
      await status(a);
      return 0;
    case "send": {
      const ifname = a.ifs[0];
      if (ifname === undefined || a.hex === undefined || !/^([0-9a-f]{2}){14,1514}$/i.test(a.hex)) {
        throw new Error("send needs --if IF and --hex with a whole frame (14 to 1514 bytes)");
      }
      const sock = new PacketSocket(ifNameToIndex(ifname));
      try {
        sock.send(Uint8Array.from(Buffer.from(a.hex, "hex")));
      } finally {
        sock.close();
      }
      return 0;
    }
    default:
      process.stderr.write("usage: cli.ts serve|detach|status [flags] (see the header of src/xdp/cli.ts)\n");
      return 2;
  }
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
