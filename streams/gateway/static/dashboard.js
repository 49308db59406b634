// Gleaner's live dashboard: polls GET /api/v1/namespaces/{ns}/dashboard with the key kept in
// this tab's sessionStorage (given as #auth=uuid:key[&ns=name] or in the form) and draws the
// invokers and the last DAG requests with an SVG timeline. No libraries, no outside network.
"use strict";

const POLL_MS = 1500;
const SVG = "http://www.w3.org/2000/svg";
const KEY_ITEM = "gleaner.dashboard.auth";
const NS_ITEM = "gleaner.dashboard.ns";
let lastBody = null;
let timer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function setStatus(state, text) {
  const s = document.getElementById("status");
  s.dataset.state = state;
  s.textContent = text;
}

// --- the key -------------------------------------------------------------------------------
function takeKeyFromFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (params.get("auth")) {
    sessionStorage.setItem(KEY_ITEM, params.get("auth"));
    sessionStorage.setItem(NS_ITEM, params.get("ns") || "_");
    history.replaceState(null, "", location.pathname + location.search); // the key leaves the URL
  }
}

function showLogin(show) {
  document.getElementById("login").hidden = !show;
  document.getElementById("logout").hidden = show;
}

function currentKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

// --- formatting ----------------------------------------------------------------------------
function ms(v) {
  if (v === null || v === undefined) return "?";
  return v >= 10000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms";
}

function alloc(a) {
  return a ? `${a.cpu} CPU / ${a.memory} MB` : "-";
}

function ago(v) {
  return v === null || v === undefined ? "-" : (v / 1000).toFixed(1) + " s ago";
}

// --- invokers ------------------------------------------------------------------------------
function meter(used, capacity, unit) {
  const pct = capacity > 0 ? Math.min(100, (100 * used) / capacity) : 0;
  const bar = el("span", { class: "meter" }, el("span", { style: `width:${pct.toFixed(1)}%` }));
  return el("td", {}, bar, `${+used.toFixed(2)} / ${capacity} ${unit}`);
}

function renderInvokers(rows) {
  const body = document.querySelector("#invokers tbody");
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { colspan: "9", class: "empty" }, "No invoker has sent a heartbeat.")));
  }
  for (const r of rows) {
    const healthy = r.healthy ? "up" : r.status === "draining" ? "draining" : "down";
    const lent = r.cpu_lent || 0, queue = r.queue || 0; // absent from an older gateway's view
    body.append(
      el(
        "tr",
        { "data-invoker": r.id },
        el("td", {}, r.id),
        el("td", { class: r.healthy ? "up" : "down" }, healthy),
        meter(r.cpu_used, r.cpu_capacity, "cores"),
        el("td", { class: "num" + (lent > 0 ? " lent" : ""), "data-col": "cpu-lent" }, `${+lent.toFixed(2)} cores`),
        meter(r.memory_used_mb, r.memory_capacity_mb, "MB"),
        el("td", { class: "num", "data-col": "running" }, r.running),
        el("td", { class: "num" + (queue > 0 ? " queued" : ""), "data-col": "queue" }, queue),
        el("td", { class: "num", "data-col": "in-flight" }, r.waiting),
        el("td", {}, ago(r.age_ms)),
      ),
    );
  }
}

// --- one DAG request -----------------------------------------------------------------------
function ticks(span) {
  const steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 60000];
  const step = steps.find((s) => span / s <= 8) || 120000;
  const out = [];
  for (let t = 0; t <= span; t += step) out.push(t);
  return out;
}

function timeline(req) {
  const rows = [];
  req.stages.forEach((stage, si) => stage.functions.forEach((f) => rows.push({ stage, si, f })));
  const labelW = 150, rowH = 18, top = 18, width = 900;
  const plotW = width - labelW - 10;
  const span = Math.max(1, req.duration_ms, ...rows.map((r) => r.f.to_ms || 0));
  const x = (t) => labelW + (plotW * Math.max(0, t)) / span;
  const height = top + rows.length * rowH + 4;
  const root = svg("svg", {
    class: "timeline",
    viewBox: `0 0 ${width} ${height}`,
    "data-request-id": req.id,
    role: "img",
  });
  root.append(svg("title", {}, `Stage timeline of ${req.dag} ${req.id}`));
  const axis = svg("g", { class: "axis" });
  for (const t of ticks(span)) {
    axis.append(svg("line", { x1: x(t), x2: x(t), y1: top - 4, y2: height }));
    if (x(t) < width - 40) axis.append(svg("text", { x: x(t) + 2, y: 11 }, ms(t)));
  }
  root.append(axis);
  let y = top;
  req.stages.forEach((stage, si) => {
    const n = stage.functions.length;
    if (!n) return;
    root.append(
      svg("rect", {
        class: "stage-band" + (si % 2 ? " odd" : ""),
        x: 0, y, width, height: n * rowH,
        "data-stage": stage.index,
      }),
    );
    for (const f of stage.functions) {
      const name = `${stage.index}.${f.index} ${f.action}`;
      root.append(svg("text", { x: 4, y: y + 13 }, name.length > 24 ? name.slice(0, 23) + "…" : name));
      if (f.from_ms !== null && f.to_ms !== null) {
        const bar = svg("rect", {
          class: `bar origin-${f.origin}` + (f.status_code ? " failed" : "") + (f.running ? " running" : ""),
          x: x(f.from_ms),
          y: y + 3,
          width: Math.max(2, x(f.to_ms) - x(f.from_ms)),
          height: rowH - 6,
          rx: 2,
          "data-action": f.action,
          "data-activation-id": f.activation_id,
          "data-stage": stage.index,
          "data-origin": f.origin,
        });
        bar.append(
          svg("title", {}, `${f.action}: ${f.running ? "running for " : ""}${ms(f.to_ms - f.from_ms)}, ${alloc(f.allocation)} (${f.origin})` +
            (f.invoker ? ` on ${f.invoker}` : "") + (f.cold ? ", cold start" : "")),
        );
        root.append(bar);
        if (f.cold) root.append(svg("circle", { cx: x(f.from_ms) - 5, cy: y + rowH / 2, r: 3, fill: "#111827" }));
      }
      y += rowH;
    }
  });
  return root;
}

