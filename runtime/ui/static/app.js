// agentflow live UI. Reads /api/config once, then follows /ws (history first, then
// live events). All state is derived from events; rendering is throttled, and the
// event log shows at most LOG_ROWS rows, so 10,000-item runs stay responsive.
(function () {
  "use strict";

  const LOG_ROWS = 500;
  const TEXT_CAP = 20000;
  const PULSE_MS = 1500;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const withToken = (path) => (token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path);

  const S = {}; // run state, rebuilt from event 0 on every (re)connection
  const conn = { connected: false, connections: 0, resyncs: 0, frames: 0, renders: 0 };
  let config = null;
  let cy = null;
  let renderPending = false;
  let logDirty = true;

  function resetState() {
    S.events = [];
    S.kinds = {};
    S.agents = {};
    S.state = config ? config.initial : "";
    S.visited = new Set(S.state ? [S.state] : []);
    S.deferred = null;
    S.retryPulses = 0;
    S.pulses = {};
    S.items = { created: 0, finished: 0, passed: 0, failed: 0, aborted: 0, completed: 0, known: new Set() };
    S.usage = { input: 0, output: 0, cost: 0, calls: 0 };
    S.text = {};
    S.lastTextAgent = "";
    S.run = null;
    S.modelName = config ? config.model.name : "";
    S.agentOptions = new Set();
    S.kindOptions = new Set();
    if (config) for (const a of config.agents) S.agents[a.id] = newAgent(a);
    logDirty = true;
  }

  function newAgent(spec) {
    return { spec: spec, items: new Map(), running: 0, passed: 0, failed: 0, history: ["pending"] };
  }

  // ---- applying events ---------------------------------------------------

  function setItemStatus(agentId, item, status) {
    const a = S.agents[agentId];
    if (!a) return;
    const key = item || "";
    const old = a.items.get(key);
    if (old === status) return;
    if (old) a[old] -= 1;
    a.items.set(key, status);
    a[status] += 1;
    // Every colour the node takes, in order (renders are throttled; this is not).
    const now = nodeStatus(a);
    if (a.history[a.history.length - 1] !== now && a.history.length < 200) a.history.push(now);
  }

  function nodeStatus(a) {
    return a.running > 0 ? "running" : a.failed > 0 ? "failed" : a.passed > 0 ? "passed" : "pending";
  }

  const CHILD_RUN_KINDS = new Set(["transition", "transition_deferred", "item_created", "item_finished"]);

  const HANDLERS = {
    run_started(ev) {
      const m = ev.payload.model;
      const name = typeof m === "string" ? m : m && m.name;
      if (name) S.modelName = name;
    },
    agent_started(ev) { setItemStatus(ev.agent, ev.item, "running"); },
    agent_completed(ev) { setItemStatus(ev.agent, ev.item, "passed"); },
    agent_failed(ev) { setItemStatus(ev.agent, ev.item, "failed"); },
    qa_verdict(ev) { setItemStatus(ev.agent, ev.item, ev.payload.passed ? "passed" : "failed"); },
    item_aborted(ev) { if (ev.agent) setItemStatus(ev.agent, ev.item, "failed"); },
    transition(ev) {
      if (ev.payload.to) { S.state = ev.payload.to; S.visited.add(S.state); }
      if (config && config.terminal.includes(S.state)) S.deferred = null;
    },
    transition_deferred(ev) { S.deferred = ev.payload; },
    retry_scheduled(ev) {
      // `qa` is the failing QA agent, or the list of them after a broadcast join;
      // only those with a feedback edge to the target (on_fail: feedback_and_retry) pulse.
      const qas = [].concat(ev.payload.qa || ev.agent);
      const feedback = new Set(((config && config.edges) || []).filter((e) => e.kind === "feedback").map((e) => e.id));
      for (const qa of qas) {
        const id = qa + "~>" + ev.payload.target;
        if (config && !feedback.has(id)) continue;
        S.pulses[id] = (S.pulses[id] || 0) + 1;
        pulseEdge(id);
      }
      S.retryPulses += 1;
    },
    item_created(ev) { S.items.created += 1; },
    item_finished(ev) {
      // With a fan-out, progress counts its work items; the run's own item `main` is not one.
      if (ev.item === "main" && S.items.created > 0) return;
      S.items.finished += 1;
      const st = ev.payload.status;
      if (st in S.items) S.items[st] += 1;
    },
    model_response(ev) {
      const u = ev.payload.usage || {};
      S.usage.input += u.input_tokens || 0;
      S.usage.output += u.output_tokens || 0;
      S.usage.cost += u.cost_usd || 0;
      S.usage.calls += 1;
      if (ev.payload.text && ev.agent) addText(ev, ev.payload.text, true);
    },
    model_text(ev) { if (ev.agent) addText(ev, ev.payload.text || "", false); },
    run_finished(ev) { S.run = ev.payload; },
  };

  function addText(ev, text, whole) {
    const key = (ev.item || "") + " attempt " + (ev.attempt || 1) + " turn " + (ev.payload.turn || 1);
    let t = S.text[ev.agent];
    if (!t || t.key !== key) t = S.text[ev.agent] = { key: key, text: "", streamed: false };
    if (whole) { if (!t.streamed) t.text = text; }
    else { t.text += text; t.streamed = true; }
    if (t.text.length > TEXT_CAP) t.text = t.text.slice(-TEXT_CAP);
    S.lastTextAgent = ev.agent;
  }

  function apply(ev) {
    S.events.push(ev);
    S.kinds[ev.kind] = (S.kinds[ev.kind] || 0) + 1;
    if (ev.item) S.items.known.add(ev.item);
    if (ev.agent) S.agentOptions.add(ev.agent);
    S.kindOptions.add(ev.kind);
    const h = HANDLERS[ev.kind];
    // A sub-pipeline's own state machine and items are not the run's (docs/events.md).
    if (h && !(ev.payload && ev.payload.subpipeline && CHILD_RUN_KINDS.has(ev.kind))) h(ev);
  }

  // ---- connection ----------------------------------------------------------

  function connect() {
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    const base = location.pathname.replace(/[^/]*$/, "");
    const ws = new WebSocket(withToken(proto + location.host + base + "ws"));
    ws.onopen = () => { conn.connected = true; conn.connections += 1; schedule(); };
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.type === "resync") { conn.resyncs += 1; return; }
      if (data.type !== "events") return;
      if (data.start === 0) resetState();
      for (const ev of data.events) apply(ev);
      conn.frames += 1;
      ws.send(JSON.stringify({ type: "ack", count: S.events.length }));
      logDirty = true;
      schedule();
    };
    ws.onclose = () => { conn.connected = false; schedule(); setTimeout(connect, 1000); };
  }

  // ---- graph ---------------------------------------------------------------

  const COLORS = { pending: "#9ca3af", running: "#3b82f6", passed: "#22c55e", failed: "#ef4444" };

  function buildGraph() {
    const elements = [];
    for (const a of config.agents) {
      elements.push({ data: { id: a.id, label: a.id, status: "pending" }, classes: a.is_qa ? "qa" : "" });
    }
    for (const e of config.edges) {
      elements.push({ data: { id: e.id, source: e.source, target: e.target, label: e.label || (e.kind === "dispatch" ? e.strategy.replace("parallel_", "") : "feedback") }, classes: e.kind });
    }
    if (typeof cytoscape !== "function") return;
    cy = cytoscape({
      container: $("graph"),
      elements: elements,
      userZoomingEnabled: false,
      maxZoom: 1.4,
      boxSelectionEnabled: false,
      style: [
        { selector: "node", style: { "background-color": (n) => COLORS[n.data("status")] || COLORS.pending, label: "data(label)", color: "#e2e8f0", "font-size": 11, "text-valign": "bottom", "text-margin-y": 6, width: 34, height: 34, "border-width": 2, "border-color": "#0f172a" } },
        { selector: "node.qa", style: { shape: "diamond", width: 40, height: 40 } },
        { selector: "node:selected", style: { "border-color": "#facc15", "border-width": 4 } },
        { selector: "edge", style: { width: 2, "line-color": "#64748b", "target-arrow-color": "#64748b", "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(label)", "font-size": 9, color: "#94a3b8", "text-background-color": "#111c33", "text-background-opacity": 1 } },
        { selector: "edge.feedback", style: { "line-color": "#f97316", "target-arrow-color": "#f97316", "line-style": "dashed", "curve-style": "unbundled-bezier", "control-point-distances": [-60], "control-point-weights": [0.5] } },
        { selector: "edge.pulse", style: { width: 7, "line-style": "solid", "line-color": "#fb923c", "target-arrow-color": "#fb923c" } },
      ],
      layout: { name: "preset" },
    });
    cy.layout({ name: "preset", positions: layeredPositions(), fit: false }).run();
    cy.fit(undefined, 40);
    cy.on("tap", "node", (e) => { $("text-agent").value = e.target.id(); schedule(); });
  }

  // Left-to-right layers: an agent's column is its longest dispatch path from the
  // entry (feedback edges ignored, so the QA loop does not fold the graph), agents
  // in one column are spread vertically. Deterministic, and readable for the small
  // graphs pipelines have (cytoscape's breadthfirst overlaps nodes once turned sideways).
  function layeredPositions() {
    const depth = {};
    for (const a of config.agents) depth[a.id] = 0;
    const dispatch = config.edges.filter((e) => e.kind === "dispatch");
    for (let round = 0; round < config.agents.length; round++) {
      for (const e of dispatch) depth[e.target] = Math.max(depth[e.target], depth[e.source] + 1);
    }
    const columns = {};
    for (const a of config.agents) (columns[depth[a.id]] = columns[depth[a.id]] || []).push(a.id);
    const positions = {};
    for (const d in columns) {
      columns[d].forEach((id, i) => {
        positions[id] = { x: 240 * Number(d), y: 130 * (i - (columns[d].length - 1) / 2) };
      });
    }
    return positions;
  }

  function pulseEdge(id) {
    const li = document.querySelector('#edge-states li[data-edge="' + CSS.escape(id) + '"]');
    if (li) { li.dataset.pulses = String(S.pulses[id]); li.dataset.pulsing = "true"; }
    if (!cy) return;
    const edge = cy.getElementById(id);
    if (edge.empty()) return;
    edge.addClass("pulse");
    clearTimeout(edge.scratch("pulseTimer"));
    edge.scratch("pulseTimer", setTimeout(() => { edge.removeClass("pulse"); if (li) li.dataset.pulsing = "false"; }, PULSE_MS));
  }

  function agentView(a) {
    const status = nodeStatus(a);
    const perItem = a.spec.per_item || a.items.size > 1;
    const total = Math.max(S.items.created, a.items.size);
    const label = perItem ? a.spec.id + " " + a.passed + "/" + total + (a.failed ? " ✗" + a.failed : "") : a.spec.id;
    return { status: status, label: label, total: total };
  }

  // ---- rendering -----------------------------------------------------------

  function schedule() {
    if (renderPending) return;
    renderPending = true;
    setTimeout(render, 40);
  }

  function render() {
    renderPending = false;
    conn.renders += 1;
    if (!config) return;
    const c = $("conn");
    c.dataset.connected = String(conn.connected);
    c.textContent = conn.connected ? "live · " + S.events.length + " events" : "disconnected · retrying";
    renderModel();
    renderNodes();
    renderState();
    renderItems();
    renderUsage();
    renderText();
    renderFilters();
    if (logDirty) renderLog();
    renderBanner();
  }

  function renderModel() {
    const b = $("model-badge");
    const name = (S.modelName || "").toLowerCase();
    const replay = name.includes("replay");
    const dryRun = name.includes("dry-run");
    const offline = replay || dryRun;
    b.hidden = !S.modelName;
    b.className = "badge " + (offline ? "offline" : "live");
    b.dataset.offline = String(offline);
    b.textContent = replay
      ? "OFFLINE REPLAY — recorded model responses, not a live model"
      : dryRun
        ? "DRY RUN — synthetic answers, no model is called"
        : "LIVE MODEL: " + S.modelName;
  }

  function renderNodes() {
    for (const id in S.agents) {
      const v = agentView(S.agents[id]);
      const a = S.agents[id];
      const li = document.querySelector('#node-states li[data-agent="' + CSS.escape(id) + '"]');
      if (li && (li.dataset.status !== v.status || li.dataset.label !== v.label)) {
        li.dataset.status = v.status;
        li.dataset.label = v.label;
        li.textContent = v.label + ": " + v.status;
      }
      if (li) { li.dataset.passed = a.passed; li.dataset.failed = a.failed; li.dataset.running = a.running; li.dataset.total = v.total; }
      if (cy) {
        const n = cy.getElementById(id);
        if (n.data("status") !== v.status) n.data("status", v.status);
        if (n.data("label") !== v.label) n.data("label", v.label);
      }
    }
  }

  function renderState() {
    const cur = $("state-current");
    cur.textContent = S.state || "–";
    cur.dataset.state = S.state;
    cur.dataset.terminal = String(config.terminal.includes(S.state));
    $("state-deferred").textContent = S.deferred ? "deferred: → " + S.deferred.to + " (" + (S.deferred.trigger || "") + ")" : "";
    for (const li of $("state-list").children) {
      li.dataset.current = String(li.dataset.state === S.state);
      li.dataset.visited = String(S.visited.has(li.dataset.state));
    }
  }

  function renderItems() {
    const it = S.items;
    const total = it.created || it.known.size;
    const failed = it.failed + it.aborted;
    const running = Math.max(0, total - it.finished);
    $("items-text").textContent = total
      ? it.finished + "/" + total + " finished · " + (it.passed + it.completed) + " passed · " + failed + " failed/aborted"
      : "–";
    $("items").dataset.created = it.created;
    $("items").dataset.finished = it.finished;
    const pct = (n) => (total ? (100 * n) / total : 0) + "%";
    $("bar-passed").style.width = pct(it.passed + it.completed);
    $("bar-failed").style.width = pct(failed);
    $("bar-running").style.width = pct(running);
  }

  function renderUsage() {
    $("usage-in").textContent = S.usage.input.toLocaleString();
    $("usage-out").textContent = S.usage.output.toLocaleString();
    $("usage-calls").textContent = S.usage.calls.toLocaleString();
    $("usage-cost").textContent = "$" + S.usage.cost.toFixed(4);
  }

  function renderText() {
    const agent = $("text-agent").value || S.lastTextAgent;
    const t = S.text[agent];
    $("text-key").textContent = t ? agent + " · " + t.key : "";
    $("model-text").textContent = t ? t.text : "";
  }

  function syncOptions(select, values) {
    const have = new Set(Array.from(select.options, (o) => o.value));
    for (const v of values) if (!have.has(v)) select.add(new Option(v, v));
  }

  function renderFilters() {
    syncOptions($("filter-agent"), S.agentOptions);
    syncOptions($("filter-kind"), S.kindOptions);
    syncOptions($("text-agent"), Object.keys(S.text));
    const dl = $("item-list");
    if (dl.childElementCount !== Math.min(S.items.known.size, 200)) {
      dl.replaceChildren(...Array.from(S.items.known).slice(0, 200).map((i) => new Option(i)));
    }
  }

  function matches(ev, item, agent, kind) {
    return (!item || ev.item === item) && (!agent || ev.agent === agent) && (!kind || ev.kind === kind);
  }

  function renderLog() {
    logDirty = false;
    const item = $("filter-item").value.trim();
    const agent = $("filter-agent").value;
    const kind = $("filter-kind").value;
    const rows = [];
    let total = 0;
    for (let i = S.events.length - 1; i >= 0; i--) {
      const ev = S.events[i];
      if (!matches(ev, item, agent, kind)) continue;
      total += 1;
      if (rows.length < LOG_ROWS) rows.push(ev);
    }
    const frag = document.createDocumentFragment();
    for (let i = rows.length - 1; i >= 0; i--) frag.appendChild(logRow(rows[i]));
    const body = $("log-body");
    body.replaceChildren(frag);
    $("log-count").textContent = "showing " + rows.length + " of " + total + (total !== S.events.length ? " matching (" + S.events.length + " in all)" : "");
    $("log-count").dataset.shown = rows.length;
    $("log-count").dataset.matching = total;
    const scroller = body.closest(".log-scroll");
    scroller.scrollTop = scroller.scrollHeight;
  }

  function logRow(ev) {
    const tr = document.createElement("tr");
    tr.className = "k-" + ev.kind;
    tr.dataset.testid = "log-row";
    tr.dataset.kind = ev.kind;
    tr.dataset.item = ev.item || "";
    tr.dataset.agent = ev.agent || "";
    let details = JSON.stringify(ev.payload);
    if (details.length > 200) details = details.slice(0, 200) + "…";
    const cells = [ev.seq, new Date(ev.ts * 1000).toISOString().slice(11, 23), ev.kind, ev.agent || "", ev.item || "", ev.attempt || "", details];
    const classes = ["", "", "kind", "", "", "", "details"];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = String(text);
      if (classes[i]) td.className = classes[i];
      tr.appendChild(td);
    });
    return tr;
  }

  // `agentflow serve`: the log's verdict from `agentflow verify` (null for a live run).
  function renderLogWarning() {
    const v = config.verification, w = $("log-warning");
    w.hidden = !v || v.ok;
    if (w.hidden) return;
    w.dataset.sealed = String(v.sealed);
    w.textContent = "\u26a0 This audit log does NOT verify: it is not a sound record of a finished run ("
      + v.problems.length + " problem(s))\n" + v.problems.slice(0, 5).join("\n");
  }

  function renderBanner() {
    const b = $("run-banner");
    if (!S.run) { b.hidden = true; return; }
    b.hidden = false;
    b.className = S.run.status || "";
    b.dataset.status = S.run.status || "";
    b.textContent = "Run " + (S.run.status || "finished") + (S.run.final_state ? " · final state: " + S.run.final_state : "");
  }

  // ---- start -----------------------------------------------------------------

  function buildStatic() {
    $("pipeline-name").textContent = config.pipeline.name + " v" + config.pipeline.version;
    document.title = "agentflow · " + config.pipeline.name;
    const nodes = $("node-states");
    for (const a of config.agents) {
      const li = document.createElement("li");
      li.dataset.agent = a.id;
      li.dataset.status = "pending";
      li.dataset.testid = "node-state";
      nodes.appendChild(li);
    }
    const edges = $("edge-states");
    for (const e of config.edges) {
      const li = document.createElement("li");
      li.dataset.edge = e.id;
      li.dataset.kind = e.kind;
      li.dataset.pulses = "0";
      li.dataset.pulsing = "false";
      li.textContent = e.id;
      edges.appendChild(li);
    }
    const states = $("state-list");
    for (const s of config.states) {
      const li = document.createElement("li");
      li.dataset.state = s;
      li.dataset.terminal = String(config.terminal.includes(s));
      li.textContent = s;
      states.appendChild(li);
    }
    for (const id of ["filter-item", "filter-agent", "filter-kind"]) {
      $(id).addEventListener("input", () => { logDirty = true; schedule(); });
    }
    $("text-agent").addEventListener("change", schedule);
  }

  window.__agentflow = {
    get events() { return S.events ? S.events.length : 0; },
    get kinds() { return Object.assign({}, S.kinds); },
    get state() { return S.state; },
    get retryPulses() { return S.retryPulses; },
    get pulses() { return Object.assign({}, S.pulses); },
    get items() { const it = S.items || {}; return { created: it.created, finished: it.finished, passed: it.passed, failed: it.failed, aborted: it.aborted, completed: it.completed }; },
    get usage() { return Object.assign({}, S.usage); },
    get run() { return S.run; },
    get model() { return S.modelName; },
    get connection() { return Object.assign({}, conn); },
    nodes() { const out = {}; for (const id in S.agents) out[id] = Object.assign({ passed: S.agents[id].passed, failed: S.agents[id].failed }, agentView(S.agents[id])); return out; },
    statusHistory() { const out = {}; for (const id in S.agents) out[id] = S.agents[id].history.slice(); return out; },
    graph() { return cy ? { nodes: cy.nodes().map((n) => n.id()), edges: cy.edges().map((e) => e.id()), positions: cy.nodes().map((n) => [n.id(), n.position()]) } : null; },
    edgeLabels() { const out = {}; if (cy) cy.edges().forEach((e) => { out[e.id()] = e.data("label"); }); return out; },
    render: render,
  };

  fetch(withToken("api/config"), { credentials: "same-origin" })
    .then((r) => { if (!r.ok) throw new Error("GET /api/config: " + r.status); return r.json(); })
    .then((c) => {
      config = c;
      resetState();
      buildStatic();
      renderLogWarning();
      buildGraph();
      render();
      connect();
    })
    .catch((err) => { $("conn").textContent = String(err); });
})();
