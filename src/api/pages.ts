/**
 * The two HTML pages the API serves: the status page at `/` (VIPs, owners, pools, peers and
 * sessions at a glance) and the API reference at `/docs` (a rendering of `/openapi.json`).
 *
 * Both are self-contained shells: no data, nothing fetched from anywhere but this API, no CDN.
 * Their data comes from the same JSON API as every client's, with the bearer token the person
 * types in, kept in sessionStorage (per tab, gone when the tab closes). When the API serves
 * reads without a token, the pages work without one. The inline script is allowed by its
 * SHA-256 in the Content-Security-Policy, and nothing else is (no eval, no inline handlers).
 */

import { createHash } from "node:crypto";
import { DOCS_SCRIPT, STATUS_SCRIPT } from "./page-scripts.ts";

export interface Page {
  path: string;
  html: string;
  csp: string;
}

const STYLE = `
:root { font-family: system-ui, sans-serif; color: #1b1f24; background: #f6f7f9; }
body { margin: 0 auto; max-width: 72rem; padding: 1rem 1.5rem 3rem; }
header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; justify-content: space-between; }
h1 { font-size: 1.4rem; margin: .5rem 0; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; }
td.empty { color: #6b7280; font-style: italic; }
code, .mono { font-family: ui-monospace, monospace; font-size: .85rem; }
.ok { color: #0a7a32; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
#auth { display: flex; gap: .4rem; align-items: center; }
#message { margin: .6rem 0; padding: .5rem .8rem; border-radius: 4px; background: #fff4e5; }
#message:empty { display: none; }
.op { background: #fff; border: 1px solid #e3e6ea; border-radius: 4px; margin: .6rem 0; padding: .5rem .8rem; }
.verb { display: inline-block; min-width: 3.5rem; font-weight: 700; font-family: ui-monospace, monospace; }
.schema { margin: .2rem 0 .2rem 1rem; padding: 0; list-style: none; font-size: .85rem; }
`;

const AUTH_FORM = `<form id="auth">
<label for="token">Bearer token</label>
<input id="token" type="password" autocomplete="off" size="28" placeholder="(none)">
<button id="save" type="submit">Use</button><button id="forget" type="button">Forget</button>
</form>`;

function page(path: string, title: string, body: string, script: string): Page {
  const hash = createHash("sha256").update(script, "utf8").digest("base64");
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title}</title><style>${STYLE}</style></head>
<body>${body}<script>${script}</script></body></html>
`;
  const csp = [
    "default-src 'none'",
    `script-src 'sha256-${hash}'`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return { path, html, csp };
}

const table = (id: string, title: string, columns: string[]): string =>
  `<h2>${title}</h2><table id="${id}"><thead><tr>${columns.map((c) => `<th>${c}</th>`).join("")}</tr></thead>` +
  `<tbody><tr><td class="empty" colspan="${columns.length}">loading…</td></tr></tbody></table>`;

export const STATUS_PAGE: Page = page(
  "/",
  "vipd status",
  `<header><h1>vipd <span id="node" class="mono"></span></h1>${AUTH_FORM}</header>
<div id="message" role="status"></div>
<p id="summary"></p><p class="mono"><small>Updated <span id="updated">never</span> · <a href="docs">API reference</a></small></p>
${table("drivers", "Drivers", ["Driver", "Healthy", "Detail"])}
${table("services", "Services", ["Service", "Addresses", "Pool", "Reason / warnings"])}
${table("l2", "Layer-2 announcements", ["VIP", "Owner node", "Interface", "MAC"])}
${table("pools", "Pools", ["Pool", "Auto-assign", "Family", "Assigned", "Available"])}
${table("bgp", "BGP peers", ["Peer", "ASN", "State", "Up for", "Prefixes sent", "Received", "Last error"])}
${table("bfd", "BFD sessions", ["Peer", "Interface", "State", "Diagnostic", "Up for"])}
${table("xdp", "XDP", ["Interface", "Mode", "Program", "Counters"])}`,
  STATUS_SCRIPT,
);

export const DOCS_PAGE: Page = page(
  "/docs",
  "vipd API reference",
  `<header><h1>vipd API reference</h1>${AUTH_FORM}</header>
<div id="message" role="status"></div>
<p><a href="openapi.json">openapi.json</a> · <a href="./">status page</a></p>
<main id="ops"></main>`,
  DOCS_SCRIPT,
);
