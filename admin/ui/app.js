// lbd's status page: the figures come from the admin API (polled every
// second), the events from its SSE stream (which also triggers a refresh,
// so a change shows at once). Every call carries the bearer token kept in
// sessionStorage, when one was given; the streams are read with fetch so
// that they can carry it too (EventSource cannot set headers).
"use strict";

const POLL_MS = 1000;
const MAX_EVENTS = 100;
const TOKEN_KEY = "lbd-admin-token";

const $ = (sel, root = document) => root.querySelector(sel);

// el builds an element; children are nodes or strings (set as text, never
// parsed: names and causes come from the API and may hold anything).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

// api calls the admin API and returns its JSON, or throws its error.
async function api(path, method = "GET") {
  const resp = await fetch(path, { method, headers: headers(), cache: "no-store" });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(`${resp.status}: ${body.error || resp.statusText}`);
  return body;
}

function setConn(text, cls) {
  const c = $("#conn");
  c.textContent = text;
  c.className = "conn " + (cls || "");
}

// --- figures ---------------------------------------------------------------

const fmt = {
  ms: (v) => (v < 10 ? v.toFixed(2) : v.toFixed(1)) + " ms",
  rate: (v) => (v < 10 ? v.toFixed(1) : Math.round(v).toString()),
  ago(iso) {
    if (!iso) return "";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 60 ? `${Math.round(s)}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
  },
  time: (iso) => new Date(iso).toLocaleTimeString([], { hour12: false }),
};

// Counters of the previous poll, by pool and URL, for the rates.
const previous = new Map();

function rates(pool, b, now) {
  const key = pool + " " + b.url;
  const p = previous.get(key);
  previous.set(key, { requests: b.requests, failures: b.failures, at: now });
  if (!p || now <= p.at || b.requests < p.requests) return { req: null, err: null };
  const dt = (now - p.at) / 1000;
  return { req: (b.requests - p.requests) / dt, err: Math.max(0, b.failures - p.failures) / dt };
}

async function act(op, pool, url, button) {
  button.disabled = true;
  try {
    await api(`/admin/${op}?pool=${encodeURIComponent(pool)}&url=${encodeURIComponent(url)}`, "POST");
    refreshSoon();
  } catch (e) {
    alert(`${op} ${url}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

function backendRow(pool, b, now) {
  const r = rates(pool, b, now);
  const draining = b.state === "draining";
  const inflight = b.max_inflight > 0 ? `${b.inflight}/${b.max_inflight}` : String(b.inflight);
  const probe = b.last_probe
    ? el("span", {}, fmt.ago(b.last_probe), el("span", { class: "cause" }, b.last_probe_detail || ""))
    : "–";
  const button = el("button", { type: "button", "data-action": draining ? "undrain" : "drain" }, draining ? "Undrain" : "Drain");
  button.addEventListener("click", () => act(draining ? "undrain" : "drain", pool, b.url, button));
  return el("tr", { "data-backend": b.url, "data-state": b.state },
    el("td", { "data-label": "Backend" }, b.name ? el("span", { class: "name" }, b.name) : "", el("span", { class: "url" }, b.url)),
    el("td", { "data-label": "State" }, el("span", { class: "state " + b.state }, b.state),
      el("span", { class: "cause" }, b.state_cause || "")),
    el("td", { "data-label": "Breaker" }, el("span", { class: "breaker " + b.breaker }, b.breaker),
      b.breaker !== "closed" ? el("span", { class: "cause" }, b.breaker_cause || "") : ""),
    el("td", { class: "num", "data-label": "In flight" }, inflight),
    el("td", { class: "num", "data-label": "EWMA" }, fmt.ms(b.ewma_ms)),
    el("td", { class: "num", "data-label": "Req/s" }, r.req === null ? "–" : fmt.rate(r.req)),
    el("td", { class: "num", "data-label": "Err/s" }, r.err === null ? "–" : fmt.rate(r.err)),
    el("td", { "data-label": "Last probe" }, probe),
    el("td", { class: "num", "data-label": "Warm-up" }, b.warmup_remaining_ms > 0 ? `${Math.ceil(b.warmup_remaining_ms / 1000)}s` : "–"),
    el("td", {}, button),
  );
}

function renderPool(pool, backends, now) {
  const id = "pool-" + pool.name;
  let section = document.getElementById(id);
  if (!section) {
    section = $("#pool-template").content.firstElementChild.cloneNode(true);
    section.id = id;
    section.dataset.pool = pool.name;
    $("#pools").append(section);
  }
  $(".pool-name", section).textContent = "Pool " + pool.name;
  const sticky = pool.sticky && pool.sticky.enabled ? `, sticky ${pool.sticky.key}` : "";
  const canary = pool.canary && pool.canary.backend ? `, canary ${pool.canary.backend} ${pool.canary.percent}%` : "";
  $(".pool-meta", section).textContent =
    `${pool.policy}${sticky}${canary} · ${pool.eligible} of ${pool.backends} eligible · ${pool.inflight} in flight`;
  $("tbody", section).replaceChildren(...backends.map((b) => backendRow(pool.name, b, now)));
}

function renderAdmission(doc) {
  const a = (doc.admission && doc.admission.admission) || {};
  const aimd = doc.admission && doc.admission.aimd;
  $("#adm-limit").textContent = a.limit === undefined ? "–" : `${a.limit}${aimd ? " (" + aimd.algorithm + ")" : ""}`;
  $("#adm-inflight").textContent = a.inflight ?? "–";
  $("#adm-rate").textContent = doc.rates && doc.rates.requests_per_s !== undefined ? fmt.rate(doc.rates.requests_per_s) : "–";
  const shed = (doc.totals && doc.totals.rejected) || {};
  const parts = Object.entries(shed).filter(([, n]) => n > 0).map(([why, n]) => `${why} ${n}`);
  $("#adm-shed").textContent = parts.length ? parts.join(", ") : "none";
}

function renderActors(doc) {
  const rows = (doc.actors || []).map((a) => el("tr", {},
    el("td", { class: "url" }, a.name), el("td", {}, a.kind),
    el("td", { class: "num" }, `${a.mailbox_len}/${a.mailbox_cap}`),
    el("td", { class: "num" }, a.processed), el("td", { class: "num" }, a.dropped),
    el("td", { class: "muted" }, a.state || "")));
  $("#actors tbody").replaceChildren(...rows);
}

let timer = null;
let running = false;

async function refresh() {
  if (running) return;
  running = true;
  clearTimeout(timer);
  try {
    const { pools } = await api("/admin/pools");
    const now = Date.now();
    const lists = await Promise.all(pools.map((p) => api("/admin/backends?pool=" + encodeURIComponent(p.name))));
    pools.forEach((p, i) => renderPool(p, lists[i].backends, now));
    for (const s of document.querySelectorAll("#pools > section")) {
      if (!pools.some((p) => p.name === s.dataset.pool)) s.remove();
    }
    const [metrics, actors] = await Promise.all([api("/admin/metrics/json"), api("/debug/actors")]);
    renderAdmission(metrics);
    renderActors(actors);
    setConn("live · " + new Date(now).toLocaleTimeString([], { hour12: false }), "live");
  } catch (e) {
    setConn(e.message, "down");
  } finally {
    running = false;
    timer = setTimeout(refresh, POLL_MS);
  }
}

// refreshSoon refreshes now, or right after the refresh under way.
function refreshSoon() {
  if (running) {
    clearTimeout(timer);
    timer = setTimeout(refresh, 50);
    return;
  }
  refresh();
}

// --- events ----------------------------------------------------------------

function addEvent(e) {
  const who = e.name ? `${e.backend} (${e.name})` : e.backend;
  const li = el("li", { "data-seq": e.seq },
    el("time", { datetime: e.time }, fmt.time(e.time)),
    `${e.pool} · `, el("span", { class: "url" }, who), ` ${e.kind} `,
    el("span", { class: "state " + (e.from || "") }, e.from || "new"), el("span", { class: "arrow" }, " → "),
    el("span", { class: "state " + e.to }, e.to), el("span", { class: "cause" }, e.cause));
  const list = $("#events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

// readSSE reads a server-sent-event stream from a fetch response and calls
// onMessage with each message's data and id.
async function readSSE(resp, onMessage) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let data = "", id = "", type = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("id: ")) id = line.slice(4);
        else if (line.startsWith("event: ")) type = line.slice(7);
      }
      if (data && !type) onMessage(data, id);
    }
  }
}

let lastEventID = "";
let stream = new AbortController(); // aborted when the token changes: follow again with the new one

async function followEvents() {
  for (;;) {
    try {
      const h = headers();
      if (lastEventID) h["Last-Event-ID"] = lastEventID;
      const resp = await fetch("/admin/events?follow=1&limit=50", { headers: h, cache: "no-store", signal: stream.signal });
      if (!resp.ok) throw new Error(`events: ${resp.status}`);
      await readSSE(resp, (data, id) => {
        if (id) lastEventID = id;
        addEvent(JSON.parse(data));
        refreshSoon();
      });
    } catch (e) {
      if (e.name !== "AbortError") setConn(e.message, "down");
    }
    // The stream ended (lbd restarted, or refused the token): follow again
    // in a while, or at once when a new token is given.
    if (!stream.signal.aborted) await pause(2000, stream.signal);
    if (stream.signal.aborted) stream = new AbortController();
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// --- start -----------------------------------------------------------------

$("#token").value = token();
$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("#token").value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
  stream.abort();
  refreshSoon();
});
refresh();
followEvents();