function allocationTable(req) {
  const rows = [];
  for (const stage of req.stages) {
    for (const f of stage.functions) {
      rows.push(
        el(
          "tr",
          {},
          el("td", {}, `${stage.index}.${f.index}`),
          el("td", {}, f.action),
          el("td", {}, alloc(f.allocation)),
          el("td", {}, alloc(f.user_allocation)),
          el("td", {}, el("span", { class: `swatch origin-${f.origin}` }), f.origin),
          el("td", {}, f.invoker || "-"),
          el("td", {}, f.from_ms === null ? "-" : f.running ? "running" : ms(f.to_ms - f.from_ms)),
          el("td", {}, f.cold === null ? "-" : f.cold ? "cold" : "warm"),
        ),
      );
    }
  }
  const head = el("tr", {}, ...["slot", "function", "allocation", "user asked", "origin", "invoker", "ran", "start"].map((h) => el("th", {}, h)));
  return el("details", {}, el("summary", {}, "allocations"), el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
}

function harvestText(h) {
  if (h.decision === "none") return "no plan";
  if (h.decision === "off") return "harvest off" + (h.policy && h.policy !== "off" ? ` (${h.policy})` : "");
  const modes = h.stages.filter((s) => s.cpu_mode && s.cpu_mode !== "rejected").map((s) => `stage ${s.stage}: cpu ${s.cpu_mode}, mem ${s.mem_mode}`);
  return `harvest ${h.decision}` + (h.policy ? ` (${h.policy})` : "") + (modes.length ? " · " + modes.join("; ") : "");
}

function renderRequest(req) {
  const status = req.status || "?";
  const head = el(
    "h3",
    {},
    el("span", { class: "dag" }, req.dag),
    el("span", { class: "id" }, req.id),
    el("span", { class: `tag ${status}` }, status),
    el("span", { class: "tag" }, ms(req.duration_ms)),
    el("span", { class: "tag harvest-" + req.harvest.decision, "data-harvest": req.harvest.decision }, harvestText(req.harvest)),
    el("span", { class: "when" }, new Date(req.start).toLocaleTimeString()),
  );
  if (req.speedup) {
    const v = req.speedup.value;
    head.append(
      el(
        "span",
        { class: "tag speedup " + (v >= 0 ? "faster" : "slower"), title: `baseline ${req.speedup.baseline} (${ms(req.speedup.baseline_ms)}) without harvesting` },
        `speedup ${(100 * v).toFixed(0)} %`,
      ),
    );
  }
  if (req.namespace) head.append(el("span", { class: "id" }, req.namespace));
  const box = el("article", { class: "request", "data-request-id": req.id, "data-dag": req.dag }, head, timeline(req));
  if (req.harvest.reasons.length) box.append(el("p", { class: "reasons" }, req.harvest.reasons.join(" · ")));
  box.append(allocationTable(req));
  return box;
}

function renderRequests(requests) {
  const box = document.getElementById("requests");
  const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.closest(".request").dataset.requestId));
  box.replaceChildren();
  if (!requests.length) box.append(el("p", { class: "empty" }, "No DAG request in the last hour."));
  for (const req of requests) {
    const node = renderRequest(req);
    if (open.has(req.id)) node.querySelector("details").open = true;
    box.append(node);
  }
}

// --- polling -------------------------------------------------------------------------------
async function poll() {
  const key = currentKey();
  if (!key) {
    showLogin(true);
    setStatus("auth", "an API key is needed");
    return;
  }
  showLogin(false);
  const ns = encodeURIComponent(sessionStorage.getItem(NS_ITEM) || "_");
  try {
    const resp = await fetch(`/api/v1/namespaces/${ns}/dashboard?limit=10`, {
      headers: { Authorization: "Basic " + btoa(key) },
      cache: "no-store",
    });
    const body = await resp.text();
    if (!resp.ok) {
      let msg = body;
      try { msg = JSON.parse(body).error; } catch (e) { /* not JSON */ }
      setStatus(resp.status === 401 || resp.status === 403 ? "auth" : "error", `${resp.status}: ${msg}`);
      if (resp.status === 401) showLogin(true);
      return;
    }
    if (body !== lastBody) {
      lastBody = body;
      const view = JSON.parse(body);
      document.getElementById("scope").textContent = view.scope === "*" ? "all namespaces" : `namespace ${view.scope}`;
      renderInvokers(view.invokers);
      renderRequests(view.requests);
    }
    setStatus("ok", "live · " + new Date().toLocaleTimeString());
  } catch (e) {
    setStatus("error", "gateway unreachable");
  } finally {
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
  }
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY_ITEM, document.getElementById("key").value.trim());
  sessionStorage.setItem(NS_ITEM, document.getElementById("ns").value.trim() || "_");
  lastBody = null;
  poll();
});
document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_ITEM);
  lastBody = null;
  clearTimeout(timer);
  poll();
});
window.addEventListener("hashchange", () => { takeKeyFromFragment(); lastBody = null; poll(); });

takeKeyFromFragment();
poll();
