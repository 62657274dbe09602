// The QuotaProxy dashboard: reads and changes everything through the admin API under /admin/v1, with the
// admin key from this tab's session storage. No library, no request anywhere but this port.
"use strict";

const KEY_HEADER = document.querySelector('meta[name="admin-key-header"]').content;
const STORAGE = "quotaproxy-admin-key";
const REFRESH_MS = 5000;
const SERIES = ["#1f5fa8", "#d9730d", "#2e8540", "#b3261e", "#6f42c1", "#0b6e4f", "#8a4b00", "#57606a"];
const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = { [KEY_HEADER]: sessionStorage.getItem(STORAGE) || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  if (response.status === 401) throw new Unauthorized();
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** The sentence a problem body gives (the admin API lists every error in it). */
function problemText(problem) {
  if (!problem) return "The admin API gave no answer.";
  return problem.detail || problem.title || "Refused.";
}

const utc = (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?(Z|[+-]00:00)$/, "") : "");

function until(iso) {
  const seconds = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
  if (seconds >= 86400) return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
  if (seconds >= 3600) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  if (seconds >= 60) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${seconds} s`;
}

function bar(used, limit, marks, label) {
  const share = (value) => `${Math.min(100, limit > 0 ? (value / limit) * 100 : 100)}%`;
  const fill = el("div", { class: "fill" });
  fill.style.width = share(used);
  const node = el("div", { class: "bar", role: "img", "aria-label": label }, fill);
  for (const [kind, value] of marks) {
    if (value === null || value === undefined || value <= 0 || value > limit) continue;
    const mark = el("div", { class: `mark ${kind}`, title: `${kind} ${value}` });
    mark.style.left = share(value);
    node.append(mark);
  }
  return node;
}

function tenantRow(pool, tenant) {
  const id = `${pool.pool}-${tenant.tenant}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const change = el("form", { class: "change", "data-tenant": tenant.tenant, "aria-label": `Change ${tenant.tenant}` });
  for (const [field, value] of [["limit", tenant.limit], ["allocation", tenant.allocation], ["guaranteed", tenant.guaranteed]]) {
    change.append(el("div", {},
      el("label", { for: `${id}-${field}`, text: field }),
      el("input", { id: `${id}-${field}`, name: field, type: "number", min: "0", step: "1", value: String(value), inputmode: "numeric" })));
  }
  const error = el("p", { class: "error", role: "alert", id: `${id}-error` });
  change.append(el("button", { type: "submit", text: "Apply" }), error);
  change.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const field of ["limit", "allocation", "guaranteed"]) {
      const input = change.elements[field];
      if (input.value !== "" && Number(input.value) !== tenant[field]) body[field] = Number(input.value);
    }
    if (Object.keys(body).length === 0) { error.textContent = "Nothing changed."; return; }
    await act(error, "PUT", `/admin/v1/pools/${encodeURIComponent(pool.pool)}/overrides/${tenant.tenant.split("/").map(encodeURIComponent).join("/")}`, body);
  });

  const actions = el("div", { class: "actions" });
  if (tenant.override) {
    const drop = el("button", { type: "button", text: "Drop override" });
    drop.addEventListener("click", () => act(error, "DELETE", `/admin/v1/pools/${encodeURIComponent(pool.pool)}/overrides/${tenant.tenant.split("/").map(encodeURIComponent).join("/")}`));
    actions.append(drop);
  }
  const reset = el("button", { type: "button", class: "danger", text: "Reset" });
  reset.addEventListener("click", () => {
    if (confirm(`Give back this window's credits of ${pool.pool}/${tenant.tenant} and every tenant below it?`)) {
      act(error, "POST", `/admin/v1/pools/${encodeURIComponent(pool.pool)}/reset`, { tenant: tenant.tenant });
    }
  });
  actions.append(reset);

  const notes = [];
  if (tenant.mode === "shadow") notes.push(el("span", { class: "badge", text: "shadow" }));
  if (tenant.override) {
    notes.push(el("span", { class: "badge override", text: `override${tenant.override.expiresAt ? " until " + utc(tenant.override.expiresAt) : ""}` }));
  }
  if (tenant.forecast && tenant.forecast.exhaustsAt) {
    notes.push(el("span", { class: "badge forecast", text: `runs out in ${until(tenant.forecast.exhaustsAt)}` }));
  }

  return el("tr", { "data-tenant": tenant.tenant },
    el("th", { scope: "row" }, tenant.tenant, ...notes.map((note) => [document.createTextNode(" "), note]).flat()),
    el("td", {}, bar(tenant.used, tenant.effectiveLimit, [["allocation", tenant.allocation], ["guaranteed", tenant.guaranteed], ["soft", tenant.softLimit]],
      `${tenant.tenant}: ${tenant.used} of ${tenant.effectiveLimit} used`)),
    el("td", { class: "num used", "data-label": "used / limit", text: `${tenant.used} / ${tenant.effectiveLimit}` }),
    el("td", { class: "num available", "data-label": "available", text: String(tenant.available) }),
    el("td", { class: "num", "data-label": "allocation / guaranteed", text: `${tenant.allocation} / ${tenant.guaranteed}` }),
    el("td", { class: "num", "data-label": "priority", text: tenant.priority === null ? "–" : String(tenant.priority) }),
    el("td", {}, change, actions));
}

