// The delivery dashboard: reads the admin API's statistics routes and draws them with uPlot.
// No build step: plain script, uPlot vendored beside it. window.dashboard exposes the charts,
// the last answers and a refresh counter, so a browser test can check what was drawn.
"use strict";

(function () {
  const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  const TOKEN_KEY = "pipeline-dashboard-token";
  const fragment = new URLSearchParams(location.hash.slice(1));
  const state = {
    token: fragment.get("token") || sessionStorage.getItem(TOKEN_KEY) || "",
    subscription: fragment.get("subscription") || "",
    range: fragment.get("range") || "1h",
    refreshS: Math.max(2, Number(fragment.get("refresh")) || 10),
    names: {},
  };
  const dashboard = (window.dashboard = { refreshes: 0, lastError: null, charts: {}, data: {}, palette: PALETTE });
  const $ = (id) => document.getElementById(id);

  if (fragment.has("token")) {
    // Kept for this tab only, and out of the address bar (and of screenshots and history).
    sessionStorage.setItem(TOKEN_KEY, state.token);
    fragment.delete("token");
    history.replaceState(null, "", location.pathname + (fragment.toString() ? "#" + fragment : ""));
  }

  async function api(path, query) {
    const params = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v !== "" && v != null));
    const response = await fetch(path + (params.toString() ? "?" + params : ""), {
      headers: { Authorization: "Bearer " + state.token },
    });
    if (response.status === 401) throw Object.assign(new Error("the API token was refused"), { unauthorized: true });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = body.error || {};
      const reason = error.problem ? (error.field ? error.field + ": " : "") + error.problem : body.error;
      throw new Error(path + " answered " + response.status + ": " + (reason || response.statusText));
    }
    return body;
  }

  async function refresh() {
    const since = "-" + state.range;
    const scope = { from: since, subscription_id: state.subscription };
    const [subscriptions, traffic, summary, last, errors, routing, backlog] = await Promise.all([
      api("/v1/subscriptions?limit=1000"),
      api("/v1/stats/traffic", { ...scope, by: "subscription_id" }),
      api("/v1/stats/summary", { ...scope, by: "subscription_id" }),
      api("/v1/attempts", { subscription_id: state.subscription, limit: 10 }),
      api("/v1/errors", { ...scope, limit: 20 }),
      api("/v1/stats/routing", { from: since }),
      backlogs(),
    ]);
    Object.assign(dashboard.data, { subscriptions, traffic, summary, last, errors, routing, backlog });
    updateNames(subscriptions.data);
    drawCards(summary.rows, routing.totals, backlog.data);
    drawTraffic(traffic);
    drawRouting(routing);
    drawTables(summary.rows, last.attempts, errors);
    drawBacklog(backlog);
  }

  // Asked of Kafka, not of the statistics: when it fails, the rest of the dashboard still shows.
  function backlogs() {
    const asked = state.subscription
      ? api("/v1/subscriptions/" + encodeURIComponent(state.subscription) + "/backlog").then((row) => ({ data: [row] }))
      : api("/v1/backlog", { limit: 1000, pending_only: true });
    return asked.catch((error) => ({ data: [], error: String(error.message || error) }));
  }

  function drawBacklog(backlog) {
    const rows = backlog.data.filter((row) => row.pending).sort((a, b) => b.pending - a.pending);
    fillTable("table-backlog", ["subscription", "pending", "oldest pending", "age"],
      rows.map((row) => [label(row.subscription_id), row.pending, clock(row.oldest_pending_at), age(row.oldest_pending_age_s)]),
      backlog.error ? "backlog unavailable: " + backlog.error : "nothing pending");
  }

  function updateNames(subscriptions) {
    const select = $("subscription");
    const known = new Set(Array.from(select.options, (option) => option.value));
    for (const subscription of subscriptions) {
      state.names[subscription.id] = subscription.name || subscription.id;
      if (!known.has(subscription.id)) select.add(new Option(state.names[subscription.id], subscription.id));
    }
    select.value = state.subscription;
  }

  const label = (key) => state.names[key] || key;
  const stepName = (s) => (s % 3600 === 0 ? s / 3600 + " h" : s / 60 + " min");
  const seconds = (times) => times.map((time) => Date.parse(time) / 1000);
  const sum = (values) => values.reduce((total, value) => total + (value || 0), 0);

  function drawTraffic(traffic) {
    const xs = seconds(traffic.times);
    $("traffic-caption").textContent = "Attempts per " + stepName(traffic.step_s);
    $("errors-caption").textContent = "Failed attempts per " + stepName(traffic.step_s);
    const lines = (metric) => traffic.series.map((entry) => ({ label: label(entry.key), values: entry[metric] }));
    drawChart("traffic", xs, lines("attempts"), "attempts");
    drawChart("errors", xs, lines("failed"), "failed");
    if (state.subscription && traffic.series.length === 1) {
      const entry = traffic.series[0];
      $("latency-caption").textContent = "Latency of " + label(entry.key) + " (ms)";
      drawChart("latency", xs, ["p50_ms", "p95_ms", "p99_ms"].map((p) => ({ label: p.replace("_ms", ""), values: entry[p] })), "ms");
    } else {
      $("latency-caption").textContent = "Latency p95 per subscription (ms)";
      drawChart("latency", xs, lines("p95_ms"), "ms");
    }
  }

  function drawRouting(routing) {
    const lines = routing.series.map((entry) => ({ label: entry.key, values: entry.decisions }));
    drawChart("routing", seconds(routing.times), lines, "events");
  }

  function drawChart(name, xs, lines, unit) {
    const element = $("chart-" + name);
    const data = [xs, ...lines.map((line) => line.values)];
    const labels = lines.map((line) => line.label).join("\u0000");
    const existing = dashboard.charts[name];
    if (existing && existing.labels === labels) {
      existing.setData(data);
      return;
    }
    if (existing) existing.destroy();
    const series = [{}].concat(lines.map((line, index) => ({
      label: line.label, stroke: PALETTE[index % PALETTE.length], width: 2,
      fill: lines.length === 1 ? PALETTE[index % PALETTE.length] + "22" : undefined,
      points: { show: xs.length < 40 },
    })));
    const options = {
      width: Math.max(300, element.clientWidth), height: 230, series,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),  // UTC, as in the tables
      axes: [{}, { label: unit, size: 56 }], scales: { y: { range: (_, min, max) => [0, Math.max(1, max * 1.1)] } },
      legend: { live: false },
    };
    const chart = new uPlot(options, data, element);
    chart.labels = labels;
    dashboard.charts[name] = chart;
  }

  function drawCards(rows, routingTotals, backlog) {
    const attempts = sum(rows.map((row) => row.attempts));
    const failed = sum(rows.map((row) => row.failed));
    const unknown = sum(rows.map((row) => row.unknown || 0));
    const dropped = sum(routingTotals.filter((row) => row.outcome === "dropped").map((row) => row.decisions));
    const cards = [
      ["attempts", attempts], ["succeeded", attempts - failed - unknown], ["failed", failed],
      ["unknown outcome", unknown],
      ["error rate", attempts ? percent(failed / attempts) : "–"],
      ["retried, then delivered", sum(rows.map((row) => row.succeeded_on_retry))],
      ["events dropped by the router", dropped],
      ["tasks pending", sum(backlog.map((row) => row.pending))],
    ];
    $("cards").replaceChildren(...cards.map(([name, value]) => element("div", { className: "card" },
      element("div", { className: "value", textContent: String(value) }),
      element("div", { className: "label", textContent: name }))));
  }

  function drawTables(rows, attempts, errors) {
    fillTable("table-subscriptions", ["subscription", "attempts", "succeeded", "failed", "unknown", "error rate", "p50 ms", "p95 ms", "p99 ms", "statuses"],
      rows.map((row) => [label(row.key), row.attempts, row.succeeded, cell(row.failed, row.failed ? "num bad" : "num"),
        cell(row.unknown || 0, row.unknown ? "num bad" : "num"), percent(row.error_rate), ms(row.p50_ms), ms(row.p95_ms), ms(row.p99_ms), statuses(row.statuses)]));
    fillTable("table-last", ["time", "subscription", "event", "try", "status", "outcome", "ms", "response"],
      attempts.map((a) => [clock(a.started_at), label(a.subscription_id), a.event_type, a.attempt, a.status_code ?? "–",
        cell(a.outcome, a.outcome === "success" ? "good" : "bad"), ms(a.latency_ms), cell(a.response_body || a.error || "", "body")]));
    fillTable("table-reasons", ["outcome", "status", "reason", "attempts", "events", "last seen"],
      errors.reasons.map((r) => [cell(r.outcome, "bad"), r.status_code ?? "–", r.reason, r.attempts, r.events, clock(r.last_seen)]));
    fillTable("table-errors", ["time", "subscription", "event", "try", "outcome", "status", "error"],
      errors.errors.map((e) => [clock(e.started_at), label(e.subscription_id), e.event_type, e.attempt,
        cell(e.outcome, "bad"), e.status_code ?? "–", cell(e.error || e.response_body || "", "body")]));
    fillTable("table-routing", ["outcome", "reason", "events", "deliveries"],
      dashboard.data.routing.totals.map((r) => [r.outcome, r.reason || "–", r.decisions, r.routes]));
  }

  function fillTable(id, headings, rows, emptyText) {
    const numeric = (value) => typeof value === "number";
    const head = element("tr", {}, ...headings.map((text) => element("th", { textContent: text })));
    const body = rows.length
      ? rows.map((values) => element("tr", {}, ...values.map((value) => (value instanceof Node ? value
        : element("td", { className: numeric(value) ? "num" : "", textContent: String(value) })))))
      : [element("tr", {}, element("td", { className: "empty", colSpan: headings.length, textContent: emptyText || "nothing in this range" }))];
    $(id).replaceChildren(element("thead", {}, head), element("tbody", {}, ...body));
  }

  function element(tag, properties, ...children) {
    const node = Object.assign(document.createElement(tag), properties);
    node.append(...children);
    return node;
  }

  const cell = (text, className) => element("td", { className, textContent: String(text), title: String(text) });
  const percent = (rate) => (rate == null ? "–" : (rate * 100).toFixed(1) + " %");
  const ms = (value) => (value == null ? "–" : value.toFixed(1));
  const age = (s) => (s == null ? "–" : s < 120 ? s.toFixed(0) + " s" : s < 7200 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h");
  const clock = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) + "Z" : "–");
  const statuses = (counts) => Object.entries(counts || {}).sort().map(([status, n]) => status + ": " + n).join(", ");

  async function tick() {
    try {
      await refresh();
      dashboard.refreshes += 1;
      dashboard.lastError = null;
      setStatus("updated " + new Date().toISOString().slice(11, 19) + "Z, every " + state.refreshS + " s", false);
    } catch (error) {
      dashboard.lastError = String(error.message || error);
      setStatus(dashboard.lastError, true);
      if (error.unauthorized) return askForToken();
    }
    dashboard.timer = setTimeout(tick, state.refreshS * 1000);
  }

  function setStatus(text, failed) {
    $("status").textContent = text;
    $("status").classList.toggle("error", failed);
  }

  function askForToken() {
    $("main").hidden = true;
    $("token-form").hidden = false;
  }

  function restart() {
    clearTimeout(dashboard.timer);
    tick();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("token-form").hidden = true;
    $("main").hidden = false;
    restart();
  });
  $("subscription").addEventListener("change", (event) => { state.subscription = event.target.value; restart(); });
  $("range").value = state.range;
  $("range").addEventListener("change", (event) => { state.range = event.target.value; restart(); });

  if (state.token) tick(); else askForToken();
})();
