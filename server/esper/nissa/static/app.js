// Mission control: renders Nissa's /api/state and follows /api/events (Server-Sent Events),
// falling back to polling /api/state every second when the event stream is unavailable.
// Every value from the server is inserted as text, never as HTML.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const MARKED_STAGES = ["GERMINATED", "FOSSILIZED", "CULLED", "ROLLED_BACK", "CANCELLED"];
const POLL_MS = 1000;
const STREAM_FAILURES_BEFORE_POLLING = 3;

let selectedRunId = decodeURIComponent(location.hash.slice(1)) || null;
let lastState = null;
let lastRendered = "";

// --- small DOM helpers --------------------------------------------------------------------------

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function badge(text, className) {
  return el("span", "badge " + (className || ""), text);
}

function percent(value, digits = 1) {
  return value === null || value === undefined ? "–" : (100 * value).toFixed(digits) + " %";
}

function count(value) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US");
}

function ago(seconds, now) {
  if (!seconds || !now) return "";
  const delta = Math.max(0, Math.round(now - seconds));
  if (delta < 60) return delta + " s ago";
  if (delta < 3600) return Math.round(delta / 60) + " min ago";
  return Math.round(delta / 3600) + " h ago";
}

// --- the run list and the alerts ----------------------------------------------------------------

function renderRuns(state) {
  const list = document.getElementById("runs");
  list.replaceChildren();
  if (!state.runs.length) {
    list.append(el("li", "empty", "No run seen yet."));
    return;
  }
  for (const run of state.runs) {
    const item = el("li", "run" + (run.run_id === selectedRunId ? " selected" : ""));
    item.dataset.runId = run.run_id;
    const accuracy = run.latest ? run.latest.val_accuracy : null;
    item.append(
      el("span", "run-id mono", run.run_id),
      el("span", "run-acc", percent(accuracy)),
      el("span", "run-meta", badge(run.status, "status-" + run.status), " epoch " + run.last_epoch),
      el("span", "run-meta", ago(run.last_time, state.time)),
    );
    item.addEventListener("click", () => {
      selectedRunId = run.run_id;
      location.hash = encodeURIComponent(run.run_id);
      render(lastState, true);
    });
    list.append(item);
  }
}

function renderAlerts(state) {
  const list = document.getElementById("alerts");
  document.getElementById("alert-count").textContent = String(state.alerts.length);
  list.replaceChildren();
  if (state.alerts_error) list.append(el("li", "alert-error", state.alerts_error));
  if (!state.alerts.length && !state.alerts_error) list.append(el("li", "empty", "Nothing firing."));
  for (const alert of state.alerts) {
    const labels = Object.entries(alert.labels).map(([k, v]) => k + "=" + v).join(" ");
    list.append(el("li", "alert",
      badge(alert.severity, "sev-" + alert.severity),
      el("span", "alert-name", alert.name),
      el("div", "alert-summary", alert.summary || ""),
      labels ? el("div", "alert-summary mono", labels) : null,
      el("div", "alert-summary", alert.start_time ? "firing since " + ago(alert.start_time, state.time) : ""),
    ));
  }
}

// --- the selected run ---------------------------------------------------------------------------

function fact(label, value) {
  return el("div", "fact", el("div", "label", label), el("div", "value", value));
}

function renderHeader(run, now) {
  const counts = run.counts || {};
  const latest = run.latest || {};
  const params = run.curve.length ? run.curve[run.curve.length - 1].parameter_count : null;
  return el("div", "panel",
    el("div", "run-header",
      el("h1", "mono", run.run_id),
      badge(run.status, "status-" + run.status),
      el("span", "muted", (run.source ? "from " + run.source + " · " : "") + "updated " + ago(run.last_time, now)),
    ),
    el("div", "facts",
      fact("Epoch", String(run.last_epoch)),
      fact("Val acc.", percent(latest.val_accuracy)),
      fact("Best val", percent(run.best_val_accuracy)),
      fact("Parameters", count(params)),
      fact("Germinated", String(counts.germinated || 0)),
      fact("Fossilized", String(counts.fossilized || 0)),
      fact("Culled", String(counts.culled || 0)),
      fact("Hook p50", run.hook_ms_p50 === null ? "–" : run.hook_ms_p50.toFixed(2) + " ms"),
    ),
  );
}

