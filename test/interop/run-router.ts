/**
 * A `vipd run` node and a BIRD router in two namespaces on one link (10.88.1.2 ↔ 10.88.1.1), for
 * the interop tests that drive BGP and BFD through vipd's configuration and read the outcome
 * through vipd's API and BIRD's routing table.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lab } from "../support/netns.ts";
import { until } from "../support/until.ts";

const ROOT = join(import.meta.dir, "..", "..");

type Peers = { items: { name?: string; state: string }[] };
type Bfd = { items: { peer: string; state: string }[] };

/** The tests' one poll-until-deadline helper, for the interop tests that import it from here. */
export { until };

export class RunAndRouter {
  private constructor(
    readonly lab: Lab,
    /** Holds config/ (vipd's configuration directory), bird.conf and BIRD's control socket. */
    readonly dir: string,
  ) {}

  /**
   * Creates the namespaces and the link, writes the config files, starts BIRD and vipd (its
   * state directory in `dir`, never the host's /var/lib/vipd).
   */
  static async start(
    name: string,
    files: Record<string, string>,
    bird: string,
    runArgs: string[] = [],
  ): Promise<RunAndRouter> {
    const lab = await Lab.create(name);
    const dir = mkdtempSync(join(tmpdir(), `vipd-${name}-`));
    const t = new RunAndRouter(lab, dir);
    try {
      await lab.addNs("node");
      await lab.addNs("router");
      await lab.veth("node", "eth0", "router", "eth0");
      await lab.addr("node", "eth0", "10.88.1.2/24");
      await lab.addr("router", "eth0", "10.88.1.1/24");
      mkdirSync(t.configDir);
      for (const [f, text] of Object.entries(files)) writeFileSync(join(t.configDir, f), text);
      writeFileSync(join(dir, "bird.conf"), bird);
      lab.spawn("router", ["bird", "-f", "-c", join(dir, "bird.conf"), "-s", join(dir, "bird.ctl")]);
      lab.spawn(
        "node",
        [
          "bun",
          join(ROOT, "src", "main.ts"),
          "run",
          "--config",
          t.configDir,
          "--state-dir",
          join(dir, "state"),
          ...runArgs,
        ],
        { stderr: "ignore" },
      );
    } catch (e) {
      await t.destroy();
      throw e;
    }
    return t;
  }

  get configDir(): string {
    return join(this.dir, "config");
  }

  /** GET on vipd's API inside the node namespace; undefined when it does not answer 2xx. */
  async api<T>(path: string): Promise<T | undefined> {
    const r = await this.lab.run("node", ["curl", "-sf", "--max-time", "2", `http://127.0.0.1:7473${path}`], {
      allowFail: true,
    });
    return r.code === 0 ? (JSON.parse(r.stdout) as T) : undefined;
  }

  async bgpState(): Promise<string | undefined> {
    return (await this.api<Peers>("/api/v1/bgp/peers"))?.items[0]?.state;
  }

  async bfdState(): Promise<string | undefined> {
    return (await this.api<Bfd>("/api/v1/bfd/sessions"))?.items[0]?.state;
  }

  /** BIRD's `show route`. */
  async birdRoutes(): Promise<string> {
    const r = await this.lab.run("router", ["birdc", "-s", join(this.dir, "bird.ctl"), "show", "route"], {
      allowFail: true,
    });
    return r.stdout;
  }

  async destroy(): Promise<void> {
    await this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
