#!/usr/bin/env bun
/** vipd command line: composition root. */
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  switch (cmd) {
    case "version":
    case "--version":
      console.log(`vipd ${VERSION} (bun ${Bun.version})`);
      return 0;
    default:
      console.error("usage: vipd <version|validate PATH...>");
      return 2;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
