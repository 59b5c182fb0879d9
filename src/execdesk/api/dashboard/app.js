/* execdesk dashboard: plain JS, no build step. Reads /api/ with the token kept in sessionStorage; the server is the
 * authority on every right (buttons are only disabled as a courtesy, from /api/whoami's `may`). Nothing here puts
 * data into innerHTML: every text goes through textContent. */
"use strict";

(() => {
  const TOKEN_KEY = "execdesk.token";
  const FINAL = new Set(["applied", "already_applied", "refused", "invalid", "failed"]);
  const REFRESH_KINDS = new Set([
    "deployment.created", "deployment.state_changed", "trading_state.changed", "lead.gate",
    "lead.approval_requested", "lead.approval_decided", "lead.rearmed", "risk.ladder_stepped", "order.filled",
    "equity.snapshot", "command.received", "command.refused", "run.completed", "breach.confirmed",
  ]);
  const MAX_ALERTS = 300;

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const state = {
    token: null, who: null, may: new Set(), status: null, portfolio: null, gates: [], selected: null,
    lastSeq: 0, stream: null, refreshTimer: null, charts: {}, fallbackTimer: null,
  };

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  // ------------------------------------------------------------------------------------------------ helpers
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k === "title" || k === "type" || k === "role" || k.startsWith("aria-")) {
        node.setAttribute(k, v === true ? "" : String(v));
      } else node[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const num = (v) => (v === null || v === undefined || v === "" ? NaN : Number(v));
  function money(v) {
    const n = num(v);
    return Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) : "–";
  }
  function pct(v, digits = 2) {
    const n = num(v);
    return Number.isFinite(n) ? `${(n * 100).toFixed(digits)}%` : "–";
  }
  function when(t) {
    if (t === null || t === undefined) return "–";
    const d = new Date(Number(t) * 1000);
    return Number.isNaN(d.getTime()) ? String(t) : `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }
  function detailText(body, status) {
    if (!body) return `HTTP ${status}`;
    const d = body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) {
      return d.map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".") || "request"}: ${e.msg}`).join("; ");
    }
    return JSON.stringify(body);
  }

  // ------------------------------------------------------------------------------------------------ messages
  let messageTimer = null;
  function showMessage(text, kind = "info") {
    const box = $("message");
    box.textContent = text;
    box.className = `message ${kind}`;
    box.dataset.kind = kind;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.hidden = false;
    clearTimeout(messageTimer);
    if (kind === "ok" || kind === "info") messageTimer = setTimeout(() => { if (box.dataset.kind !== "error") box.hidden = true; }, 20000);
  }

  // ------------------------------------------------------------------------------------------------ API
  async function api(path, options = {}) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const res = await fetch(path, {
      method: options.method || "GET", headers, body, cache: "no-store", credentials: "omit", signal: options.signal,
    });
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = { detail: text }; }
    }
    if (res.status === 401 && state.token) {
      signOut(`Signed out: ${detailText(data, 401)}`);
    }
    if (!res.ok) throw new ApiError(res.status, detailText(data, res.status));
    return data;
  }

  // ------------------------------------------------------------------------------------------------ sign in/out
  async function signIn(token, quiet = false) {
    state.token = token;
    let who;
    try {
      who = await api("/api/whoami");
    } catch (e) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin();
      showMessage(`Sign-in failed (${e.status || "network"}): ${e.message}`, "error");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    state.who = who;
    state.may = new Set(who.may || []);
    $("whoami").textContent = "";
    $("whoami").append(el("strong", { text: who.name }), " · ", el("span", { class: "role", "data-testid": "role", text: who.role }));
    $("whoami").title = `may: ${[...state.may].join(", ")}`;
    $("whoami").dataset.role = who.role;
    $("whoami").hidden = false;
    $("logout-button").hidden = false;
    $("login").hidden = true;
    $("desk").hidden = false;
    $("token-input").value = "";
    guardStatic();
    if (!quiet) showMessage(`Signed in as ${who.name} (${who.role})`, "ok");
    await refreshAll();
    await loadAlerts();
    startStream();
    clearInterval(state.fallbackTimer);
    state.fallbackTimer = setInterval(() => { if (state.token) refreshAll(); }, 20000);
  }

  function signOut(message) {
    stopStream();
    clearInterval(state.fallbackTimer);
    state.token = null;
    state.who = null;
    state.may = new Set();
    state.selected = null;
    state.lastSeq = 0;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const key of Object.keys(state.charts)) destroyChart(key);
    $("alerts").textContent = "";
    $("outcomes").textContent = "";
    $("outcomes").append(el("li", { class: "empty", text: "None yet." }));
    $("deployments").textContent = "";
    $("decisions").textContent = "";
    $("detail").hidden = true;
    showLogin();
    if (message) showMessage(message, message.startsWith("Signed out:") ? "error" : "info");
  }

  function showLogin() {
    $("login").hidden = false;
    $("desk").hidden = true;
    $("whoami").hidden = true;
    $("logout-button").hidden = true;
    $("trading-state").hidden = true;
    setStream("off");
    $("token-input").focus();
  }

  // ------------------------------------------------------------------------------------------------ rights
  function guard(button, right, blockedWhy) {
    button.dataset.right = right;
    if (!state.may.has(right)) {
      button.disabled = true;
      button.title = `${state.who ? `${state.who.name} (${state.who.role})` : "you"} may not ${right}`;
      button.dataset.denied = "role";
    } else if (blockedWhy) {
      button.disabled = true;
      button.title = blockedWhy;
      button.dataset.denied = "state";
    } else {
      button.disabled = false;
      button.title = "";
      delete button.dataset.denied;
    }
    return button;
  }

  function guardStatic() {
    guard($("rearm-button"), "rearm");
    guard($("kill-button"), "kill");
    guard($("detail-rearm"), "rearm");
    const missing = ["approve", "deny", "pause", "resume", "kill", "rearm"].filter((r) => !state.may.has(r));
    $("controls-hint").textContent = missing.length
      ? `Your role (${state.who.role}) may not: ${missing.join(", ")}. The server decides; refusals show above.`
      : "";
  }

  // ------------------------------------------------------------------------------------------------ reads
  /** Read status, portfolio and gates (and the open detail) and draw them. One read at a time; a call made while
   * one runs gets a fresh read that starts after it (so a command's effect is never hidden by an older read). */
  let refreshRunning = null;
  let refreshQueued = null;
  function refreshAll() {
    if (!state.token) return Promise.resolve();
    if (refreshQueued) return refreshQueued;
    const start = () => {
      refreshRunning = readDesk().finally(() => { refreshRunning = null; });
      return refreshRunning;
    };
    if (!refreshRunning) return start();
    refreshQueued = refreshRunning.then(() => {
      refreshQueued = null;
      return start();
    });
    return refreshQueued;
  }

  async function readDesk() {
    if (!state.token) return;
    try {
      const [status, portfolio, gates] = await Promise.all([api("/api/status"), api("/api/portfolio"), api("/api/gates")]);
      if (!state.token) return;
      state.status = status;
      state.portfolio = portfolio;
      state.gates = gates.gates || [];
      renderStatus();
      renderPortfolio();
      if (state.selected) await loadDetail(state.selected, false);
    } catch (e) {
      if (e.status !== 401) showMessage(`Could not read the desk: ${e.message}`, "error");
    }
  }

  function scheduleRefresh() {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = null;
      refreshAll();
    }, 700);
  }

  // ------------------------------------------------------------------------------------------------ status
  function renderStatus() {
    const s = state.status;
    const badge = $("trading-state");
    badge.textContent = s.trading_state;
    badge.className = `state-badge state-${s.trading_state}`;
    badge.dataset.state = s.trading_state;
    badge.hidden = false;

    const banner = $("halt-banner");
    if (s.trading_state !== "ACTIVE") {
      banner.hidden = false;
      banner.className = `banner banner-${s.trading_state}`;
      banner.dataset.state = s.trading_state;
      $("halt-title").textContent = s.trading_state === "HALTED"
        ? "HALTED — the desk does not trade until it is re-armed"
        : `${s.trading_state} — only orders that reduce a position`;
      const parts = [`reason: ${s.trading_reason || "–"}`];
      if (s.ladder_step) parts.push(`ladder step: ${s.ladder_step}`);
      $("halt-reason").textContent = parts.join(" · ");
    } else {
      banner.hidden = true;
    }
    renderDeployments(s.deployments || []);
    renderDecisions(s.waiting_for_a_human || []);
  }

  function renderDeployments(deps) {
    const body = $("deployments");
    body.textContent = "";
    if (!deps.length) {
      body.append(el("tr", { class: "empty" }, el("td", { colSpan: 10, text: "No deployments." })));
      return;
    }
    for (const d of deps) {
      const pnl = num(d.realized_pnl_net);
      const pause = guard(el("button", { type: "button", "data-action": "pause", "data-testid": `pause-${d.id}`, text: "Pause" }), "pause",
        ["live", "scheduled"].includes(d.lifecycle) ? null : `only a live or scheduled deployment pauses (this one is ${d.lifecycle})`);
      const resume = guard(el("button", { type: "button", "data-action": "resume", "data-testid": `resume-${d.id}`, text: "Resume" }), "resume",
        d.lifecycle === "paused" ? null : `only a paused deployment resumes (this one is ${d.lifecycle})`);
      const row = el("tr", {
        "data-testid": "deployment-row", "data-deployment": d.id, "data-state": d.state, "data-lifecycle": d.lifecycle,
        class: state.selected === d.id ? "selected" : null,
      },
      el("td", {}, el("button", { type: "button", class: "link", "data-action": "details", "data-testid": `details-${d.id}`, text: d.id })),
      el("td", { text: `${d.name || ""}${d.version ? ` v${d.version}` : ""}` }),
      el("td", { text: d.venue || "–" }),
      el("td", { "data-field": "state" }, el("span", { class: `pill state-${d.state}`, text: d.state }),
        d.state_reason ? el("div", { class: "sub", text: d.state_reason }) : null),
      el("td", { "data-field": "lifecycle", text: d.lifecycle || "–" }),
      el("td", { "data-field": "health" }, el("span", { class: `pill health-${d.health}`, text: d.health || "–" })),
      el("td", { "data-field": "trades", class: "num" }, String(d.trades ?? "–"),
        d.wins !== undefined ? el("div", { class: "sub", text: `${d.wins} won` }) : null),
      el("td", { "data-field": "pnl", class: `num ${pnl < 0 ? "neg" : pnl > 0 ? "pos" : ""}`, text: money(d.realized_pnl_net) }),
      el("td", { "data-field": "allocation", class: "num", text: pct(d.allocation, 1) }),
      el("td", { class: "actions" }, pause, resume));
      body.append(row);
    }
  }

  function renderDecisions(waiting) {
    const list = $("decisions");
    list.textContent = "";
    $("decisions-count").textContent = waiting.length ? `(${waiting.length})` : "";
    if (!waiting.length) {
      list.append(el("li", { class: "empty", "data-testid": "no-decisions", text: "Nothing is waiting." }));
      return;
    }
    for (const w of waiting) {
      list.append(el("li", { "data-testid": "decision", "data-request-id": w.request_id, "data-subject": w.subject },
        el("div", { class: "question", text: w.question || w.subject }),
        el("div", { class: "sub", text: `${w.subject} · ${w.request_id} · ${when(w.time)}` }),
        el("div", { class: "actions" },
          guard(el("button", { type: "button", "data-action": "approve", "data-testid": `approve-${w.request_id}`, class: "primary", text: "Approve" }), "approve"),
          guard(el("button", { type: "button", "data-action": "deny", "data-testid": `deny-${w.request_id}`, text: "Deny" }), "deny"))));
    }
  }

  // ------------------------------------------------------------------------------------------------ portfolio
  function renderPortfolio() {
    const p = state.portfolio;
    const stats = $("portfolio-stats");
    stats.textContent = "";
    const add = (label, value, testid, cls) => stats.append(el("div", { class: "stat" },
      el("dt", { text: label }), el("dd", { "data-testid": testid, class: cls || null, text: value })));
    add("Equity", `${money(p.equity)} ${p.quote || ""}`, "equity");
    add("Peak", money(p.peak), "peak");
    add("Drawdown", pct(p.drawdown), "drawdown", num(p.drawdown) > 0 ? "neg" : null);
    add("Max drawdown", pct(p.max_drawdown), "max-drawdown");
    add("Exposure", money(p.exposure), "exposure");
    add("Cash", money(p.cash), "cash");
    add("Open positions", String(p.open_positions ?? "–"), "open-positions");
    add("Last bar", when(p.last_bar), "last-bar");

    const curve = p.curve || [];
    const t = curve.map((c) => c[0]);
    plot("portfolio", $("portfolio-chart"), {
      height: 220, cursor: { sync: { key: "portfolio" } }, legend: { show: true },
      series: [{}, { label: "Equity", stroke: "#2563eb", fill: "rgba(37,99,235,0.08)", width: 1.5, value: (u, v) => money(v) }],
      axes: [{}, { size: 80, values: (u, vals) => vals.map((v) => v.toLocaleString("en-US")) }],
    }, [t, curve.map((c) => c[1])]);
    plot("drawdown", $("drawdown-chart"), {
      height: 130, cursor: { sync: { key: "portfolio" } },
      series: [{}, { label: "Drawdown", stroke: "#dc2626", fill: "rgba(220,38,38,0.15)", width: 1, value: (u, v) => (v === null ? "–" : `${v.toFixed(2)}%`) }],
      axes: [{}, { size: 80, values: (u, vals) => vals.map((v) => `${v}%`) }],
    }, [t, curve.map((c) => -c[2] * 100)]);
  }

  // ------------------------------------------------------------------------------------------------ charts
  function destroyChart(key) {
    const c = state.charts[key];
    if (c) {
      c.observer.disconnect();
      c.plot.destroy();
      delete state.charts[key];
    }
  }

  function plot(key, container, opts, data) {
    destroyChart(key);
    container.textContent = "";
    if (typeof window.uPlot !== "function") {
      container.append(el("p", { class: "sub", text: "charts unavailable (uPlot did not load)" }));
      return;
    }
    if (!data[0].length) {
      container.append(el("p", { class: "sub empty-chart", text: "no data yet" }));
      return;
    }
    const width = Math.max(container.clientWidth, 280);
    const u = new window.uPlot({ width, ...opts }, data, container);
    const observer = new ResizeObserver(() => {
      const w = Math.max(container.clientWidth, 280);
      if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height: opts.height });
    });
    observer.observe(container);
    state.charts[key] = { plot: u, observer };
  }

  // ------------------------------------------------------------------------------------------------ detail
  async function loadDetail(id, scroll = true) {
    const panel = $("detail");
    let d;
    try {
      d = await api(`/api/deployments/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status !== 401) showMessage(`${id}: ${e.status} ${e.message}`, "error");
      return;
    }
    if (state.selected !== id) return;
    panel.hidden = false;
    panel.dataset.deployment = id;
    $("detail-title").textContent = `${d.id} — ${d.name || ""} v${d.version ?? "?"}`;
    for (const row of document.querySelectorAll("#deployments tr[data-deployment]")) {
      row.classList.toggle("selected", row.dataset.deployment === id);
    }
    const stats = $("detail-stats");
    stats.textContent = "";
    const add = (label, value, field) => stats.append(el("div", { class: "stat" },
      el("dt", { text: label }), el("dd", { "data-field": field, text: value })));
    add("State", `${d.state}${d.state_reason ? ` (${d.state_reason})` : ""}`, "state");
    add("Lifecycle", d.lifecycle || "–", "lifecycle");
    add("Health", d.health || "–", "health");
    add("Lead", d.lead_decision || "–", "lead_decision");
    add("Venue", d.venue || "–", "venue");
    add("Pairs", Array.isArray(d.pairs) ? d.pairs.join(", ") : "–", "pairs");
    add("Timeframe", d.timeframe || "–", "timeframe");
    add("Capital", money(d.capital), "capital");
    add("Trades", `${d.trades ?? "–"} (${d.wins ?? "–"} won)`, "trades");
    add("Realised P&L, net of fees", money(d.realized_pnl_net), "pnl");
    add("Fees", money(d.fees), "fees");
    add("Allocation", `${pct(d.allocation, 1)} (in use ${pct(d.allocation_in_use, 0)})`, "allocation");

    const cmp = d.comparison || { live: [], backtest: [] };
    const live = cmp.live || [];
    const back = cmp.backtest || [];
    const n = Math.max(live.length, back.length);
    const xs = Array.from({ length: n }, (_, i) => i);
    const asPct = (path) => xs.map((i) => (i < path.length ? (path[i] - 1) * 100 : null));
    plot("comparison", $("comparison-chart"), {
      height: 220, scales: { x: { time: false } },
      series: [
        { label: "Trade", value: (u, v) => (v === null ? "–" : `#${v}`) },
        { label: `Live (${cmp.live_trades ?? live.length - 1} trades)`, stroke: "#2563eb", width: 2, value: (u, v) => (v === null ? "–" : `${v.toFixed(2)}%`) },
        { label: `Backtest (${cmp.backtest_trades ?? back.length - 1} trades)`, stroke: "#6b7280", width: 1.5, dash: [6, 4], value: (u, v) => (v === null ? "–" : `${v.toFixed(2)}%`) },
      ],
      axes: [{ label: "trades" }, { size: 60, values: (u, vals) => vals.map((v) => `${v}%`) }],
    }, [xs, asPct(live), asPct(back)]);

    const curve = d.curve || [];
    const ts = curve.map((c) => c[0]);
    plot("deployment", $("deployment-chart"), {
      height: 170, cursor: { sync: { key: "deployment" } },
      series: [{}, { label: "Equity", stroke: "#2563eb", fill: "rgba(37,99,235,0.08)", width: 1.5, value: (u, v) => money(v) }],
      axes: [{}, { size: 70, values: (u, vals) => vals.map((v) => v.toLocaleString("en-US")) }],
    }, [ts, curve.map((c) => c[1])]);
    plot("deployment-drawdown", $("deployment-drawdown-chart"), {
      height: 110, cursor: { sync: { key: "deployment" } },
      series: [{}, { label: "Drawdown", stroke: "#dc2626", fill: "rgba(220,38,38,0.15)", width: 1, value: (u, v) => (v === null ? "–" : `${v.toFixed(2)}%`) }],
      axes: [{}, { size: 70, values: (u, vals) => vals.map((v) => `${v}%`) }],
    }, [ts, curve.map((c) => -c[2] * 100)]);

    renderTimeline(id);
    if (scroll) panel.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  function gateOf(e) {
    return e.deployment_id || (e.payload && e.payload.deployment_id) || null;
  }

  function renderTimeline(id) {
    const list = $("gate-timeline");
    list.textContent = "";
    const events = state.gates.filter((e) => gateOf(e) === id);
    if (!events.length) {
      list.append(el("li", { class: "empty", text: "No gate results recorded for this deployment." }));
      return;
    }
    for (const e of events) {
      const p = e.payload || {};
      let gate;
      let outcome;
      let reason;
      if (e.kind === "lead.approval_requested") {
        gate = "approval requested";
        outcome = "pending";
        reason = `asked a human${p.intent && p.intent.venue ? ` for ${p.intent.venue}` : ""}`;
      } else if (e.kind === "lead.approval_decided") {
        gate = "approval";
        outcome = p.decision || "decided";
        reason = `${p.decision || "decided"} by ${p.by || "?"}${p.reason ? `: ${p.reason}` : ""}`;
      } else {
        gate = p.gate || e.kind;
        outcome = p.outcome || "";
        reason = p.reason || "";
      }
      list.append(el("li", { "data-testid": "gate", "data-kind": e.kind, "data-gate": gate, "data-outcome": outcome },
        el("time", { text: when(e.time) }),
        el("span", { class: "gate-name", text: gate }),
        el("span", { class: `pill outcome-${outcome}`, text: outcome }),
        el("span", { class: "gate-reason", text: reason }),
        p.by ? el("span", { class: "sub", text: ` · by ${p.by}` }) : null));
    }
  }

  function selectDeployment(id) {
    state.selected = id;
    loadDetail(id, true);
  }

  // ------------------------------------------------------------------------------------------------ alerts
  function alertItem(a) {
    return el("li", { "data-testid": "alert", "data-seq": a.seq, "data-level": a.level, class: `alert level-${a.level}` },
      el("span", { class: `pill level-${a.level}`, text: a.level || "?" }),
      el("time", { text: when(a.time) }),
      el("span", { class: "alert-message", text: a.message || a.code || "" }),
      el("span", { class: "sub", text: [a.source, a.scope, a.code].filter(Boolean).join(" · ") }));
  }

  async function loadAlerts() {
    const list = $("alerts");
    let after = 0;
    let kept = [];
    let last = 0;
    try {
      for (let pages = 0; pages < 1000; pages += 1) {
        const page = await api(`/api/alerts?after=${after}&limit=1000`);
        kept = kept.concat(page.alerts || []).slice(-MAX_ALERTS);
        last = page.last_seq || last;
        if (page.next_after === null || page.next_after === undefined) break;
        after = page.next_after;
      }
    } catch (e) {
      if (e.status !== 401) showMessage(`Could not read the alerts: ${e.message}`, "error");
      return;
    }
    list.textContent = "";
    for (const a of kept.reverse()) list.append(alertItem(a));
    if (!kept.length) list.append(el("li", { class: "empty", "data-testid": "no-alerts", text: "No alerts." }));
    state.lastSeq = Math.max(state.lastSeq, last);
  }

  function addAlert(a) {
    const list = $("alerts");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    if (list.querySelector(`li[data-seq="${Number(a.seq)}"]`)) return;
    list.prepend(alertItem(a));
    while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
  }

  // ------------------------------------------------------------------------------------------------ live stream
  function setStream(mode, detail) {
    const s = $("stream-status");
    s.className = `stream ${mode}`;
    s.dataset.mode = mode;
    s.textContent = `feed: ${mode}`;
    s.title = detail || (mode === "live" ? `live from event ${state.lastSeq}` : "");
  }

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
  }

  function handleBlock(block) {
    let id = null;
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (id !== null && /^\d+$/.test(id)) state.lastSeq = Math.max(state.lastSeq, Number(id));
    if (!data.length) return;
    let event;
    try { event = JSON.parse(data.join("\n")); } catch { return; }
    if (event && typeof event.seq === "number") state.lastSeq = Math.max(state.lastSeq, event.seq);
    $("stream-status").title = `live; last event ${state.lastSeq} (${kind})`;
    if (kind === "alert.raised") addAlert({ seq: event.seq, time: event.time, ...(event.payload || {}) });
    if (REFRESH_KINDS.has(kind)) scheduleRefresh();
  }

  async function startStream() {
    stopStream();
    const ctl = new AbortController();
    state.stream = ctl;
    let backoff = 1000;
    while (!ctl.signal.aborted && state.token) {
      try {
        setStream("connecting");
        const res = await fetch(`/api/stream?after=${state.lastSeq}`, {
          headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream", "Last-Event-ID": String(state.lastSeq) },
          signal: ctl.signal, cache: "no-store", credentials: "omit",
        });
        if (res.status === 401) {
          signOut("Signed out: the live feed refused the token");
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        setStream("live");
        backoff = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let held = "";
          if (buffer.endsWith("\r")) { held = "\r"; buffer = buffer.slice(0, -1); }
          buffer = buffer.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            handleBlock(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
          buffer += held;
        }
        throw new Error("the feed ended");
      } catch (e) {
        if (ctl.signal.aborted) return;
        setStream("reconnecting", `${e.message}; resuming after event ${state.lastSeq}`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 15000);
      }
    }
  }

  // ------------------------------------------------------------------------------------------------ control
  function summary(outcome) {
    if (outcome.error) return outcome.error;
    const r = outcome.result || {};
    const bits = [];
    if (r.status) bits.push(`status ${r.status}`);
    if (r.deployment) bits.push(r.deployment);
    if (r.state) bits.push(`state ${r.state}`);
    if (r.decision) bits.push(r.decision);
    if (r.queued) bits.push("queued for the running desk's next bar");
    if (r.note) bits.push(r.note);
    return bits.join(", ");
  }

  function renderOutcome(item, label, outcome, recorded) {
    item.dataset.status = outcome.status;
    item.className = `outcome status-${outcome.status}`;
    item.textContent = "";
    const extra = summary(outcome);
    const parts = [
      el("span", { class: `pill status-${outcome.status}`, "data-testid": "outcome-status", text: outcome.status }),
      el("span", { class: "outcome-label", text: label }),
      recorded ? el("span", { class: `pill outcome-${recorded.decision}`, "data-testid": "outcome-decision", text: `${recorded.decision} by ${recorded.by}` }) : null,
      extra ? el("span", { class: "outcome-detail", "data-testid": "outcome-detail", text: extra }) : null,
      el("span", { class: "sub", text: outcome.command_id }),
    ];
    item.append(...parts.filter(Boolean));
  }

  /** The decision the ledger recorded for ``requestId`` (an approval decided), if any: an approve can be recorded
   * and the deployment then refused by a later gate (the command's outcome is that refusal). */
  function recordedDecision(requestId) {
    const found = state.gates.filter((e) => e.kind === "lead.approval_decided" && e.payload && e.payload.request_id === requestId);
    return found.length ? found[found.length - 1].payload : null;
  }

  async function control(action, body, label) {
    let accepted;
    try {
      accepted = await api(`/api/commands/${action}`, { method: "POST", json: body });
    } catch (e) {
      if (e.status !== 401) showMessage(`${label}: refused (${e.status || "network"}): ${e.message}`, "error");
      return null;
    }
    const item = el("li", { "data-testid": "outcome", "data-command-id": accepted.command_id, "data-action": action });
    for (const empty of $("outcomes").querySelectorAll(".empty")) empty.remove();
    $("outcomes").prepend(item);
    while ($("outcomes").children.length > 20) $("outcomes").lastElementChild.remove();
    renderOutcome(item, label, accepted);
    showMessage(`${label}: accepted; waiting for its outcome…`, "info");
    const started = Date.now();
    let outcome = accepted;
    while (state.token) {
      await sleep(outcome.status === "queued" ? 2000 : 400);
      try {
        outcome = await api(accepted.outcome);
      } catch (e) {
        if (e.status === 401) return null;
        if (Date.now() - started > 600000) break;
        continue;
      }
      renderOutcome(item, label, outcome);
      if (FINAL.has(outcome.status) || Date.now() - started > 600000) break;
    }
    await refreshAll();
    const extra = summary(outcome);
    const ok = outcome.status === "applied" || outcome.status === "already_applied" || outcome.status === "queued";
    const code = outcome.http ? ` (${outcome.http})` : "";
    const recorded = body.request_id ? recordedDecision(body.request_id) : null;
    if (recorded) renderOutcome(item, label, outcome, recorded);
    const decided = recorded ? ` [recorded: ${recorded.decision} by ${recorded.by}]` : "";
    showMessage(`${label}: ${outcome.status}${ok ? "" : code}${decided}${extra ? ` — ${extra}` : ""}`, ok ? "ok" : "error");
    return outcome;
  }

  // reason and kill dialogs ----------------------------------------------------------------------------------
  function askReason(title, text) {
    const dialog = $("reason-dialog");
    $("reason-title").textContent = title;
    $("reason-text").textContent = text || "";
    $("reason-input").value = "";
    return new Promise((resolve) => {
      const done = (value) => {
        $("reason-form").removeEventListener("submit", onSubmit);
        $("reason-cancel").removeEventListener("click", onCancel);
        dialog.removeEventListener("cancel", onCancel);
        if (dialog.open) dialog.close();
        resolve(value);
      };
      const onSubmit = (ev) => {
        ev.preventDefault();
        const value = $("reason-input").value.trim();
        if (!value) { $("reason-input").focus(); return; }
        done(value);
      };
      const onCancel = (ev) => { ev.preventDefault(); done(null); };
      $("reason-form").addEventListener("submit", onSubmit);
      $("reason-cancel").addEventListener("click", onCancel);
      dialog.addEventListener("cancel", onCancel);
      dialog.showModal();
      $("reason-input").focus();
    });
  }

  async function decide(action, requestId, subject) {
    const reason = await askReason(`${action === "approve" ? "Approve" : "Deny"} ${subject}`, `Decision ${requestId}`);
    if (reason === null) return;
    await control(action, { request_id: requestId, reason }, `${action} ${subject}`);
  }

  async function lifecycle(action, deployment) {
    const reason = await askReason(`${action === "pause" ? "Pause" : "Resume"} ${deployment}`, "");
    if (reason === null) return;
    await control(action, { deployment, reason }, `${action} ${deployment}`);
  }

  async function rearm(deployment) {
    const target = deployment || "the desk";
    const reason = await askReason(`Re-arm ${target}`, "Lifts a HALT or a ladder step.");
    if (reason === null) return;
    const body = deployment ? { reason, deployment } : { reason };
    await control("rearm", body, `rearm ${target}`);
  }

  function openKill() {
    const dialog = $("kill-dialog");
    $("kill-reason").value = "";
    $("kill-confirm-input").value = "";
    $("kill-ok").disabled = true;
    dialog.showModal();
    $("kill-reason").focus();
  }

  function killReady() {
    $("kill-ok").disabled = !($("kill-confirm-input").value === "KILL" && $("kill-reason").value.trim());
  }

  // ------------------------------------------------------------------------------------------------ wiring
  function wire() {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token-input").value.trim();
      if (token) signIn(token);
    });
    $("logout-button").addEventListener("click", () => signOut("Signed out."));
    $("message").addEventListener("click", () => { $("message").hidden = true; });
    $("rearm-button").addEventListener("click", () => rearm(null));
    $("detail-rearm").addEventListener("click", () => { if (state.selected) rearm(state.selected); });
    $("detail-close").addEventListener("click", () => {
      state.selected = null;
      $("detail").hidden = true;
      for (const key of ["comparison", "deployment", "deployment-drawdown"]) destroyChart(key);
      for (const row of document.querySelectorAll("#deployments tr.selected")) row.classList.remove("selected");
    });
    $("kill-button").addEventListener("click", openKill);
    $("kill-confirm-input").addEventListener("input", killReady);
    $("kill-reason").addEventListener("input", killReady);
    $("kill-cancel").addEventListener("click", () => $("kill-dialog").close());
    $("kill-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      if ($("kill-confirm-input").value !== "KILL") return;
      const reason = $("kill-reason").value.trim();
      if (!reason) return;
      $("kill-dialog").close();
      control("kill", { reason }, "kill switch");
    });
    $("deployments").addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-action]");
      if (!button || button.disabled) return;
      const id = button.closest("tr").dataset.deployment;
      if (button.dataset.action === "details") selectDeployment(id);
      else lifecycle(button.dataset.action, id);
    });
    $("decisions").addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-action]");
      if (!button || button.disabled) return;
      const li = button.closest("li");
      decide(button.dataset.action, li.dataset.requestId, li.dataset.subject);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved, true);
    else showLogin();
  });
})();