function chart(pool, timeline) {
  const width = 900, height = 260, left = 48, right = 16, top = 12, bottom = 28;
  const start = Date.parse(timeline.windowStart), end = Date.parse(timeline.windowEnd);
  const allocations = pool.tenants.filter((t) => t.allocation > 0);
  const most = Math.max(1, ...timeline.tenants.flatMap((t) => t.points.map((p) => p.used)), ...allocations.map((t) => t.allocation));
  const x = (ms) => left + ((ms - start) / (end - start)) * (width - left - right);
  const y = (credits) => height - bottom - (credits / most) * (height - top - bottom);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Credits used today per tenant in ${pool.pool}, with allocations` });
  for (let i = 0; i <= 4; i++) {
    const credits = Math.round((most * i) / 4);
    root.append(svg("line", { x1: left, x2: width - right, y1: y(credits), y2: y(credits), stroke: "#d0d7de" }));
    const label = svg("text", { x: left - 6, y: y(credits) + 4, "text-anchor": "end" });
    label.textContent = String(credits);
    root.append(label);
  }
  for (const at of [start, (start + end) / 2, end]) {
    const label = svg("text", { x: x(at), y: height - 8, "text-anchor": at === start ? "start" : at === end ? "end" : "middle" });
    label.textContent = utc(new Date(at).toISOString()).slice(11, 16) || utc(new Date(at).toISOString());
    root.append(label);
  }
  const colour = new Map(pool.tenants.map((t, i) => [t.tenant, SERIES[i % SERIES.length]]));
  for (const tenant of allocations) {
    root.append(svg("line", { x1: left, x2: width - right, y1: y(tenant.allocation), y2: y(tenant.allocation), stroke: colour.get(tenant.tenant), "stroke-dasharray": "4 4" }));
  }
  for (const series of timeline.tenants) {
    // Flat at 0 until the bucket of the first event, then a step per bucket (its end, capped at now).
    const bucket = timeline.bucketSeconds * 1000;
    const steps = series.points.flatMap((p, i) => {
      const at = Math.min(Date.parse(p.at), Date.now());
      const before = i === 0 ? 0 : series.points[i - 1].used;
      return [[Math.max(start, at - bucket), before], [at, p.used]];
    });
    const points = [[start, 0], ...steps].map(([at, used]) => `${x(at).toFixed(1)},${y(used).toFixed(1)}`);
    root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: colour.get(series.tenant) || "#57606a", "stroke-width": "2" }));
  }
  const legend = el("p", { class: "legend" }, ...pool.tenants.map((t) => {
    const item = el("span", { text: t.tenant });
    item.style.color = colour.get(t.tenant);
    return item;
  }), el("span", { text: "dashed: allocations" }));
  return el("div", {}, root, legend);
}

async function poolSection(pool) {
  const head = el("div", { class: "pool-head" },
    el("h2", { text: `${pool.pool} (${pool.window})` }),
    el("p", { class: "pool-used", text: `${pool.used} of ${pool.limit} used, ${pool.available} available` }),
    el("p", { text: `resets at ${utc(pool.windowEnd)} UTC, in ${until(pool.windowEnd)}` }));
  if (pool.forecast && pool.forecast.exhaustsAt) head.append(el("span", { class: "badge forecast", text: `runs out in ${until(pool.forecast.exhaustsAt)}` }));
  const error = el("p", { class: "error", role: "alert" });
  if (pool.closedUntil) {
    const reopen = el("button", { type: "button", text: "Reopen" });
    reopen.addEventListener("click", () => act(error, "POST", `/admin/v1/pools/${encodeURIComponent(pool.pool)}/reopen`));
    head.append(el("span", { class: "badge closed", text: `closed by the vendor until ${utc(pool.closedUntil)} UTC` }), reopen);
  }
  const table = el("table", { class: "tenants" },
    el("thead", {}, el("tr", {}, ...["Tenant", "Usage", "Used / limit", "Available", "Allocation / guaranteed", "Priority", "Change"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...pool.tenants.map((t) => tenantRow(pool, t))));
  const section = el("section", { class: "pool", "data-pool": pool.pool, "aria-label": `Pool ${pool.pool}` },
    head,
    bar(pool.used, pool.limit, [], `${pool.pool}: ${pool.used} of ${pool.limit} used`),
    error,
    el("p", { class: "legend" }, el("span", { class: "l-used", text: "used" }), el("span", { class: "l-allocation", text: "allocation" }),
      el("span", { class: "l-guaranteed", text: "guaranteed" }), el("span", { class: "l-soft", text: "soft limit" })),
    el("div", { class: "table-wrap" }, table));
  const timeline = await api("GET", `/admin/v1/pools/${encodeURIComponent(pool.pool)}/timeline`);
  if (timeline.status === 200) section.append(el("h3", { text: "Today, from the ledger" }), chart(pool, timeline.body));
  else section.append(el("p", { class: "hint", text: problemText(timeline.body) }));
  return section;
}

async function act(error, method, path, body) {
  error.textContent = "";
  try {
    const answer = await api(method, path, body);
    if (answer.status >= 400) { error.textContent = problemText(answer.body); return; }
    await refresh(true);
  } catch (failure) {
    handle(failure);
  }
}

function auditTable(entries) {
  const body = $("#audit tbody");
  body.replaceChildren(...entries.map((e) => el("tr", {},
    el("td", { text: utc(e.at) }), el("td", { text: e.actor }), el("td", { text: e.action }), el("td", { text: e.pool }),
    el("td", { text: e.tenant || "" }), el("td", { text: e.new ? JSON.stringify(e.new) : "" }))));
}

let refreshing = false;

async function refresh(force = false) {
  // Not while an operator is in a field: the table would be redrawn under them.
  const typing = document.activeElement && document.activeElement.matches && document.activeElement.matches("#pools input");
  if (refreshing || (!force && typing)) return;
  refreshing = true;
  try {
    const status = await api("GET", "/admin/v1/status");
    if (status.status !== 200) { $("#updated").textContent = problemText(status.body); return; }
    const sections = [];
    for (const pool of status.body.pools) sections.push(await poolSection(pool));
    $("#pools").replaceChildren(...sections);
    const audit = await api("GET", "/admin/v1/audit?limit=10");
    $("#audit").closest(".table-wrap").hidden = audit.status !== 200;
    $("#audit-empty").hidden = audit.status === 200;
    if (audit.status === 200) auditTable(audit.body.entries);
    else $("#audit-empty").textContent = problemText(audit.body);
    $("#updated").textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (failure) {
    handle(failure);
  } finally {
    refreshing = false;
  }
}

function handle(failure) {
  if (failure instanceof Unauthorized) {
    signOut("The admin key was refused (401). Sign in with a valid key.");
  } else {
    $("#updated").textContent = `The admin API did not answer: ${failure.message}`;
  }
}

let timer = null;

function signIn() {
  $("#sign-in").hidden = true;
  $("#dashboard").hidden = false;
  $("#sign-out").hidden = false;
  refresh(true);
  timer = setInterval(refresh, REFRESH_MS);
}

function signOut(message) {
  sessionStorage.removeItem(STORAGE);
  clearInterval(timer);
  $("#dashboard").hidden = true;
  $("#sign-out").hidden = true;
  $("#sign-in").hidden = false;
  $("#sign-in-error").textContent = message || "";
  $("#admin-key").focus();
}

$("#sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(STORAGE, $("#admin-key").value);
  $("#admin-key").value = "";
  signIn();
});
$("#sign-out").addEventListener("click", () => signOut());
if (sessionStorage.getItem(STORAGE)) signIn();
