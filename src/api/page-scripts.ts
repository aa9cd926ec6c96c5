/**
 * The inline scripts of the status page and the API reference (plain ES2020, run by the
 * browser; kept as strings so the pages stay single self-contained responses). Data is only
 * ever put into the page with textContent, never as HTML.
 */

/** Token handling and fetch, shared by both pages. */
const COMMON = `
"use strict";
const KEY = "vipd.token";
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function say(text) { $("message").textContent = text || ""; }
function token() { return sessionStorage.getItem(KEY) || ""; }
async function api(path) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const res = await fetch(path, { headers, cache: "no-store" });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const err = new Error((body && body.message) || res.statusText || String(res.status));
    err.status = res.status;
    throw err;
  }
  return body;
}
// A paged list, every page (the API pages lists: limit and continue).
async function list(path) {
  const items = [];
  let q = "?limit=10000";
  for (let i = 0; i < 100; i++) {
    const body = await api(path + q);
    for (const it of body.items) items.push(it);
    if (!body.metadata || !body.metadata.continue) break;
    q = "?limit=10000&continue=" + encodeURIComponent(body.metadata.continue);
  }
  return { items };
}
function setupAuth(onChange) {
  $("token").value = token();
  $("auth").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY);
    onChange();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    $("token").value = "";
    onChange();
  });
}
function authMessage(e) {
  if (e.status === 401) return token() ? "The token was refused (401). Enter another one." : "This API needs a bearer token: enter it above.";
  if (e.status === 403) return "The token's role may not read this (403).";
  return "Could not load: " + e.message;
}
`;

export const STATUS_SCRIPT = `${COMMON}
function duration(s) {
  if (s === undefined || s === null) return "";
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + (s % 60) + "s";
}
function fill(id, rows, columns) {
  const tbody = $(id).tBodies[0];
  tbody.replaceChildren();
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "none", "empty");
    td.colSpan = columns;
    tr.append(td);
    tbody.append(tr);
    return;
  }
  for (const cells of rows) {
    const tr = el("tr");
    for (const c of cells) tr.append(c instanceof Node ? wrap(c) : el("td", c));
    tbody.append(tr);
  }
}
function wrap(node) { const td = el("td"); td.append(node); return td; }
function health(ok, yes, no) { return el("span", ok ? yes : no, ok ? "ok" : "bad"); }

async function refresh() {
  try {
    const [st, svc, pools, l2, bgp, bfd, xdp] = await Promise.all([
      api("api/v1/status"), list("api/v1/services"), list("api/v1/pools"), list("api/v1/l2/announcements"),
      list("api/v1/bgp/peers"), list("api/v1/bfd/sessions"), api("api/v1/xdp"),
    ]);
    say("");
    $("node").textContent = st.node;
    $("summary").textContent = "version " + st.version + " · up " + duration(st.uptimeSeconds) +
      " · configuration generation " + st.configGeneration + " · " + (st.ready ? "ready" : "NOT READY");
    $("summary").className = st.ready ? "" : "bad";
    fill("drivers", st.drivers.map((d) => [d.name, health(d.healthy, "yes", "no"), d.detail || ""]), 3);
    fill("services", svc.items.map((s) => [
      s.namespace + "/" + s.name, s.ips.join(", ") || "—", s.pool || "",
      [s.reason || "", ...s.warnings].filter(Boolean).join("; "),
    ]), 4);
    fill("l2", l2.items.map((a) => [a.ip, a.node, a.interface, a.mac]), 4);
    fill("pools", pools.items.flatMap((p) => (p.families.length ? p.families : [null]).map((f) => [
      p.name, p.autoAssign ? "yes" : "no", f ? f.family : "", f ? f.assigned : "", f ? f.available : "",
    ])), 5);
    fill("bgp", bgp.items.map((p) => [
      (p.name ? p.name + " " : "") + p.address, String(p.asn),
      health(p.state === "Established", p.state, p.state), duration(p.uptimeSeconds),
      String(p.prefixesSent), String(p.prefixesReceived), p.lastError || "",
    ]), 7);
    fill("bfd", bfd.items.map((s) => [
      s.peer, s.interface || "", health(s.state === "Up", s.state, s.state), s.diagnostic || "", duration(s.uptimeSeconds),
    ]), 5);
    fill("xdp", xdp.interfaces.map((i) => [
      i.name, i.mode, i.programId === undefined ? "" : String(i.programId),
      Object.entries(i.counters).map(([k, v]) => k + "=" + v).join(" "),
    ]), 4);
    $("updated").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    say(authMessage(e));
  }
}
setupAuth(refresh);
refresh();
setInterval(refresh, 5000);
`;

export const DOCS_SCRIPT = `${COMMON}
let doc = null;
function deref(s) {
  let guard = 0;
  while (s && s.$ref && guard++ < 20) {
    const name = s.$ref.split("/").pop();
    s = (doc.components && doc.components.schemas && doc.components.schemas[name]) || {};
  }
  return s || {};
}
function typeName(s) {
  const name = s.$ref ? s.$ref.split("/").pop() : "";
  const r = deref(s);
  if (r.enum) return (name ? name + " " : "") + "enum " + r.enum.map((x) => JSON.stringify(x)).join(" | ");
  if (r.const !== undefined) return JSON.stringify(r.const);
  if (r.type === "array") return "array of " + typeName(r.items || {});
  if (r.anyOf || r.oneOf) return (r.anyOf || r.oneOf).map(typeName).join(" | ");
  const t = Array.isArray(r.type) ? r.type.join(" | ") : (r.type || "any");
  return name ? name + " (" + t + ")" : t;
}
function schemaTree(s, depth) {
  const r = deref(s);
  const target = r.type === "array" ? deref(r.items || {}) : r;
  const ul = el("ul", null, "schema");
  if (depth > 4 || !target.properties) return ul;
  const req = new Set(target.required || []);
  for (const [k, v] of Object.entries(target.properties)) {
    const li = el("li");
    li.append(el("code", k + (req.has(k) ? "" : "?")), document.createTextNode(": " + typeName(v)));
    const d = deref(v).description || v.description;
    if (d) li.append(el("small", " — " + d));
    li.append(schemaTree(v, depth + 1));
    ul.append(li);
  }
  return ul;
}
function render() {
  const ops = $("ops");
  ops.replaceChildren();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [verb, op] of Object.entries(item)) {
      const box = el("section", null, "op");
      box.dataset.op = verb.toUpperCase() + " " + path;
      const h = el("h2");
      h.append(el("span", verb.toUpperCase(), "verb"), el("code", path), document.createTextNode(
        " " + (op.summary || "") + (op.security && op.security.length ? " 🔒" : "")));
      box.append(h);
      if (op.description) box.append(el("p", op.description));
      if (op.requestBody) {
        box.append(el("p", "Request body: " + Object.keys(op.requestBody.content || {}).join(", ")));
      }
      for (const [code, resp] of Object.entries(op.responses || {})) {
        const p = el("div");
        p.append(el("strong", code + " "), document.createTextNode(resp.description || ""));
        for (const [type, media] of Object.entries(resp.content || {})) {
          const line = el("div");
          line.append(el("code", type + ": " + typeName(media.schema || {})), schemaTree(media.schema || {}, 0));
          p.append(line);
        }
        box.append(p);
      }
      ops.append(box);
    }
  }
}
async function load() {
  try {
    doc = await api("openapi.json");
    say("");
    render();
  } catch (e) {
    say(authMessage(e));
  }
}
setupAuth(load);
load();
`;