function renderChart(run) {
  const width = 860, height = 280;
  const pad = { left: 48, right: 64, top: 22, bottom: 34 };
  const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
  const points = run.curve.filter((p) => p.val_accuracy !== null);
  const lastEpoch = Math.max(1, run.last_epoch, ...run.curve.map((p) => p.epoch));
  const x = (epoch) => pad.left + (epoch / lastEpoch) * plotW;
  const y = (fraction) => pad.top + (1 - fraction) * plotH;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "validation accuracy per epoch" });

  const axis = svg("g", { class: "axis" });
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    axis.append(svg("line", { class: "gridline", x1: pad.left, x2: pad.left + plotW, y1: y(tick), y2: y(tick) }));
    axis.append(svg("text", { x: pad.left - 8, y: y(tick) + 4, "text-anchor": "end" }, (100 * tick) + " %"));
  }
  const step = Math.max(1, Math.ceil(lastEpoch / 10));
  for (let epoch = 0; epoch <= lastEpoch; epoch += step) {
    axis.append(svg("text", { x: x(epoch), y: height - pad.bottom + 18, "text-anchor": "middle" }, epoch));
  }
  axis.append(svg("text", { x: pad.left + plotW / 2, y: height - 4, "text-anchor": "middle" }, "epoch"));
  chart.append(axis);

  for (const mark of run.marks.filter((m) => MARKED_STAGES.includes(m.to_stage))) {
    const group = svg("g", { class: "mark-" + mark.to_stage });
    group.append(svg("line", { x1: x(mark.epoch), x2: x(mark.epoch), y1: pad.top, y2: pad.top + plotH,
      "stroke-width": 1.2, "stroke-dasharray": "3 3", opacity: 0.8 }));
    group.append(svg("path", { d: `M ${x(mark.epoch) - 5} ${pad.top - 10} h 10 l -5 8 z` }));
    group.append(svg("title", {}, `epoch ${mark.epoch}: ${mark.seed_id} → ${mark.to_stage}. ${mark.reason}`));
    chart.append(group);
  }

  const line = (key) => run.curve.filter((p) => p[key] !== null).map((p) => `${x(p.epoch)},${y(p[key])}`).join(" ");
  chart.append(svg("polyline", { class: "train", points: line("train_accuracy") }));
  chart.append(svg("polyline", { class: "val", points: line("val_accuracy") }));
  for (const p of points) {
    chart.append(svg("circle", { class: "val-point", cx: x(p.epoch), cy: y(p.val_accuracy), r: 3 },
      svg("title", {}, `epoch ${p.epoch}: validation ${percent(p.val_accuracy, 2)}`)));
  }
  if (points.length) {
    const last = points[points.length - 1];
    chart.append(svg("text", { class: "last-label", x: x(last.epoch) + 8, y: y(last.val_accuracy) + 4 },
      percent(last.val_accuracy)));
  }

  const legend = el("div", "legend",
    el("span", null, el("span", "swatch val"), "validation accuracy"),
    el("span", null, el("span", "swatch train"), "train accuracy"),
    ...["GERMINATED", "FOSSILIZED", "CULLED", "ROLLED_BACK"].map((stage) =>
      el("span", null, el("span", "swatch mark-" + stage), stage.toLowerCase().replace("_", " "))),
  );
  return el("div", "panel chart", el("h2", null, "Accuracy"), chart, legend);
}

function alphaCell(alpha) {
  const value = alpha === null ? 0 : alpha;
  const fill = el("div", "fill");
  fill.style.width = Math.round(100 * Math.min(1, Math.max(0, value))) + "%";
  return el("div", "alpha", el("div", "bar", fill), el("span", null, value.toFixed(2)));
}

