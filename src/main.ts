#!/usr/bin/env bun
/**
 * vipd command line, the composition root.
 *
 *   vipd run --config PATH  run the appliance: allocate, plan, announce, serve the API
 *   vipd k8s                Kubernetes mode: controller (Lease-elected) and speaker from the cluster
 *   vipd validate PATH...   check manifests without touching the network
 *   vipd version            print the version
 */
import pkg from "../package.json" with { type: "json" };
import { configFromPaths, formatProblem } from "./config/index.ts";
import { LocalDeliveryDriver } from "./daemon/local-delivery.ts";
import { run } from "./daemon/run.ts";

export const VERSION: string = pkg.version;

const USAGE = `usage: vipd <command>
  detach [--pin-dir DIR]   remove the XDP program, its pins and maps, and vipd's local routes
  run --config PATH  run: allocate VIPs, announce them, serve the API (see vipd run --help)
  k8s                Kubernetes mode: controller and speaker from the cluster (see vipd k8s --help)
  validate PATH...   check manifests (files or directories) without touching the network
  version            print the version`;

function validate(paths: string[]): number {
  if (paths.length === 0) {
    console.error("vipd validate: give at least one file or directory");
    return 2;
  }
  const r = configFromPaths(paths);
  if (!r.ok) {
    for (const p of r.problems) console.log(formatProblem(p));
    console.error(`vipd validate: ${r.problems.length} problem(s)`);
    return 1;
  }
  const c = r.config;
  const lbs = c.services.filter((s) => s.spec.type === "LoadBalancer").length;
  console.log(
    `ok: ${c.pools.length} IPAddressPool, ${c.l2Advertisements.length} L2Advertisement, ` +
      `${c.bgpAdvertisements.length} BGPAdvertisement, ${c.peers.length} BGPPeer, ${c.bfdProfiles.length} BFDProfile, ` +
      `${c.communities.length} Community, ${c.services.length} Service (${lbs} LoadBalancer)` +
      (c.nodeSettings ? ", NodeSettings" : ""),
  );
  return 0;
}

/** `vipd detach`: removes everything vipd put into the kernel (for uninstalling or a layout change). */
async function detach(argv: string[]): Promise<number> {
  const i = argv.indexOf("--pin-dir");
  // The data path is loaded only here, so that validate and version need no libbpf.
  const { DEFAULT_PIN_DIR } = await import("./xdp/maps.ts");
  const pinDir = i >= 0 ? argv[i + 1] : (process.env.VIPD_BPF_PIN_DIR ?? DEFAULT_PIN_DIR);
  if (pinDir === undefined || argv.some((a, j) => a !== "--pin-dir" && j !== i + 1)) {
    console.error("usage: vipd detach [--pin-dir DIR]");
    return 2;
  }
  try {
    const { detachAll } = await import("./xdp/driver.ts");
    const r = await detachAll(pinDir);
    await LocalDeliveryDriver.removeAll();
    console.log(
      `detached from ${r.detached.length > 0 ? r.detached.join(", ") : "no interface"}; removed ${pinDir} and vipd's local routes`,
    );
    return 0;
  } catch (e) {
    console.error(`vipd detach: ${(e as Error).message}`);
    return 1;
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "version":
    case "--version":
      console.log(`vipd ${VERSION} (bun ${Bun.version})`);
      return 0;
    case "validate":
      return validate(rest);
    case "detach":
      return detach(rest);
    case "run":
      return run(rest, VERSION);
    case "k8s":
      return (await import("./k8s/run.ts")).runK8s(rest, VERSION);
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      console.error(cmd === undefined ? USAGE : `vipd: unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
