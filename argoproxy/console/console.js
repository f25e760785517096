"use strict";
// The console's pages beside the status page's live views (/ui): keys, usage, teams, people, requests, a person's
// connections (their per-person MCP servers, their ARGO username) and the audit log, all read and changed through /admin/v1/, with a signed-in person's session (its CSRF token on every change)
// or with the admin key the page keeps for this tab (sessionStorage, as the status page does). A person sees the
// tabs their role allows (the API decides what each holds). Data is written with textContent only; no inline
// handlers (the page's CSP).
(() => {
const $ = id => document.getElementById(id);
// The API beside the page, however its path was written (/ui, /ui/, behind a reverse proxy's prefix).
const ROOT = location.pathname.replace(/^\/+/, "/").replace(/\/+$/, "").replace(/\/ui$/i, "");
const API = ROOT + "/admin/v1/";
const views = ["status", "keys", "usage", "teams", "people", "requests", "connections", "audit"];
const loaders = { keys: loadKeys, usage: loadUsage, teams: loadTeams, people: loadPeople, requests: loadRequests,
  connections: loadConnections, audit: loadAudit };
// The tabs each role has; without sign-in (the admin key), an admin's but Connections (no person's).
const TABS = { admin: views, lead: ["keys", "usage", "teams", "people", "requests", "connections"],
  person: ["keys", "usage", "requests", "connections"] };
const AFTER_CONNECT = "cot_proxy_connecting";  // set on Connect: back from the flow, the page opens Connections
let me = null;  // the signed-in person (GET /ui/auth/me), with the session's CSRF token

async function api(method, path, body) {
  const key = sessionStorage.getItem("cot_proxy_key");
  const headers = key && !me ? { Authorization: "Bearer " + key } : {};
  if (me && method !== "GET") headers["X-CSRF-Token"] = me.csrf;
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

// Who is signed in: 200 a person, 401 nobody (sign-in is on: the "Sign in" link), 404 sign-in is off.
async function signedIn() {
  const res = await fetch(ROOT + "/ui/auth/me", { cache: "no-store" });
  if (res.status === 401) { $("signin-link").href = ROOT + "/ui/auth/login"; $("signin").hidden = false; }
  if (!res.ok) return "admin";
  me = await res.json();
  const role = me.admin ? "admin" : me.leads.length ? "lead" : "person";
  document.body.dataset.role = role;
  $("whoami-name").textContent = me.name || me.email;
  $("whoami-role").textContent = role === "admin" ? "(admin)" : role === "lead" ? `(lead of ${me.leads.join(", ")})` : "";
  $("whoami").hidden = false; $("login").style.display = "none";
  if (role !== "admin") { $("status").hidden = true; $("tab-keys").textContent = "My keys"; $("tab-usage").textContent = "My usage"; }
  if (role === "lead") $("tab-teams").textContent = "Team";
  return role;
}
$("signout").addEventListener("click", async () => {
  const res = await fetch(ROOT + "/ui/logout", { method: "POST", headers: { "X-CSRF-Token": me.csrf, Accept: "application/json" } });
  const data = res.ok ? await res.json() : { location: ROOT + "/ui" };
  location.assign(data.location);
});

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
  rows("console-keys", page.data, [r => r.name, r => r.prefix + "…", r => r.owner_email || r.owner, r => r.team, r => r.state,
    r => r.models.join(",") || "*", r => limit(r.rpm), r => limit(r.tpm), r => r.budget || "-", r => r.budget_usd || "-",
    r => when(r.expires), r => r.argo_user || "-", (r, tr) => { const c = td(""); tr.className = r.state;
      if (r.state === "active") { const b = document.createElement("button"); b.type = "button"; b.textContent = "Revoke";
        b.className = "revoke"; b.dataset.name = r.name; b.addEventListener("click", () => revoke(r.name)); c.appendChild(b);
        if (!me || me.admin) c.appendChild(button("ARGO user", () => argoUser("keys/" + encodeURIComponent(r.name), r.name, r.argo_user, loadKeys))); }
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
  if (!cursor) { chart(page.data, group); loadBudgets().catch(failed); }
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
async function loadPeople(cursor) {
  const page = await api("GET", "people" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
  const admin = !me || me.admin;
  rows("console-people", page.data, [r => r.email, r => r.name, r => r.teams.join(", "), r => r.admin ? "yes" : "-",
    r => r.state, r => when(r.last_seen), r => r.argo_user || "-", (r, tr) => { const c = td(""); tr.className = r.state;
      tr.dataset.email = r.email;
      if (admin) { c.append(button(r.state === "active" ? "Disable" : "Enable", () => person(r, r.state === "active" ? "disable" : "enable")),
        button(r.admin ? "Not admin" : "Make admin", () => person(r, "admin")),
        button("ARGO user", () => argoUser("people/" + encodeURIComponent(r.id), r.email, r.argo_user, loadPeople))); }
      c.appendChild(button("Connections", () => held(r).catch(failed)));
      return c; }], !!cursor);
  more("console-people-more", page.next, loadPeople);
}
function button(text, click) { const b = document.createElement("button"); b.type = "button"; b.textContent = text;
  b.addEventListener("click", click); return b; }
async function person(r, action) {
  const path = "people/" + encodeURIComponent(r.id);
  try {
    if (action === "admin") await api("PATCH", path, { admin: !r.admin });
    else if (confirm(`${action} ${r.email}? Their keys and sessions ${action === "disable" ? "stop" : "work again"} within a second.`)) await api("POST", path + "/" + action);
    say(`${r.email}: done.`); await loadPeople();
  } catch (err) { failed(err); }
}

// An admin sets or clears a person's or a key's ARGO username (the API refuses what `--argo-user` refuses).
async function argoUser(path, label, now, reload) {
  const name = prompt(`ARGO username of ${label} (empty: none)`, now || "");
  if (name === null) return;
  try { await api("PATCH", path, { argo_user: name.trim() }); say(`${label}: ARGO user ${name.trim() || "cleared"}.`); await reload(); }
  catch (err) { failed(err); }
}
// A person's MCP connections as an admin or their lead sees them; an admin revokes one.
async function held(r) {
  const path = "people/" + encodeURIComponent(r.id) + "/connections";
  const page = await api("GET", path);
  $("console-held-title").textContent = `${r.email}: MCP connections`;
  rows("console-held", page.data, [c => c.server, c => when(c.since), c => when(c.expires), (c, tr) => { const cell = td("");
    tr.dataset.server = c.server;
    if (!me || me.admin) cell.appendChild(button("Revoke", async () => {
      if (!confirm(`Revoke ${r.email}'s connection to ${c.server}?`)) return;
      try { await api("DELETE", path + "/" + encodeURIComponent(c.server)); say(`${r.email}: ${c.server} revoked.`); await held(r); }
      catch (err) { failed(err); } }));
    return cell; }]);
  $("console-held-box").hidden = false;
}

// The signed-in person's own connections: each per-person MCP server, Connect (its flow at /ui/connect/NAME) or
// Disconnect; a token_exchange server needs neither (their sign-in is exchanged at each call).
async function loadConnections() {
  const [mine, page] = await Promise.all([api("GET", "me"), api("GET", "me/connections")]);
  $("console-my-argo").textContent = (mine.person && mine.person.argo_user) || "none";
  rows("console-connections", page.data, [c => c.server, c => c.auth === "per_user" ? "your own (connect once)" : "your sign-in, exchanged",
    (c, tr) => { tr.dataset.server = c.server; tr.className = c.connected ? "connected" : "";
      return td(c.auth !== "per_user" ? "automatic" : c.connected ? "connected" : "not connected", "state"); },
    c => when(c.since), c => c.expires ? when(c.expires) + (c.renews ? " (renews)" : "") : "",
    (c, tr) => { const cell = td("");
      if (c.auth === "per_user" && c.connected) cell.appendChild(button("Disconnect", () => disconnect(c.server)));
      else if (c.auth === "per_user") { const a = document.createElement("a"); a.textContent = "Connect"; a.className = "connect";
        a.href = ROOT + "/ui/connect/" + encodeURIComponent(c.server);
        a.addEventListener("click", () => sessionStorage.setItem(AFTER_CONNECT, "1")); cell.appendChild(a); }
      return cell; }]);
}
async function disconnect(server) {
  try { await api("DELETE", "me/connections/" + encodeURIComponent(server)); say(`Disconnected from ${server}.`); await loadConnections(); }
  catch (err) { failed(err); }
}

// The request log: the filter form's fields as the query, 50 rows a page, a row's details below.
async function loadRequests(cursor) {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData($("console-request-form")).entries()) {
    const v = String(value).trim();
    if (v) query.set(name, name === "from" || name === "to" ? v + "Z" : v);
  }
  if (cursor) query.set("cursor", cursor);
  const page = await api("GET", "requests?" + query);
  rows("console-requests", page.data, [r => when(r.time), r => r.request_id, r => r.key, r => r.model, r => r.status,
    r => r.door, r => r.session, r => r.input_tokens + r.output_tokens, r => "$" + (r.cost / 1e9).toFixed(4),
    (r, tr) => { const c = td(""); c.appendChild(button("Details", () => request(r.request_id))); return c; }], !!cursor);
  more("console-requests-more", page.next, loadRequests);
}
async function request(id) {
  try {
    const found = await api("GET", "requests/" + encodeURIComponent(id));
    $("console-request-detail").textContent = JSON.stringify(found, null, 2);
    $("console-request-detail").hidden = false;
  } catch (err) { failed(err); }
}
$("console-request-form").addEventListener("submit", ev => { ev.preventDefault(); loadRequests().catch(failed); });

// What is left of each budget of the signed-in person's (their keys', their teams').
async function loadBudgets() {
  const mine = await api("GET", "me");
  const budgets = [...mine.keys.map(k => ({ ...k, label: "key " + k.name })), ...mine.team_budgets.map(t => ({ ...t, label: "team " + t.team }))];
  rows("console-budgets", budgets, [r => r.label,
    r => r.budget_tokens ? `${r.tokens_used ?? "?"} / ${r.budget_tokens} per ${r.budget_period}` : "-", r => r.tokens_left ?? "-",
    r => r.budget_usd_limit ? `$${r.usd_spent ?? "?"} / $${r.budget_usd_limit} per ${r.budget_usd_period}` : "-",
    r => r.usd_left ? "$" + r.usd_left : "-"]);
}

signedIn().catch(() => "admin").then(role => {
  views.forEach(v => { $("tab-" + v).hidden = !TABS[role].includes(v) || (v === "connections" && !me); });
  const back = me && sessionStorage.getItem(AFTER_CONNECT);
  sessionStorage.removeItem(AFTER_CONNECT);
  show(back ? "connections" : role === "admin" ? "status" : "keys");
  document.body.dataset.console = "ready";  // (the tests wait for it)
});
})();