function renderSeeds(run) {
  const body = el("tbody");
  for (const layer of run.layers) {
    const heading = el("td", null, "layer " + layer.layer);
    heading.colSpan = 4;
    body.append(el("tr", "layer-row", heading));
    for (const seed of layer.seeds) {
      const kernelCell = el("td", "mono muted kernel", seed.blueprint_id || seed.kernel_id || "–");
      kernelCell.title = [seed.blueprint_id, seed.kernel_id].filter(Boolean).join("\n");
      body.append(el("tr", null,
        el("td", "mono", seed.seed_id),
        el("td", null, badge(seed.stage, "stage stage-" + seed.stage)),
        el("td", null, alphaCell(seed.alpha)),
        kernelCell,
      ));
    }
  }
  const table = el("table", "seeds",
    el("thead", null, el("tr", null, el("th", null, "seed"), el("th", null, "stage"),
      el("th", null, "alpha"), el("th", null, "kernel"))),
    body);
  const content = run.layers.length ? table : el("div", "empty", "No seed telemetry yet.");
  return el("div", "panel", el("h2", null, "Seeds per layer"), content);
}

function renderDecisions(run) {
  const list = el("ul", "decisions");
  for (const decision of run.decisions) {
    list.append(el("li", null,
      el("span", "decision-epoch", "epoch " + decision.epoch),
      el("span", "decision-head",
        badge(decision.command_type), decision.seed_id ? el("span", "mono", decision.seed_id) : null),
      el("span", "decision-reason", decision.reason),
    ));
  }
  if (!run.decisions.length) list.append(el("li", "empty", "No decision yet."));
  return el("div", "panel", el("h2", null, "Recent decisions"), el("div", "scroll", list));
}

function renderNotices(run) {
  const list = el("ul", "notices");
  for (const notice of run.notices.slice(0, 8)) list.append(el("li", null, notice.text));
  for (const alert of run.alerts) {
    list.append(el("li", null, badge(alert.severity, "sev-" + alert.severity), " ", alert.name, " ",
      alert.state.toLowerCase(), " ", alert.summary));
  }
  if (!list.childElementCount) return null;
  return el("div", "panel", el("h2", null, "Notices"), list);
}

function renderRun(state) {
  const content = document.getElementById("run");
  const run = state.runs.find((r) => r.run_id === selectedRunId) || state.runs[0];
  if (!run) {
    content.replaceChildren(el("div", "panel placeholder", "Waiting for a run’s telemetry on Oona…"));
    return;
  }
  const sameRun = selectedRunId === run.run_id;
  const scrolled = sameRun ? Array.from(content.querySelectorAll(".scroll"), (box) => box.scrollTop) : [];
  selectedRunId = run.run_id;
  content.replaceChildren(
    renderHeader(run, state.time),
    renderChart(run),
    el("div", "two", el("div", "stack", renderSeeds(run), renderNotices(run)), renderDecisions(run)),
  );
  // A live update must not throw the reader back to the top of a list they scrolled.
  content.querySelectorAll(".scroll").forEach((box, index) => { box.scrollTop = scrolled[index] || 0; });
}

function render(state, force) {
  if (!state) return;
  lastState = state;
  const key = JSON.stringify([state.version, state.alerts, state.alerts_error, selectedRunId]);
  if (!force && key === lastRendered) return;
  lastRendered = key;
  renderRun(state);
  renderRuns(state);
  renderAlerts(state);
}

// --- following the server -----------------------------------------------------------------------

function setConnection(kind, text) {
  const box = document.getElementById("connection");
  box.dataset.state = kind;
  document.getElementById("connection-text").textContent = text;
}

async function poll() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    return true;
  } catch (error) {
    setConnection("down", "Nissa unreachable, retrying");
    return false;
  }
}

function startPolling() {
  setConnection("polling", "polling every second");
  const tick = async () => {
    if (await poll()) setConnection("polling", "polling every second");
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

function follow() {
  // ?transport=poll: for clients that cannot hold a stream open (e.g. a headless browser's virtual time).
  const forcePolling = new URLSearchParams(location.search).get("transport") === "poll";
  if (forcePolling || typeof EventSource === "undefined") {
    startPolling();
    return;
  }
  const stream = new EventSource("/api/events");
  let failures = 0;
  stream.addEventListener("state", (event) => {
    failures = 0;
    setConnection("live", "live");
    render(JSON.parse(event.data));
  });
  stream.onerror = () => {
    failures += 1;
    if (failures >= STREAM_FAILURES_BEFORE_POLLING) {
      stream.close();
      startPolling();
    } else {
      setConnection("down", "reconnecting…");
    }
  };
}

poll().then(follow);
