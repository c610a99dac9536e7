/* The dashboard: plain JavaScript over the JSON API (/api/...), SVG drawn
 * here. No build step. Every change goes out with the session's CSRF token. */
"use strict";

const S = { session: null, timer: null, logs: [] };
const main = document.getElementById("main");

/* --- small helpers --- */

function h(tag, attrs, ...kids) {
  const svg = ["svg", "g", "rect", "line", "path", "text", "circle", "polyline", "title"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function badge(word) {
  const w = word || "new";
  return h("span", { class: "badge " + w.replace(/[^a-z_]/g, "_") }, w.replace(/_/g, " "));
}

function short(v) {
  const t = JSON.stringify(v === undefined ? null : v);
  return t.length > 160 ? t.slice(0, 159) + "…" : t;
}

function usd(x) { return "$" + (Number(x) || 0).toFixed(4); }
function num(x) { return (Number(x) || 0).toLocaleString("en"); }

async function api(path, opts) {
  const o = Object.assign({ credentials: "same-origin", headers: {} }, opts || {});
  if (o.body && typeof o.body !== "string") {
    o.body = JSON.stringify(o.body);
    o.headers["Content-Type"] = "application/json";
  }
  if (o.method && o.method !== "GET" && S.session) o.headers["X-CSRF-Token"] = S.session.csrf;
  const r = await fetch(path, o);
  const ct = r.headers.get("Content-Type") || "";
  const data = ct.includes("json") ? await r.json() : await r.text();
  if (r.status === 401 && path !== "/login") { showLogin(); throw new Error("log in first"); }
  if (!r.ok) throw new Error((data && data.error) || data || ("HTTP " + r.status));
  return data;
}

function card(title, ...kids) { return h("section", { class: "card" }, title ? h("h2", {}, title) : null, kids); }

function setView(name, ...kids) {
  for (const a of document.querySelectorAll("#nav a"))
    a.classList.toggle("active", a.dataset.view === name);
  main.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
}

function errorBox(e) { return h("p", { class: "err" }, String(e.message || e)); }

/* --- login --- */

function showLogin() {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").textContent = "";
  main.replaceChildren();
  const f = document.getElementById("login");
  f.hidden = false;
  document.getElementById("token").focus();
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const err = document.getElementById("login-err");
  err.textContent = "";
  try {
    await api("/login", { method: "POST", body: { token: f.token.value, pre: f.pre.value } });
    f.token.value = "";
    location.hash = "#/";
    location.reload();
  } catch (e) { err.textContent = e.message; }
});

async function start() {
  try {
    S.session = await api("/api/session");
  } catch (e) { return; }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  const who = document.getElementById("who");
  const as = S.session.telegram_id ? "Telegram " + S.session.telegram_id : "operator " + S.session.operator;
  who.replaceChildren(S.session.name + " (" + as + (S.session.admin ? ", admin" : "") + ")",
    h("button", { id: "logout", onclick: async () => { await api("/logout", { method: "POST" }); location.reload(); } }, "Log out"));
  route();
}

/* --- the views --- */

function stop() {
  clearTimeout(S.timer);
  for (const es of S.logs) es.close();
  S.logs = [];
}

function refresh(fn, ms) { S.timer = setTimeout(fn, ms); }

function route() {
  stop();
  const hash = location.hash || "#/";
  const m = hash.match(/^#\/p\/(.+)$/);
  if (m) return viewProject(decodeURIComponent(m[1]));
  if (hash === "#/questions") return viewQuestions();
  if (hash === "#/models") return viewModels();
  if (hash === "#/budgets") return viewBudgets();
  if (hash === "#/engine") return viewEngine();
  return viewProjects();
}

window.addEventListener("hashchange", route);

async function viewProjects() {
  let st;
  try { st = await api("/api/status"); } catch (e) { return setView("projects", errorBox(e)); }
  const rows = (st.projects || []).map((p) => {
    const t = p.tasks || {};
    const total = t.total || 0, merged = t.merged || 0;
    const bar = h("div", { class: "bar", title: merged + " of " + total + " merged" },
      h("span", { style: { width: (total ? Math.round(100 * merged / total) : 0) + "%" } }));
    return h("tr", { "data-project": p.key },
      h("td", {}, h("a", { href: "#/p/" + encodeURIComponent(p.key) }, p.name || p.title || p.key),
        h("div", { class: "muted" }, p.key)),
      h("td", {}, badge(p.stage || "new")),
      h("td", {}, total ? merged + " / " + total : "-", total ? bar : null),
      h("td", { class: "num" }, p.workers || 0),
      h("td", { class: "num" }, p.questions || 0),
      h("td", { class: "num" }, num((p.tokens_in || 0) + (p.tokens_out || 0))),
      h("td", { class: "num" }, usd(p.cost_usd)));
  });
  const table = h("table", { id: "projects" },
    h("thead", {}, h("tr", {}, ["Project", "Stage", "Tasks merged", "Workers", "Questions", "Tokens", "Cost"]
      .map((x, i) => h("th", { class: i > 2 ? "num" : null }, x)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" },
      "No project yet: describe an idea in Telegram, in `orchestrator chat` or with `orchestrator new`."))));
  setView("projects", h("h1", {}, "Projects"), card(null, table), questionsCard(st.questions || []));
  refresh(viewProjects, 3000);
}

function questionsCard(qs) {
  if (!qs.length) return card("Questions waiting", h("p", { class: "muted" }, "None."));
  return card("Questions waiting", qs.map((q) => questionBox(q, q.project)));
}

function questionBox(q, project) {
  const opts = (q.options || []).map((o) =>
    h("button", { class: /approve|merge|retry|extend/.test(o.id) ? "primary" : null, "data-option": o.id,
      onclick: (ev) => answer(q.id, o.id, ev.target) }, o.label || o.id));
  return h("div", { class: "question", "data-question": q.id },
    project ? h("a", { href: "#/p/" + encodeURIComponent(project) }, project) : null,
    h("div", {}, q.question),
    q.id ? h("div", { class: "opts" }, opts.length ? opts : h("span", { class: "muted" }, "answer it in its chat"))
         : h("div", { class: "muted" }, "being sent to its chat…"),
    h("div", { class: "err" }));
}

async function answer(id, option, btn) {
  const box = btn.closest(".question");
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  try {
    const r = await api("/api/questions/" + id, { method: "POST", body: { option: option } });
    box.querySelector(".err").replaceChildren(h("span", { class: "note" }, "Answered: " + r.label));
  } catch (e) {
    box.querySelector(".err").textContent = e.message;
    for (const b of box.querySelectorAll("button")) b.disabled = false;
  }
}

async function viewQuestions() {
  let st;
  try { st = await api("/api/status"); } catch (e) { return setView("questions", errorBox(e)); }
  setView("questions", h("h1", {}, "Questions"), questionsCard(st.questions || []));
  refresh(viewQuestions, 4000);
}

/* --- one project --- */

const STAGES = [["brainstorm", "Brainstorm"], ["spec_review", "Spec"], ["architect", "Architect"],
  ["plan_review", "Plan"], ["develop", "Develop"], ["done", "Done"]];
/* a change to an existing repository has four more (README: Changing an existing repository) */
const CHANGE_STAGES = [["import", "Import"], ["brainstorm", "Brainstorm"], ["spec_review", "Spec"],
  ["baseline", "Baseline"], ["architect", "Architect"], ["plan_review", "Plan"],
  ["develop", "Develop"], ["deliver", "Deliver"], ["pull_request", "Pull request"], ["done", "Done"]];

function stageBar(stage, change) {
  const stages = change ? CHANGE_STAGES : STAGES;
  const at = stages.findIndex((s) => s[0] === stage);
  return h("div", { class: "stages", id: "stages" }, stages.map((s, i) =>
    h("span", { class: i < at ? "past" : i === at ? "now" : null, "data-stage": s[0] }, s[1])));
}

const STATUS_COLOR = { merged: "#1f9d55", done: "#1f9d55", working: "#2f6fed", reviewing: "#2f6fed",
  merging: "#2f6fed", review: "#d98a00", changes: "#d98a00", approved: "#d98a00", merge_ready: "#d98a00",
  merge_wait: "#7c5cd6", blocked: "#7c5cd6", skipped: "#9aa3b2", queued: "#9aa3b2",
  review_error: "#d64545", review_budget: "#d64545" };

/* The plan's tasks as a layered graph: a task one column right of its
 * latest dependency; arrows from dependency to task; colours by status. */
function taskGraph(plan, tasks) {
  const list = (plan && plan.tasks) || [];
  if (!list.length) return h("p", { class: "muted" }, "No plan yet.");
  const depth = {};
  const byId = Object.fromEntries(list.map((t) => [t.id, t]));
  const d = (id, seen) => {
    if (depth[id] !== undefined) return depth[id];
    if (seen.has(id)) return 0;
    seen.add(id);
    const deps = (byId[id] && byId[id].deps) || [];
    depth[id] = deps.length ? 1 + Math.max(...deps.map((x) => d(x, seen))) : 0;
    return depth[id];
  };
  list.forEach((t) => d(t.id, new Set()));
  const cols = {};
  list.forEach((t) => { (cols[depth[t.id]] = cols[depth[t.id]] || []).push(t.id); });
  const W = 170, H = 54, GX = 60, GY = 18, pos = {};
  let maxRows = 0;
  Object.entries(cols).forEach(([c, ids]) => {
    maxRows = Math.max(maxRows, ids.length);
    ids.forEach((id, r) => { pos[id] = { x: 10 + c * (W + GX), y: 10 + r * (H + GY) }; });
  });
  const ncol = Object.keys(cols).length;
  const svg = h("svg", { id: "task-graph", width: 20 + ncol * W + (ncol - 1) * GX, height: 20 + maxRows * (H + GY) - GY,
    viewBox: "0 0 " + (20 + ncol * W + (ncol - 1) * GX) + " " + (20 + maxRows * (H + GY) - GY) });
  svg.append(h("path", { d: "M0,0 L8,4 L0,8 z", id: "arrowhead-shape", fill: "#9aa3b2", style: { display: "none" } }));
  for (const t of list) for (const dep of t.deps || []) {
    if (!pos[dep]) continue;
    const a = pos[dep], b = pos[t.id];
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    svg.append(h("path", { d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2 - 6},${y2}`,
      fill: "none", stroke: "#9aa3b2", "stroke-width": 1.5 }));
    svg.append(h("path", { d: `M${x2 - 7},${y2 - 4} L${x2},${y2} L${x2 - 7},${y2 + 4} z`, fill: "#9aa3b2" }));
  }
  for (const t of list) {
    const st = ((tasks && tasks[t.id]) || {}).status || "queued";
    const p = pos[t.id];
    const g = h("g", { class: "task", "data-task": t.id, "data-status": st });
    g.append(h("title", {}, t.id + ": " + (t.title || "") + " (" + st + ")"));
    g.append(h("rect", { x: p.x, y: p.y, width: W, height: H, rx: 7, fill: "#fff",
      stroke: STATUS_COLOR[st] || "#9aa3b2", "stroke-width": 2.5 }));
    g.append(h("rect", { x: p.x, y: p.y, width: 7, height: H, rx: 3, fill: STATUS_COLOR[st] || "#9aa3b2" }));
    g.append(h("text", { x: p.x + 14, y: p.y + 20, "font-weight": 600 }, t.id));
    g.append(h("text", { x: p.x + 14, y: p.y + 38, fill: "#6b7384" },
      ((t.title || "").length > 22 ? t.title.slice(0, 21) + "…" : t.title || "") + " · " + st.replace(/_/g, " ")));
    svg.append(g);
  }
  return svg;
}

function barChart(id, rows, label, value, fmt) {
  if (!rows || !rows.length) return h("p", { class: "muted" }, "No calls yet.");
  const max = Math.max(...rows.map(value), 1e-12), W = 360, BH = 20, LW = 130;
  const svg = h("svg", { id: id, viewBox: `0 0 ${W} ${rows.length * (BH + 6) + 4}`, width: "100%",
    preserveAspectRatio: "xMinYMin meet" });
  rows.forEach((r, i) => {
    const w = Math.max(2, (W - LW - 90) * value(r) / max), y = i * (BH + 6) + 2;
    svg.append(h("text", { x: 0, y: y + 14 }, label(r).slice(0, 18)));
    svg.append(h("rect", { x: LW, y: y, width: w, height: BH, rx: 3, fill: "#2f6fed" }));
    svg.append(h("text", { x: LW + w + 6, y: y + 14, fill: "#6b7384" }, fmt(value(r))));
  });
  return svg;
}

function lineChart(id, points) {
  if (!points || !points.length) return h("p", { class: "muted" }, "No calls yet.");
  const W = 520, H = 160, P = 36;
  let acc = 0;
  const cum = points.map((p) => { acc += Number(p.cost_usd) || 0; return { t: Date.parse(p.t), v: acc }; });
  const t0 = cum[0].t, t1 = Math.max(cum[cum.length - 1].t, t0 + 60000), vmax = Math.max(acc, 1e-9);
  const X = (t) => P + (W - 2 * P) * (t - t0) / (t1 - t0), Y = (v) => H - P + 10 - (H - P - 10) * v / vmax;
  const svg = h("svg", { id: id, viewBox: `0 0 ${W} ${H + 10}`, width: "100%", preserveAspectRatio: "xMinYMin meet" });
  svg.append(h("line", { x1: P, y1: H - P + 10, x2: W - P, y2: H - P + 10, stroke: "#e1e4ea" }));
  svg.append(h("polyline", { fill: "none", stroke: "#1f9d55", "stroke-width": 2,
    points: cum.map((c) => X(c.t).toFixed(1) + "," + Y(c.v).toFixed(1)).join(" ") }));
  cum.forEach((c) => svg.append(h("circle", { cx: X(c.t), cy: Y(c.v), r: 3, fill: "#1f9d55" })));
  svg.append(h("text", { x: P, y: 12, fill: "#6b7384" }, "total " + usd(acc)));
  svg.append(h("text", { x: P, y: H + 6, fill: "#6b7384" }, new Date(t0).toISOString().slice(11, 16)));
  svg.append(h("text", { x: W - P - 34, y: H + 6, fill: "#6b7384" }, new Date(t1).toISOString().slice(11, 16)));
  return svg;
}

function conversation(state) {
  const conv = (state.conversation || []).map((m) => Object.assign({ at: 0 }, m));
  const notes = (state.log || []).filter((l) => l.kind === "error").map((l) => ({ role: "note", text: l.text, at: l.at }));
  const all = conv.concat(notes.slice(-3));
  if (!all.length) return h("p", { class: "muted" }, "Nothing said yet.");
  return h("div", { class: "conv", id: "conversation" }, all.map((m) => {
    const role = m.role || (m.from === "user" ? "user" : "assistant");
    return h("div", { class: "msg " + role }, h("span", { class: "who" }, role === "note" ? "note" : role),
      m.text || m.content || JSON.stringify(m));
  }));
}

function reviews(state) {
  const rows = [];
  for (const [id, t] of Object.entries(state.tasks || {})) {
    const rv = t.review || t.verdict;
    if (!rv && !t.reviews) continue;
    const list = t.reviews || [rv];
    for (const r of list) if (r) rows.push(h("tr", {}, h("td", {}, id), h("td", {}, badge(r.verdict || r.decision || "?")),
      h("td", {}, r.summary || r.comments || (typeof r === "string" ? r : ""))));
  }
  if (!rows.length) return h("p", { class: "muted" }, "No review yet.");
  return h("table", { id: "reviews" }, h("tbody", {}, rows));
}

function followLog(workerId, box) {
  box.replaceChildren(h("div", { class: "muted" }, "following " + workerId + "…"));
  const es = new EventSource("/api/workers/" + encodeURIComponent(workerId) + "/log");
  S.logs.push(es);
  const add = (kind, text) => {
    box.append(h("div", { class: "line" }, h("span", { class: "k" }, kind + " "), text));
    box.scrollTop = box.scrollHeight;
  };
  es.addEventListener("line", (ev) => {
    let l; try { l = JSON.parse(ev.data); } catch (e) { l = { kind: "line", text: ev.data }; }
    add(l.kind || "line", l.text || "");
  });
  es.addEventListener("state", (ev) => {
    const w = JSON.parse(ev.data);
    const p = w.progress || {};
    add("state", (w.state || "") + (w.status ? " " + w.status : "") + (p.step ? " step " + p.step : "") + (p.action ? ": " + p.action : ""));
  });
  es.addEventListener("result", (ev) => {
    let r; try { r = JSON.parse(ev.data); } catch (e) { r = {}; }
    add("result", (r.status || "") + ": " + (r.reason || ""));
    es.close();
  });
  es.addEventListener("error", () => {});
}

async function viewProject(key) {
  let p;
  try { p = await api("/api/projects/" + encodeURIComponent(key)); }
  catch (e) { return setView("projects", h("h1", {}, key), errorBox(e)); }
  const s = p.summary || {}, state = p.state || {};
  const stage = s.stage || state.stage || "brainstorm";
  const open = (p.questions || []).filter((q) => q.state === "pending");
  const decided = (p.questions || []).filter((q) => q.state !== "pending");
  const logBox = h("div", { class: "log", id: "worker-log" }, h("span", { class: "muted" }, "Choose a worker to follow its live log."));
  const workers = (p.workers || []).map((w) => h("tr", { "data-worker": w.id },
    h("td", {}, w.id), h("td", {}, w.task || ""), h("td", {}, w.mode || ""), h("td", {}, badge(w.status || w.state)),
    h("td", {}, w.tests || ""), h("td", { class: "num" }, usd(w.cost_usd)),
    h("td", {}, h("button", { class: "follow", onclick: () => followLog(w.id, logBox) }, "Live log"))));
  const merged = Object.entries(state.tasks || {}).filter(([, t]) => t.status === "merged").map(([id]) => id);
  const diffBox = h("pre", { id: "diff", hidden: true });
  const charts = p.charts || {};
  setView("projects",
    h("h1", {}, (state.spec && state.spec.name) || s.name || p.key, " ", badge(stage)),
    h("div", { class: "muted" }, p.key + " · " + (s.summary || (state.spec && state.spec.summary) || "")),
    stageBar(stage, !!state.change),
    open.length ? card("Waiting for you", open.map((q) => questionBox(q))) : null,
    card("Tasks", h("div", { class: "graph" }, taskGraph(state.plan, state.tasks))),
    h("div", { class: "grid" },
      card("Conversation", conversation(state)),
      card("Decisions", decided.length ? h("table", { id: "decisions" }, h("tbody", {}, decided.map((q) =>
        h("tr", {}, h("td", {}, q.question.split("\n")[0].slice(0, 60)), h("td", {}, badge(q.decision || q.state)),
          h("td", { class: "muted" }, q.by || ""))))) : h("p", { class: "muted" }, "None yet."))),
    card("Workers", workers.length ? h("table", { id: "workers" }, h("thead", {}, h("tr", {},
      ["Worker", "Task", "Mode", "Status", "Tests", "Cost", ""].map((x) => h("th", {}, x)))), h("tbody", {}, workers))
      : h("p", { class: "muted" }, "No worker yet."), logBox),
    h("div", { class: "grid" },
      card("Review verdicts", reviews(state)),
      card("Merged tasks", merged.length ? h("div", {}, merged.map((id) => h("button", { "data-diff": id, onclick: async () => {
        diffBox.hidden = false;
        try { diffBox.textContent = await api("/api/projects/" + encodeURIComponent(p.key) + "/diff?task=" + encodeURIComponent(id)); }
        catch (e) { diffBox.textContent = e.message; }
      } }, "diff of " + id)), diffBox) : h("p", { class: "muted" }, "Nothing merged yet."))),
    h("div", { class: "grid" },
      card("Cost over time", lineChart("cost-time", charts.over_time)),
      card("Cost by role", barChart("cost-role", charts.by_role, (r) => r.role, (r) => r.cost_usd || r.tokens, (v) => v < 1 ? usd(v) : num(v))),
      card("Cost by model", barChart("cost-model", charts.by_model, (r) => r.model, (r) => r.cost_usd || r.tokens, (v) => v < 1 ? usd(v) : num(v)))));
  refresh(() => { if (!S.logs.some((es) => es.readyState !== 2)) viewProject(key); else refresh(() => viewProject(key), 3000); }, 3000);
}

/* --- models and budgets --- */

async function viewModels() {
  let m;
  try { m = await api("/api/models"); } catch (e) { return setView("models", errorBox(e)); }
  const cfg = m.config || {};
  const models = Object.keys(cfg.models || {});
  const out = h("p", { class: "err", id: "models-result" });
  const change = async (kind, name, value, tryCall) => {
    out.className = "err";
    out.textContent = "checking…";
    try {
      const r = await api("/api/models", { method: "POST", body: { kind: kind, name: name, value: value,
        expect_version: m.version, try: !!tryCall } });
      out.className = "note";
      out.textContent = "Stored as version " + r.version + ". " + (r.notes || "");
      setTimeout(viewModels, 1200);
    } catch (e) { out.textContent = "Refused: " + e.message; }
  };
  const roleRows = Object.entries(cfg.roles || {}).map(([role, chain]) => {
    const sel = h("select", { "data-role": role }, models.map((x) => h("option", { value: x, selected: chain[0] === x }, x)));
    return h("tr", { "data-role-row": role }, h("td", {}, role), h("td", {}, chain.join(" → ")),
      h("td", {}, sel, " ", h("button", { class: "primary", "data-set-role": role,
        onclick: () => change("role", role, [sel.value].concat(chain.filter((x) => x !== sel.value))) }, "Use first")));
  });
  const newRole = h("input", { placeholder: "role (architect, …)", id: "new-role" });
  const newRoleModel = h("select", { id: "new-role-model" }, models.map((x) => h("option", { value: x }, x)));
  const modelRows = Object.entries(cfg.models || {}).map(([name, spec]) => h("tr", {},
    h("td", {}, name), h("td", {}, spec.model || name), h("td", {}, spec.endpoint), h("td", {}, spec.provider || "generic"),
    h("td", { class: "num" }, num(spec.context)), h("td", { class: "num" }, (spec.price_in || 0) + " / " + (spec.price_out || 0)),
    h("td", {}, [spec.temperature !== undefined ? "temperature " + spec.temperature : null,
      spec.reasoning_effort ? "reasoning " + spec.reasoning_effort : null].filter(Boolean).join(", "))));
  const epRows = Object.entries(cfg.endpoints || {}).map(([name, e]) => h("tr", {},
    h("td", {}, name), h("td", {}, e.base_url), h("td", { class: "num" }, e.slots),
    h("td", {}, e.api_key_secret ? "secret " + e.api_key_secret : e.api_key_env ? "$" + e.api_key_env : "none")));
  const editKind = h("select", { id: "edit-kind" }, ["model", "endpoint"].map((k) => h("option", { value: k }, k)));
  const editName = h("input", { id: "edit-name", placeholder: "name" });
  const editJson = h("textarea", { id: "edit-json", placeholder: '{"endpoint": "local", "model": "qwen2.5-coder", "provider": "generic"}' });
  const editTry = h("input", { type: "checkbox", id: "edit-try" });
  const fill = () => {
    const sec = editKind.value === "model" ? cfg.models : cfg.endpoints;
    if (sec && sec[editName.value]) editJson.value = JSON.stringify(sec[editName.value], null, 2);
  };
  editName.addEventListener("change", fill);
  const providers = Object.entries(m.providers || {}).map(([n, q]) => h("tr", {},
    h("td", {}, n), h("td", {}, q.max_tokens_field || "(endpoint's)"), h("td", {}, q.temperature + " ≤ " + q.temperature_max),
    h("td", {}, q.top_p), h("td", {}, q.stop), h("td", {}, q.reasoning), h("td", {}, (q.efforts || []).join(", ") || "any")));
  const audit = (m.audit || []).map((a) => h("tr", {},
    h("td", { class: "muted" }, a.at), h("td", {}, a.actor), h("td", {}, a.action + " " + a.kind + " " + a.name),
    h("td", {}, h("code", { title: JSON.stringify(a.old) + " → " + JSON.stringify(a.new) },
      short(a.old) + " → " + short(a.new)))));
  const prompts = (m.prompts || []).map((p) => h("tr", {}, h("td", {}, p.name),
    h("td", {}, p.overridden ? badge("stored") : h("span", { class: "muted" }, "built-in")),
    h("td", {}, h("button", { onclick: () => editPrompt(p.name) }, "Edit"))));
  setView("models", h("h1", {}, "Models"),
    h("p", { class: "muted", id: "models-version" }, m.stored ? "Stored configuration, version " + m.version
      : "Nothing stored yet: running processes use their file or environment (shown). The first change stores it."),
    out,
    card("Roles → models (cheapest first)", h("table", { id: "roles" }, h("tbody", {}, roleRows)),
      h("div", { class: "row" }, newRole, newRoleModel, h("button", { onclick: () => change("role", newRole.value, [newRoleModel.value]) }, "Add role"))),
    card("Models", h("table", { id: "models" }, h("thead", {}, h("tr", {}, ["Name", "Id", "Endpoint", "Provider", "Context", "$ in / out per 1M", "Parameters"].map((x) => h("th", {}, x)))), h("tbody", {}, modelRows))),
    card("Endpoints", h("table", { id: "endpoints" }, h("tbody", {}, epRows))),
    card("Change a model or endpoint", h("div", { class: "row" }, editKind, editName, h("button", { onclick: fill }, "Load")),
      editJson, h("div", { class: "row" }, h("label", {}, editTry, " make a test call first"),
        h("button", { class: "primary", id: "edit-save", onclick: () => {
          let v; try { v = JSON.parse(editJson.value); } catch (e) { out.textContent = "Not JSON: " + e.message; return; }
          change(editKind.value, editName.value, v, editTry.checked);
        } }, "Check and store"),
        h("button", { class: "danger", onclick: () => change(editKind.value, editName.value, null) }, "Remove"))),
    card("Providers and their quirks", h("table", { id: "providers" }, h("thead", {}, h("tr", {}, ["Provider", "Token limit field", "Temperature", "top_p", "stop", "Reasoning", "Efforts"].map((x) => h("th", {}, x)))), h("tbody", {}, providers))),
    card("Prompt templates", h("table", { id: "prompts" }, h("tbody", {}, prompts)), h("div", { id: "prompt-editor" })),
    card("Audit", h("table", { id: "audit" }, h("tbody", {}, audit.length ? audit : h("tr", {}, h("td", { class: "muted" }, "No change yet."))))));
}

async function editPrompt(name) {
  const box = document.getElementById("prompt-editor");
  let p;
  try { p = await api("/api/prompts?name=" + encodeURIComponent(name)); } catch (e) { box.replaceChildren(errorBox(e)); return; }
  const ta = h("textarea", {}, p.body || p.builtin);
  const msg = h("p", { class: "err" });
  const save = async (body) => {
    try { await api("/api/prompts", { method: "POST", body: { name: name, body: body } }); msg.className = "note"; msg.textContent = "Stored."; }
    catch (e) { msg.className = "err"; msg.textContent = e.message; }
  };
  box.replaceChildren(h("h2", {}, name), h("p", { class: "muted" }, "Placeholders it fills: " + (p.placeholders || "none")), ta,
    h("div", { class: "row" }, h("button", { class: "primary", onclick: () => save(ta.value) }, "Store"),
      p.overridden ? h("button", { onclick: () => save(null) }, "Back to the built-in one") : null), msg);
}

async function viewBudgets() {
  let b;
  try { b = await api("/api/budgets"); } catch (e) { return setView("budgets", errorBox(e)); }
  const msg = h("p", { class: "err", id: "budget-result" });
  const kind = h("select", { id: "budget-kind" }, ["project", "user"].map((k) => h("option", { value: k }, k)));
  const scope = h("input", { id: "budget-scope", placeholder: "tg:42:1 or a user" });
  const limit = h("input", { id: "budget-limit", type: "number", step: "0.01", min: "0", placeholder: "USD" });
  const per = h("select", { id: "budget-per" }, ["total", "day", "week", "month"].map((k) => h("option", { value: k }, k)));
  const send = async (body) => {
    try { await api("/api/budgets", { method: "POST", body: body }); msg.className = "note"; msg.textContent = "Stored."; setTimeout(viewBudgets, 800); }
    catch (e) { msg.className = "err"; msg.textContent = e.message; }
  };
  const rows = b.map((x) => h("tr", { "data-budget": x.kind + ":" + x.scope }, h("td", {}, x.kind), h("td", {}, x.scope), h("td", {}, x.period),
    h("td", { class: "num" }, usd(x.limit_usd)), h("td", { class: "num" }, usd(x.spent_usd)), h("td", { class: "num" }, usd(x.reserved_usd)),
    h("td", {}, h("button", { class: "danger", onclick: () => send({ kind: x.kind, scope: x.scope, remove: true }) }, "Remove"))));
  setView("budgets", h("h1", {}, "Budgets"),
    card(null, h("table", { id: "budgets" }, h("thead", {}, h("tr", {}, ["Kind", "Scope", "Per", "Limit", "Spent", "Reserved", ""].map((x) => h("th", {}, x)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No budget: nothing is limited."))))),
    card("Set a budget", h("div", { class: "row" }, kind, scope, limit, per,
      h("button", { class: "primary", id: "budget-save", onclick: () => send({ kind: kind.value, scope: scope.value, limit: Number(limit.value), period: per.value }) }, "Store")), msg));
}

/* --- the engine --- */

async function viewEngine() {
  let st;
  try { st = await api("/api/status"); } catch (e) { return setView("engine", errorBox(e)); }
  const runs = st.runs || {};
  const states = ["queued", "running", "waiting", "done", "failed", "cancelled"];
  const ob = st.outbox || {};
  setView("engine", h("h1", {}, "Engine"),
    h("div", { class: "grid" },
      card("Runs by state", barChart("runs-chart", states.map((s) => ({ s: s, n: runs[s] || 0 })), (r) => r.s, (r) => r.n, (v) => num(v))),
      card("Outbox", h("div", { class: "kv", id: "outbox" }, h("span", {}, "pending"), h("span", {}, num(ob.pending)),
        h("span", {}, "dead"), h("span", {}, num(ob.dead)))),
      card("Live engines", h("table", { id: "engines" }, h("tbody", {}, (st.engines || []).map((e) => h("tr", {},
        h("td", {}, e.id), h("td", {}, badge(e.alive ? "ok" : "failed")), h("td", { class: "num" }, (e.runs_held || 0) + " runs held"))))))),
    card("Processes and their health", Array.isArray(st.health) && st.health.length ? h("table", { id: "health" }, h("tbody", {},
      st.health.map((p) => h("tr", {}, h("td", {}, p.role || ""), h("td", {}, p.process || ""),
        h("td", {}, badge(p.alive ? (p.worst || "ok") : "gone")),
        h("td", { class: "muted" }, Object.entries(p.parts || {}).filter(([, v]) => v.state !== "ok")
          .map(([k, v]) => k + ": " + v.state + (v.reason ? " (" + v.reason + ")" : "")).join("; ")))))) :
      h("p", { class: "muted" }, "No process publishes its health.")),
    card("Recent failures", (st.recent_failures || []).length ? h("table", { id: "failures" }, h("tbody", {}, st.recent_failures.map((f) =>
      h("tr", {}, h("td", {}, "run " + f.run), h("td", {}, f.thread), h("td", {}, f.node || ""), h("td", {}, f.error || "")))))
      : h("p", { class: "muted" }, "None.")),
    card("Model slots", h("table", { id: "schedulers" }, h("tbody", {}, ((st.llm && st.llm.schedulers) || []).map((x) =>
      h("tr", {}, h("td", {}, x.endpoint), h("td", { class: "num" }, x.in_flight + " / " + x.slots + " in flight"),
        h("td", { class: "num" }, x.queued + " queued")))))));
  refresh(viewEngine, 4000);
}

start();
