"use strict";
// The console's pages beside the status page's live views (/ui): keys, usage, teams and the audit log, all read
// and changed through /admin/v1/ with the admin key the page keeps for this tab (sessionStorage, as the status
// page does). Data is written with textContent only; no inline handlers (the page's CSP).
(() => {
const $ = id => document.getElementById(id);
// The API beside the page, however its path was written (/ui, /ui/, behind a reverse proxy's prefix).
const API = location.pathname.replace(/^\/+/, "/").replace(/\/+$/, "").replace(/\/ui$/i, "") + "/admin/v1/";
const views = ["status", "keys", "usage", "teams", "audit"];
const loaders = { keys: loadKeys, usage: loadUsage, teams: loadTeams, audit: loadAudit };

async function api(method, path, body) {
  const key = sessionStorage.getItem("cot_proxy_key");
  const headers = key ? { Authorization: "Bearer " + key } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(API + path, { method, headers, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body) });
  const type = res.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(data && data.error ? data.error.message : "HTTP " + res.status);
  return data;
}
function say(text, bad) { const p = $("console-message"); p.textContent = text; p.className = bad ? "note err" : "note"; }
const failed = err => say(err.message, true);

function show(view) {
  views.forEach(v => { $("view-" + v).hidden = v !== view; $("tab-" + v).classList.toggle("on", v === view); });
  say("");
  if (loaders[view]) loaders[view]().catch(failed);
}
views.forEach(v => $("tab-" + v).addEventListener("click", () => show(v)));

function td(text, cls) { const c = document.createElement("td"); c.textContent = text ?? ""; if (cls) c.className = cls; return c; }
function rows(id, data, columns, append) {
  const body = document.querySelector(`#${id} tbody`);
  const made = data.map(r => { const tr = document.createElement("tr");
    columns.forEach(col => tr.appendChild(typeof col === "function" && col.length === 2 ? col(r, tr) : td(col(r))));
    return tr; });
  if (append) body.append(...made); else body.replaceChildren(...made);
}
// A "more" button for a list's next page (keyset cursor).
function more(id, next, load) {
  const b = $(id); b.hidden = !next; b.onclick = null;
  if (next) b.addEventListener("click", () => load(next).catch(failed), { once: true });
}
const when = t => t ? new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ") : "";
const limit = n => n ? String(n) : "-";
// The form's filled fields as a body: counts as numbers, globs as lists, the rest as written.
function formBody(form, counts, globs) {
  const body = {};
  for (const [name, value] of new FormData(form).entries()) {
    const v = String(value).trim();
    if (!v) continue;
    body[name] = counts.includes(name) ? Number(v) : globs.includes(name) ? v.split(",").map(s => s.trim()) : v;
  }
  return body;
}
const COUNTS = ["rpm", "tpm", "max_parallel", "priority", "tool_rpm", "tool_parallel"], GLOBS = ["models", "tools"];

async function loadKeys(cursor) {
  const page = await api("GET", "keys" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
  rows("console-keys", page.data, [r => r.name, r => r.prefix + "…", r => r.owner, r => r.team, r => r.state,
    r => r.models.join(",") || "*", r => limit(r.rpm), r => limit(r.tpm), r => r.budget || "-", r => r.budget_usd || "-",
    r => when(r.expires), (r, tr) => { const c = td(""); tr.className = r.state;
      if (r.state === "active") { const b = document.createElement("button"); b.type = "button"; b.textContent = "Revoke";
        b.className = "revoke"; b.dataset.name = r.name; b.addEventListener("click", () => revoke(r.name)); c.appendChild(b); }
      return c; }], !!cursor);
  more("console-keys-more", page.next, loadKeys);
}
async function revoke(name) {
  if (!confirm(`Revoke key ${name}? Every worker refuses it within a second.`)) return;
  try { await api("DELETE", "keys/" + encodeURIComponent(name)); say(`Key ${name} revoked.`); await loadKeys(); }
  catch (err) { failed(err); }
}
$("console-key-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  try {
    const made = await api("POST", "keys", formBody(ev.target, COUNTS, GLOBS));
    $("console-secret").textContent = made.key;
    $("console-secret-box").hidden = false;
    ev.target.reset();
    say(`Key ${made.record.name} created.`);
    await loadKeys();
  } catch (err) { failed(err); }
});
$("console-secret-hide").addEventListener("click", () => { $("console-secret").textContent = ""; $("console-secret-box").hidden = true; });

async function loadUsage(cursor) {
  const group = $("console-usage-group").value;
  const page = await api("GET", `usage?group=${group}` + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
  document.querySelector("#console-usage thead th").textContent = group;
  rows("console-usage", page.data, [r => r[group], r => r.requests, r => r.input_tokens, r => r.output_tokens,
    r => r.cost_usd, r => r.unpriced_requests || ""], !!cursor);
  if (!cursor) chart(page.data, group);
  more("console-usage-more", page.next, loadUsage);
}
// Tokens per row of the page as bars (oldest day first), with the dollars in each bar's title.
function chart(data, group) {
  const svg = $("console-chart"), ns = "http://www.w3.org/2000/svg";
  const list = group === "day" ? [...data].reverse() : data;
  const top = Math.max(1, ...list.map(r => r.tokens)), w = 300 / Math.max(1, list.length);
  svg.replaceChildren(...list.map((r, i) => {
    const bar = document.createElementNS(ns, "rect"), h = 80 * r.tokens / top;
    bar.setAttribute("x", i * w + w * 0.1); bar.setAttribute("width", w * 0.8);
    bar.setAttribute("y", 85 - h); bar.setAttribute("height", h); bar.setAttribute("class", "bar");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${r[group]}: ${r.tokens} tokens, $${r.cost_usd}, ${r.requests} requests`;
    bar.appendChild(title); return bar; }));
  svg.dataset.bars = String(list.length);
}
$("console-usage-group").addEventListener("change", () => loadUsage().catch(failed));
$("console-usage-csv").addEventListener("click", async () => {
  try {
    const text = await api("GET", "usage?format=csv");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    a.download = "usage.csv"; a.click(); setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (err) { failed(err); }
});

async function loadTeams(cursor) {
  const page = await api("GET", "teams" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
  rows("console-teams", page.data, [r => r.name, r => r.keys, r => r.models.join(",") || "*", r => r.tools.join(",") || "*",
    r => limit(r.rpm), r => limit(r.tpm), r => r.budget || "-", r => r.budget_usd || "-", r => limit(r.max_parallel),
    r => r.state], !!cursor);
  more("console-teams-more", page.next, loadTeams);
}
$("console-team-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const body = formBody(ev.target, COUNTS, GLOBS), name = body.name;
  const exists = ev.submitter && ev.submitter.value === "update";
  try {
    if (exists) { delete body.name; await api("PATCH", "teams/" + encodeURIComponent(name || ""), body); }
    else await api("POST", "teams", body);
    say(`Team ${name} ${exists ? "updated" : "created"}.`); ev.target.reset(); await loadTeams();
  } catch (err) { failed(err); }
});

async function loadAudit(cursor) {
  const page = await api("GET", "audit" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
  rows("console-audit", page.data, [r => when(r.at), r => r.who, r => r.action, r => r.target,
    r => Object.entries(r.fields).map(([k, v]) => `${k}=${v}`).join(", "), r => r.address, r => r.agent], !!cursor);
  more("console-audit-more", page.next, loadAudit);
}
show("status");
document.body.dataset.console = "ready";  // (the tests wait for it)
})();
