#!/usr/bin/env bun
/**
 * vipd command line, the composition root.
 *
 *   vipd run --config PATH  run the appliance: allocate, plan, announce, serve the API
 *   vipd k8s                Kubernetes mode: controller (Lease-elected) and speaker from the cluster
 *   vipd validate PATH...   check manifests without touching the network
 *   vipd token-check FILE --config PATH   exit 0 when FILE holds an admin token of the NodeSettings
 *   vipd version            print the version
 */
import pkg from "../package.json" with { type: "json" };
import { run } from "./appliance/run.ts";
import { configFromPaths, formatProblem } from "./config/index.ts";
import { LocalDeliveryDriver } from "./drivers/local-delivery.ts";

export const VERSION: string = pkg.version;

const USAGE = `usage: vipd <command>
  detach [--pin-dir DIR]   remove the XDP program, its pins and maps, and vipd's local routes
  run --config PATH  run: allocate VIPs, announce them, serve the API (see vipd run --help)
  k8s                Kubernetes mode: controller and speaker from the cluster (see vipd k8s --help)
  validate PATH...   check manifests (files or directories) without touching the network
  token-check FILE --config PATH   exit 0 when FILE holds an admin token of the configuration
  version            print the version`;

function validate(paths: string[]): number {
  if (paths.length === 0) {
    console.error("vipd validate: give at least one file or directory");
    return 2;
  }
  const r = configFromPaths(paths);
  // Notes (e.g. MetalLB status objects in a dump, skipped) are printed but never fail.
  for (const n of r.notes) console.log(formatProblem(n));
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

/**
 * `vipd token-check FILE --config PATH`: whether FILE (surrounding whitespace ignored) is one of
 * the NodeSettings' admin tokens, compared as the API compares a bearer token. Used by the image's
 * removable-media upgrade to authorize a stick. Exit 0 yes, 1 no, 2 usage or unreadable input.
 */
async function tokenCheck(argv: string[]): Promise<number> {
  const i = argv.indexOf("--config");
  const file = argv.find((_a, j) => j !== i && j !== i + 1);
  const config = i >= 0 ? argv[i + 1] : undefined;
  if (file === undefined || config === undefined || argv.length !== 3) {
    console.error("usage: vipd token-check FILE --config PATH");
    return 2;
  }
  const r = configFromPaths([config]);
  if (!r.ok) {
    console.error(`vipd token-check: the configuration in ${config} is invalid`);
    return 2;
  }
  let token: string;
  try {
    token = (await Bun.file(file).text()).trim();
  } catch (e) {
    console.error(`vipd token-check: cannot read ${file}: ${(e as Error).message}`);
    return 2;
  }
  const { authenticate, compileTokens } = await import("./api/auth.ts");
  const a = authenticate(`Bearer ${token}`, compileTokens(r.config.nodeSettings?.spec.api.tokens ?? []));
  if (a.ok && a.role === "admin") {
    console.log(`ok: admin token "${a.name}"`);
    return 0;
  }
  console.log(a.ok ? `refused: token "${a.name}" is not an admin token` : `refused: ${a.reason}`);
  return 1;
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
    case "token-check":
      return tokenCheck(rest);
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
