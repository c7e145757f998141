// agentflow UI. Two views in one page (the server says which in <body data-view>):
//  - "runs": every run of the store, polled every 2 s (live ones update);
//  - "run": one run. Reads its config once, then follows its WebSocket (history first,
//    then live events). All state is derived from events, applied incrementally;
//    rendering is throttled and each view only touches what changed: the event log is
//    virtualised (only the rows in view are in the DOM, rows already drawn are kept),
//    and it follows the newest events only while the reader is at the bottom.
// Untrusted text (events, prompts, outputs) only ever reaches the DOM as textContent.
(function () {
  "use strict";

  const ROW_H = 20; // px, the log's fixed row height (style.css --row)
  const OVERSCAN = 10;
  const TEXT_CAP = 20000;
  const PULSE_MS = 1500;
  const ITEM_ROWS = 200;
  const TIMELINE_BARS = 3000;
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const VIEW = body.dataset.view || "run";
  const PAGE_RUN = body.dataset.run || "";
  const API = body.dataset.api || "/api/";
  const WS_PATH = body.dataset.ws || "/ws";
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const withToken = (path) => (token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path);
  const getJson = (path) => fetch(withToken(path), { credentials: "same-origin" }).then((r) => {
    if (!r.ok) throw new Error("GET " + path + ": " + r.status);
    return r.json();
  });

  const S = {}; // run state, rebuilt from event 0 on every (re)connection
  const conn = { connected: false, everConnected: false, connections: 0, resyncs: 0, frames: 0, renders: 0, otherRun: null };
  let config = null;
  let cy = null;
  let renderPending = false;
  let pane = "events";
  const dirty = { log: true, items: true, timeline: true, cost: true, human: true };
  let logView = { first: 0, last: -1 }; // the log rows in the DOM: logIdx[first..last]
  let follow = true; // the log sticks to the newest events while the reader is at the bottom
  let itemsSort = { key: "id", dir: 1 };
  const HEAVY_MS = 500;
  let lastHeavy = -Infinity; // when a whole-pane rebuild last ran

  function resetState() {
    S.events = [];
    S.kinds = {};
    S.agents = {};
    S.state = config ? config.initial : "";
    S.visited = new Set(S.state ? [S.state] : []);
    S.deferred = null;
    S.retryPulses = 0;
    S.pulses = {};
    S.items = { created: 0, finished: 0, passed: 0, failed: 0, aborted: 0, completed: 0, waiting: 0, known: new Set() };
    S.usage = { input: 0, output: 0, cost: 0, calls: 0 };
    S.text = {};
    S.lastTextAgent = "";
    S.run = null;
    S.resumed = 0;
    S.modelName = config ? config.model.name : "";
    S.agentOptions = new Set();
    S.kindOptions = new Set();
    S.itemRows = new Map(); // item -> {id, status, reason, attempts, start, end, cost, tokens, calls}
    S.invocations = []; // {agent, item, attempt, start, end, status, retry}
    S.openInv = new Map(); // agent|item|attempt -> index in invocations
    S.calls = []; // {agent, item, attempt, turn, start, end, req seq, resp seq, usage, latency}
    S.waits = []; // a retry's backoff: {agent (the target), item, start, end}
    S.openWait = new Map(); // target|item -> index in waits
    S.openCall = new Map(); // agent|item|attempt|turn -> index in calls
    S.routes = {}; // edge id -> {taken, iteration}
    S.human = new Map(); // agent|item|attempt -> {agent, item, attempt, payload, seq, answered}
    S.logIdx = []; // indexes into S.events matching the filters
    S.filter = currentFilter();
    S.firstTs = null;
    S.lastTs = null;
    if (config) for (const a of config.agents) S.agents[a.id] = newAgent(a);
    for (const k in dirty) dirty[k] = true;
    logView = { first: 0, last: -1 };
    const lb = $("log-body");
    if (lb) lb.replaceChildren();
  }

  function newAgent(spec) {
    return { spec: spec, items: new Map(), running: 0, passed: 0, failed: 0, waiting: 0, history: ["pending"],
      usage: { calls: 0, input: 0, output: 0, cost: 0, latency: 0, maxLatency: 0 } };
  }

  // An agent the pipeline does not list (a stored run whose YAML is gone): a node of its own.
  function ensureAgent(id) {
    if (!id || S.agents[id]) return S.agents[id];
    const spec = { id: id, is_qa: false, per_item: false, tools: [], transitions: {} };
    S.agents[id] = newAgent(spec);
    if (config && !config.agents.some((a) => a.id === id)) {
      config.agents.push(spec);
      addNodeMirror(spec);
      if (cy) { cy.add({ data: { id: id, label: id, status: "pending" } }); relayout(); }
    }
    return S.agents[id];
  }

  // ---- applying events ---------------------------------------------------

  function setItemStatus(agentId, item, status) {
    const a = ensureAgent(agentId);
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
    return a.running > 0 ? "running" : a.waiting > 0 ? "waiting" : a.failed > 0 ? "failed" : a.passed > 0 ? "passed" : "pending";
  }

  function itemRow(id) {
    let r = S.itemRows.get(id);
    if (!r) {
      r = { id: id, status: "running", reason: "", attempts: 0, start: null, end: null, cost: 0, tokens: 0, calls: 0 };
      S.itemRows.set(id, r);
    }
    return r;
  }

  const key3 = (ev) => ev.agent + "|" + (ev.item || "") + "|" + (ev.attempt || 1);
  const key4 = (ev) => key3(ev) + "|" + ((ev.payload && ev.payload.turn) || 1);

  function closeInvocation(ev, status) {
    const i = S.openInv.get(key3(ev));
    if (i === undefined) return;
    const inv = S.invocations[i];
    inv.end = ev.ts;
    inv.status = status;
    S.openInv.delete(key3(ev));
  }

  const CHILD_RUN_KINDS = new Set(["transition", "transition_deferred", "item_created", "item_finished"]);

  const HANDLERS = {
    run_started(ev) {
      const m = ev.payload.model;
      const name = typeof m === "string" ? m : m && m.name;
      if (name) S.modelName = name;
    },
    run_resumed() { S.run = null; S.resumed += 1; },
    agent_started(ev) {
      setItemStatus(ev.agent, ev.item, "running");
      const w = S.openWait.get(ev.agent + "|" + (ev.item || ""));
      if (w !== undefined) { S.waits[w].end = ev.ts; S.openWait.delete(ev.agent + "|" + (ev.item || "")); }
      const retry = (ev.attempt || 1) > 1;
      S.openInv.set(key3(ev), S.invocations.length);
      S.invocations.push({ agent: ev.agent, item: ev.item || "", attempt: ev.attempt || 1, start: ev.ts, end: null, status: "running", retry: retry, seq: ev.seq });
      if (ev.item) {
        const r = itemRow(ev.item);
        r.attempts = Math.max(r.attempts, ev.attempt || 1);
        if (r.start === null) r.start = ev.ts; // `main` has no item_created
      }
    },
    agent_completed(ev) { setItemStatus(ev.agent, ev.item, "passed"); closeInvocation(ev, "passed"); },
    agent_failed(ev) {
      setItemStatus(ev.agent, ev.item, "failed"); closeInvocation(ev, "failed");
      if (ev.item) { const r = itemRow(ev.item); if (!r.reason) r.reason = ev.agent + ": " + (ev.payload.message || ev.payload.error || "failed"); }
    },
    qa_verdict(ev) {
      const passed = !!ev.payload.passed;
      setItemStatus(ev.agent, ev.item, passed ? "passed" : "failed");
      closeInvocation(ev, passed ? "passed" : "failed");
      if (!passed && ev.item) {
        const issues = ev.payload.issues || [];
        const first = issues.length ? (typeof issues[0] === "string" ? issues[0] : JSON.stringify(issues[0])) : "rejected";
        itemRow(ev.item).reason = ev.agent + ": " + first;
      }
    },
    item_aborted(ev) {
      if (ev.agent) setItemStatus(ev.agent, ev.item, "failed");
      if (ev.item) itemRow(ev.item).reason = String(ev.payload.reason || "aborted");
    },
    human_requested(ev) {
      setItemStatus(ev.agent, ev.item, "waiting");
      S.human.set(key3(ev), { agent: ev.agent, item: ev.item || "main", attempt: ev.attempt || 1, payload: ev.payload, seq: ev.seq, answered: null });
      closeInvocation(ev, "waiting");
      if (ev.item) itemRow(ev.item).status = "waiting";
      dirty.human = true;
    },
    human_answered(ev) {
      const h = S.human.get(key3(ev));
      if (h) h.answered = ev.payload;
      setItemStatus(ev.agent, ev.item, "passed");
      dirty.human = true;
    },
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
      if (ev.payload.target) {
        S.openWait.set(ev.payload.target + "|" + (ev.item || ""), S.waits.length);
        S.waits.push({ agent: ev.payload.target, item: ev.item || "", start: ev.ts, end: null, delay: ev.payload.delay_ms });
      }
    },
    route_chosen(ev) {
      const to = ev.payload.to;
      if (!to || !ev.agent) return;
      const id = ev.agent + "->" + (ev.agent.includes(".") ? ev.agent.slice(0, ev.agent.lastIndexOf(".") + 1) : "") + to;
      const r = S.routes[id] || (S.routes[id] = { taken: 0, iteration: 0, cases: {} });
      r.taken += 1;
      r.cases[ev.payload.case] = (r.cases[ev.payload.case] || 0) + 1;
      if (ev.payload.iteration) r.iteration = Math.max(r.iteration, ev.payload.iteration);
    },
    item_created(ev) { S.items.created += 1; if (ev.item) itemRow(ev.item).start = ev.ts; },
    item_finished(ev) {
      if (ev.item) { const r = itemRow(ev.item); r.status = String(ev.payload.status); r.end = ev.ts; }
      // With a fan-out, progress counts its work items; the run's own item `main` is not one.
      if (ev.item === "main" && S.items.created > 0) return;
      S.items.finished += 1;
      const st = ev.payload.status;
      if (st in S.items) S.items[st] += 1;
    },
    model_request(ev) {
      S.openCall.set(key4(ev), S.calls.length);
      S.calls.push({ agent: ev.agent, item: ev.item || "", attempt: ev.attempt || 1, turn: ev.payload.turn || 1, start: ev.ts, end: null, req: ev.seq, resp: null, usage: null, latency: null });
    },
    model_response(ev) {
      const u = ev.payload.usage || {};
      S.usage.input += u.input_tokens || 0;
      S.usage.output += u.output_tokens || 0;
      S.usage.cost += u.cost_usd || 0;
      S.usage.calls += 1;
      let i = S.openCall.get(key4(ev));
      if (i === undefined) { // a memo-served or unpaired response: a call of zero length
        i = S.calls.length;
        S.calls.push({ agent: ev.agent, item: ev.item || "", attempt: ev.attempt || 1, turn: ev.payload.turn || 1, start: ev.ts, end: null, req: null });
      }
      S.openCall.delete(key4(ev));
      const call = S.calls[i];
      call.end = ev.ts; call.resp = ev.seq; call.usage = u;
      call.latency = Math.max(0, ev.ts - call.start);
      const a = ensureAgent(ev.agent);
      if (a) {
        a.usage.calls += 1; a.usage.input += u.input_tokens || 0; a.usage.output += u.output_tokens || 0;
        a.usage.cost += u.cost_usd || 0; a.usage.latency += call.latency;
        a.usage.maxLatency = Math.max(a.usage.maxLatency, call.latency);
      }
      if (ev.item) {
        const r = itemRow(ev.item);
        r.calls += 1; r.cost += u.cost_usd || 0; r.tokens += (u.input_tokens || 0) + (u.output_tokens || 0);
      }
      if (ev.agent) {
        if (ev.payload.text) addText(ev, ev.payload.text, true);
        else if (ev.payload.tool_calls && ev.payload.tool_calls.length) addText(ev, toolCallsText(ev.payload.tool_calls), true);
        else if (ev.payload.structured !== undefined && ev.payload.structured !== null) addText(ev, JSON.stringify(ev.payload.structured, null, 2), true);
      }
    },
    model_text(ev) { if (ev.agent) addText(ev, ev.payload.text || "", false); },
    run_finished(ev) { S.run = ev.payload; },
  };

  function toolCallsText(calls) {
    return calls.map((c) => "→ tool call " + (c.name || c.tool || "?") + " " + JSON.stringify(c.input !== undefined ? c.input : c.arguments || {}, null, 2)).join("\n");
  }

  function addText(ev, text, whole) {
    const key = (ev.item || "") + " attempt " + (ev.attempt || 1) + " turn " + (ev.payload.turn || 1);
    let t = S.text[ev.agent];
    if (!t || t.key !== key) t = S.text[ev.agent] = { key: key, text: "", streamed: false, cut: 0 };
    if (whole) { if (!t.streamed) { t.text = text; t.cut = 0; } }
    else { t.text += text; t.streamed = true; }
    if (t.text.length > TEXT_CAP) { t.cut += t.text.length - TEXT_CAP; t.text = t.text.slice(-TEXT_CAP); }
    S.lastTextAgent = ev.agent;
  }

  function apply(ev) {
    const index = S.events.length;
    S.events.push(ev);
    S.kinds[ev.kind] = (S.kinds[ev.kind] || 0) + 1;
    if (S.firstTs === null) S.firstTs = ev.ts;
    S.lastTs = ev.ts;
    if (ev.item) S.items.known.add(ev.item);
    if (ev.agent) S.agentOptions.add(ev.agent);
    S.kindOptions.add(ev.kind);
    const h = HANDLERS[ev.kind];
    // A sub-pipeline's own state machine and items are not the run's (docs/events.md).
    if (h && !(ev.payload && ev.payload.subpipeline && CHILD_RUN_KINDS.has(ev.kind))) h(ev);
    if (matches(ev, S.filter)) S.logIdx.push(index);
  }

  // ---- connection ----------------------------------------------------------

  function connect() {
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(withToken(proto + location.host + WS_PATH));
    ws.onopen = () => { conn.connected = true; conn.everConnected = true; conn.connections += 1; schedule(); };
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.type === "resync") { conn.resyncs += 1; return; }
      if (data.type !== "events") return;
      if (data.run !== undefined && config.run && config.run.id && data.run !== config.run.id) {
        // This address now serves another run (a new `agentflow run` on the same port):
        // never mix its events into this page.
        conn.otherRun = data.run;
        ws.onclose = null;
        ws.close();
        conn.connected = false;
        schedule();
        return;
      }
      if (data.start === 0) resetState();
      for (const ev of data.events) apply(ev);
      conn.frames += 1;
      ws.send(JSON.stringify({ type: "ack", count: S.events.length }));
      for (const k in dirty) dirty[k] = true;
      schedule();
    };
    ws.onclose = () => { conn.connected = false; schedule(); setTimeout(connect, 1000); };
  }

  function pollStatus() {
    if (conn.otherRun) return;
    getJson(API + "status").then((st) => {
      if (config.run && st.id && config.run.id && st.id !== config.run.id) conn.otherRun = st.id;
      config.run = Object.assign(config.run || {}, st, { loadedEvents: config.run.loadedEvents });
      schedule();
    }).catch(() => {}).then(() => setTimeout(pollStatus, POLL_MS));
  }

  // ---- graph ---------------------------------------------------------------

  const COLORS = { pending: "#9ca3af", running: "#3b82f6", passed: "#22c55e", failed: "#ef4444", waiting: "#a855f7" };

  function isHuman(a) { return !!(a.human || a.kind === "human"); }

  function buildGraph() {
    const elements = [];
    const groups = new Set(config.agents.filter((a) => a.group).map((a) => a.group));
    for (const g of groups) {
      elements.push({ data: { id: "group:" + g, label: g + " (sub-pipeline)", box: true }, classes: "group" });
    }
    for (const a of config.agents) {
      const data = { id: a.id, label: a.id, status: "pending" };
      if (a.group) data.parent = "group:" + a.group;
      elements.push({ data: data, classes: a.is_qa ? "qa" : isHuman(a) ? "human" : "" });
    }
    for (const e of config.edges) {
      elements.push({ data: { id: e.id, source: e.source, target: e.target, base: edgeLabel(e), label: edgeLabel(e) }, classes: e.kind + (e.strategy ? " " + e.strategy : "") });
    }
    if (typeof cytoscape !== "function") return;
    cy = cytoscape({
      container: $("graph"),
      elements: elements,
      userZoomingEnabled: false,
      maxZoom: 1.4,
      boxSelectionEnabled: false,
      style: [
        { selector: "node", style: { "background-color": (n) => COLORS[n.data("status")] || COLORS.pending, label: "data(label)", color: "#e2e8f0", "font-size": 11, "text-valign": "bottom", "text-margin-y": 6, width: 34, height: 34, "border-width": 2, "border-color": "#0f172a", "text-background-color": "#111c33", "text-background-opacity": 0.85, "text-background-padding": 2 } },
        { selector: "node.qa", style: { shape: "diamond", width: 40, height: 40 } },
        { selector: "node.human", style: { shape: "round-rectangle", width: 44, height: 30 } },
        { selector: "node.group", style: { "background-color": "#1e293b", "background-opacity": 0.5, "border-color": "#475569", "border-width": 1, "border-style": "dashed", shape: "round-rectangle", "text-valign": "top", "text-margin-y": -4, color: "#94a3b8", padding: 18 } },
        { selector: "node:selected", style: { "border-color": "#facc15", "border-width": 4 } },
        { selector: "edge", style: { width: 2, "line-color": "#64748b", "target-arrow-color": "#64748b", "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(label)", "font-size": 9, color: "#94a3b8", "text-background-color": "#111c33", "text-background-opacity": 1, "text-wrap": "wrap" } },
        { selector: "edge.loop", style: { "line-style": "dotted", "curve-style": "unbundled-bezier", "control-point-distances": [70], "control-point-weights": [0.5] } },
        { selector: "edge.join, edge.reduce", style: { "line-color": "#38bdf8", "target-arrow-color": "#38bdf8", "target-arrow-shape": "diamond" } },
        { selector: "edge.taken", style: { width: 3, "line-color": "#e2e8f0", "target-arrow-color": "#e2e8f0", color: "#e2e8f0" } },
        // The feedback edge arcs above the row (node labels are below the nodes), so it
        // never cuts through a label.
        { selector: "edge.feedback", style: { "line-color": "#f97316", "target-arrow-color": "#f97316", "line-style": "dashed", "curve-style": "unbundled-bezier", "control-point-distances": (e) => feedbackBend(e), "control-point-weights": [0.5], "text-margin-y": -8 } },
        { selector: "edge.pulse", style: { width: 7, "line-style": "solid", "line-color": "#fb923c", "target-arrow-color": "#fb923c" } },
      ],
      layout: { name: "preset" },
    });
    relayout();
    cy.on("tap", "node", (e) => {
      if (e.target.data("box")) return;
      $("text-agent").value = e.target.id();
      openDrawer({ type: "agent", agent: e.target.id() });
      schedule();
    });
    cy.on("tap", "edge", (e) => openDrawer({ type: "edge", edge: e.target.id() }));
    // The graph's box moves when a banner or warning appears above it, or the window
    // changes: cytoscape must re-read its container, or clicks land on the wrong node.
    if (typeof ResizeObserver === "function") new ResizeObserver(() => { if (cy) cy.resize(); }).observe($("graph"));
    window.addEventListener("resize", () => { if (cy) { cy.resize(); cy.fit(undefined, 40); } });
  }

  // Positive distances bend an edge to the left of its direction: a right-to-left
  // feedback edge (QA after its target) bends up by a positive distance, so it
  // arcs above the nodes; a left-to-right one needs a negative distance.
  function feedbackBend(e) {
    const s = e.source().position(), t = e.target().position();
    const span = Math.max(80, Math.abs(s.x - t.x) * 0.35);
    return [t.x <= s.x ? span : -span];
  }

  function relayout() {
    if (!cy) return;
    cy.layout({ name: "preset", positions: layeredPositions(), fit: false }).run();
    cy.fit(undefined, 40);
  }

  function edgeLabel(e) {
    return e.label || (e.kind === "dispatch" ? e.strategy.replace("parallel_", "") : e.kind === "feedback" ? "feedback" : e.kind);
  }

  // Left-to-right layers: an agent's column is its longest path from the entry over
  // dispatch and route edges, leaving out the edges that close a cycle (a route back
  // to an earlier agent, found by a depth-first walk from the entry) and feedback
  // edges, so loops do not fold the graph and the entry stays on the left. Agents in
  // one column are spread vertically.
  function layeredPositions() {
    const ids = config.agents.map((a) => a.id);
    const out = {};
    for (const id of ids) out[id] = [];
    for (const e of config.edges) if (e.kind !== "feedback" && out[e.source] && out[e.target]) out[e.source].push(e.target);
    const state = {}; // 1: on the walk's stack, 2: done
    const forward = {};
    for (const id of ids) forward[id] = [];
    const walk = (root) => {
      const stack = [[root, 0]];
      state[root] = 1;
      while (stack.length) {
        const top = stack[stack.length - 1];
        const next = out[top[0]][top[1]++];
        if (next === undefined) { state[top[0]] = 2; stack.pop(); continue; }
        if (state[next] === 1) continue; // closes a cycle: not a layering edge
        forward[top[0]].push(next);
        if (!state[next]) { state[next] = 1; stack.push([next, 0]); }
      }
    };
    if (config.entry && out[config.entry]) walk(config.entry);
    for (const id of ids) if (!state[id]) walk(id);
    const depth = {};
    for (const id of ids) depth[id] = 0;
    for (let round = 0; round < ids.length; round++) {
      let moved = false;
      for (const id of ids) for (const t of forward[id]) if (depth[t] < depth[id] + 1) { depth[t] = depth[id] + 1; moved = true; }
      if (!moved) break;
    }
    const columns = {};
    for (const id of ids) (columns[depth[id]] = columns[depth[id]] || []).push(id);
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

  // While the history loads, the page redraws less often (its work is applying events);
  // once caught up, every 40 ms at most.
  function schedule() {
    if (renderPending) return;
    renderPending = true;
    const loading = config && config.run && S.events && S.events.length < (config.run.loadedEvents || 0);
    setTimeout(render, loading ? 300 : 40);
  }

  function runState() {
    if (conn.otherRun) return "other-run";
    if (!conn.connected) return conn.everConnected ? "disconnected" : "loading";
    if (S.events.length < (config.run.loadedEvents || 0)) return "loading";
    if (S.run) return S.run.status === "waiting" ? "waiting" : "finished";
    if (config.run.state === "crashed") return "crashed";
    if (config.run.state === "waiting") return "waiting";
    return "live";
  }

  const BAD = new Set(["failed", "error", "cancelled", "incomplete", "aborted"]);
  const GOOD = new Set(["succeeded", "completed", "passed"]);
  // Green only for a run that ended well, red for one that did not; neutral otherwise
  // (a run waiting for a person has not ended).
  const outcomeOf = (run) => (!run ? "" : BAD.has(run.status) ? "bad" : GOOD.has(run.status) ? "good" : "");

  function renderRunState() {
    const st = runState();
    const el = $("run-state");
    const outcome = outcomeOf(S.run);
    const text = {
      loading: "LOADING HISTORY · " + S.events.length.toLocaleString() + "/" + (config.run.loadedEvents || 0).toLocaleString() + " events",
      live: "LIVE",
      finished: "FINISHED · " + (S.run ? S.run.status : ""),
      waiting: "WAITING FOR A PERSON",
      crashed: "CRASHED · no run_finished and no live owner",
      disconnected: "DISCONNECTED · the UI server is gone; retrying",
      "other-run": "THIS ADDRESS NOW SERVES ANOTHER RUN (" + conn.otherRun + ") · reload for it",
    }[st];
    if (el.dataset.state !== st || el.textContent !== text) {
      el.dataset.state = st;
      el.dataset.outcome = outcome;
      el.textContent = text;
    }
  }

  function render() {
    renderPending = false;
    conn.renders += 1;
    if (!config) return;
    const c = $("conn");
    c.dataset.connected = String(conn.connected);
    c.textContent = conn.connected ? S.events.length.toLocaleString() + " events" : "not connected";
    renderRunState();
    // While the history loads only the progress is drawn: the rest once, when caught up.
    if (runState() === "loading" && conn.connected) { schedule(); return; }
    renderModel();
    renderNodes();
    renderEdges();
    renderState();
    renderItemsSummary();
    renderUsage();
    renderText();
    renderFilters();
    if (dirty.human) renderHuman();
    if (pane === "events" && dirty.log) renderLog();
    // The items table, timeline and cost tables are rebuilt whole (sorted, up to
    // thousands of bars): while events stream, at most twice a second.
    if (pane !== "events" && dirty[pane]) {
      const now = performance.now();
      if (now - lastHeavy >= HEAVY_MS) {
        lastHeavy = now;
        ({ items: renderItemsTable, timeline: renderTimeline, cost: renderCost })[pane]();
      } else if (!renderPending) {
        renderPending = true;
        setTimeout(render, HEAVY_MS - (now - lastHeavy));
      }
    }
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

  // Route edges: which case was taken and how often; loop edges: the iteration reached.
  function renderEdges() {
    for (const id in S.routes) {
      const r = S.routes[id];
      const e = config.edges.find((x) => x.id === id);
      if (!e) continue;
      const iter = e.kind === "loop" && r.iteration ? " · iteration " + r.iteration : "";
      const label = edgeLabel(e) + " · taken " + r.taken + "×" + iter;
      const li = document.querySelector('#edge-states li[data-edge="' + CSS.escape(id) + '"]');
      if (li && li.dataset.taken !== String(r.taken)) { li.dataset.taken = String(r.taken); li.dataset.iteration = String(r.iteration); li.textContent = id + ": " + label; }
      if (cy) {
        const edge = cy.getElementById(id);
        if (!edge.empty() && edge.data("label") !== label) { edge.data("label", label); edge.addClass("taken"); }
      }
    }
  }

  function renderState() {
    const cur = $("state-current");
    cur.textContent = S.state || "–";
    cur.dataset.state = S.state;
    const terminal = config.terminal.includes(S.state);
    cur.dataset.terminal = String(terminal);
    // Green only when the run ended well: a failed run's final state is red.
    const outcome = outcomeOf(S.run);
    cur.dataset.outcome = outcome;
    $("state-deferred").textContent = S.deferred ? "deferred: → " + S.deferred.to + " (" + (S.deferred.trigger || "") + ")" : "";
    for (const li of $("state-list").children) {
      li.dataset.current = String(li.dataset.state === S.state);
      li.dataset.visited = String(S.visited.has(li.dataset.state));
      li.dataset.outcome = li.dataset.state === S.state ? outcome : "";
    }
  }

  function renderItemsSummary() {
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
    const pre = $("model-text");
    const shown = t ? (t.cut ? "[… " + t.cut.toLocaleString() + " earlier characters not shown: open the call for all of it]\n" : "") + t.text : "";
    if (pre.textContent !== shown) { pre.textContent = shown; pre.dataset.cut = String(t ? t.cut : 0); }
  }

  function syncOptions(select, values) {
    if (select.options.length - 1 >= values.size) return;
    const have = new Set(Array.from(select.options, (o) => o.value));
    for (const v of values) if (!have.has(v)) select.add(new Option(v, v));
  }

  function renderFilters() {
    syncOptions($("filter-agent"), S.agentOptions);
    syncOptions($("filter-kind"), S.kindOptions);
    syncOptions($("text-agent"), new Set(Object.keys(S.text)));
    const dl = $("item-list");
    if (dl.childElementCount !== Math.min(S.items.known.size, 200)) {
      dl.replaceChildren(...Array.from(S.items.known).slice(0, 200).map((i) => new Option(i)));
    }
  }

  function currentFilter() {
    const v = (id) => ($(id) ? $(id).value.trim() : "");
    return { item: v("filter-item"), agent: v("filter-agent"), kind: v("filter-kind") };
  }

  function matches(ev, f) {
    return (!f.item || ev.item === f.item) && (!f.agent || ev.agent === f.agent) && (!f.kind || ev.kind === f.kind);
  }

  function refilter() {
    S.filter = currentFilter();
    S.logIdx = [];
    for (let i = 0; i < S.events.length; i++) if (matches(S.events[i], S.filter)) S.logIdx.push(i);
    $("log-body").replaceChildren();
    logView = { first: 0, last: -1 };
    follow = true;
    for (const k in dirty) dirty[k] = true;
    lastHeavy = -Infinity;
    schedule();
  }

  // The virtualised log: a spacer gives the scroller the height of every matching row;
  // the table holds only the rows in view (plus OVERSCAN), positioned at their offset.
  // Rows already in the DOM are kept as they are; only rows entering the window are
  // built and only rows leaving it are removed.
  // Layout is never read while following (the scroll position is computed, not read
  // back): reading scrollHeight after the spacer grew forced a layout per render.
  let logViewport = 0; // the scroller's clientHeight, read once per resize
  let ownScroll = -1; // the scrollTop the page set itself (its scroll event is not the reader's)

  function renderLog() {
    dirty.log = false;
    const scroller = $("log-scroll");
    const n = S.logIdx.length;
    const height = (n + 1) * ROW_H;
    $("log-spacer").style.height = height + "px";
    if (!logViewport) logViewport = scroller.clientHeight || 320;
    let top;
    if (follow) {
      top = Math.max(0, height - logViewport);
      if (ownScroll !== top) { ownScroll = top; scroller.scrollTop = top; }
    } else top = scroller.scrollTop;
    const visible = Math.ceil(logViewport / ROW_H) + 1;
    let first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    let last = Math.min(n - 1, Math.floor(top / ROW_H) + visible + OVERSCAN);
    if (first > last) { first = 0; last = -1; }
    const tbody = $("log-body");
    const old = logView;
    if (last < old.first || first > old.last || old.last < old.first) {
      tbody.replaceChildren();
      for (let i = first; i <= last; i++) tbody.appendChild(logRow(S.events[S.logIdx[i]]));
    } else {
      for (let i = old.first; i < first; i++) tbody.firstChild.remove();
      for (let i = old.last; i > last; i--) tbody.lastChild.remove();
      for (let i = Math.min(old.first, last + 1) - 1; i >= first; i--) tbody.insertBefore(logRow(S.events[S.logIdx[i]]), tbody.firstChild);
      for (let i = Math.max(old.last, first - 1) + 1; i <= last; i++) tbody.appendChild(logRow(S.events[S.logIdx[i]]));
    }
    logView = { first: first, last: last };
    // The header row is hidden but keeps the columns; rows start one row down.
    $("log").style.transform = "translateY(" + first * ROW_H + "px)";
    const lc = $("log-count");
    lc.textContent = n.toLocaleString() + " matching" + (n !== S.events.length ? " of " + S.events.length.toLocaleString() : " events");
    lc.dataset.shown = String(last - first + 1);
    lc.dataset.matching = String(n);
    $("log-latest").hidden = follow;
  }

  function logRow(ev) {
    const tr = document.createElement("tr");
    tr.className = "k-" + ev.kind;
    tr.dataset.testid = "log-row";
    tr.dataset.seq = ev.seq;
    tr.dataset.kind = ev.kind;
    tr.dataset.item = ev.item || "";
    tr.dataset.agent = ev.agent || "";
    let details = JSON.stringify(ev.payload);
    if (details.length > 300) details = details.slice(0, 300) + "…";
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

  // ---- items table -------------------------------------------------------------

  function itemDuration(r) { return r.start !== null && r.end !== null ? r.end - r.start : null; }

  function filteredItems() {
    const q = $("items-search").value.trim().toLowerCase();
    const failedOnly = $("items-failed").checked;
    const f = S.filter;
    const rows = [];
    for (const r of S.itemRows.values()) {
      if (f.item && r.id !== f.item) continue;
      if (failedOnly && !(r.status === "failed" || r.status === "aborted")) continue;
      if (q && !r.id.toLowerCase().includes(q) && !r.reason.toLowerCase().includes(q)) continue;
      rows.push(r);
    }
    return rows;
  }

  function renderItemsTable() {
    dirty.items = false;
    const rows = filteredItems();
    const k = itemsSort.key, d = itemsSort.dir;
    const val = (r) => (k === "duration" ? itemDuration(r) ?? -1 : r[k]);
    rows.sort((a, b) => { const x = val(a), y = val(b); return (x < y ? -1 : x > y ? 1 : 0) * d || (a.id < b.id ? -1 : 1); });
    const frag = document.createDocumentFragment();
    for (const r of rows.slice(0, ITEM_ROWS)) {
      const tr = document.createElement("tr");
      tr.dataset.item = r.id;
      tr.dataset.status = r.status;
      const dur = itemDuration(r);
      const cells = [[r.id], [r.status, "s-" + r.status], [r.reason], [r.attempts || ""], [dur === null ? "" : dur.toFixed(2) + " s"], ["$" + r.cost.toFixed(4)]];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = String(text);
        if (cls) td.className = cls;
        if (text === r.reason && r.reason) td.title = r.reason;
        tr.appendChild(td);
      }
      frag.appendChild(tr);
    }
    $("items-body").replaceChildren(frag);
    const c = $("items-count");
    c.textContent = "showing " + Math.min(rows.length, ITEM_ROWS) + " of " + rows.length + " items";
    c.dataset.matching = String(rows.length);
    for (const th of document.querySelectorAll("#items-table th")) {
      const b = th.querySelector("button");
      th.setAttribute("aria-sort", b.dataset.sort === k ? (d > 0 ? "ascending" : "descending") : "none");
    }
  }

  // ---- timeline ----------------------------------------------------------------

  function renderTimeline() {
    dirty.timeline = false;
    const mode = $("timeline-mode").value;
    const f = S.filter;
    const t0 = S.firstTs || 0;
    const end = Math.max(S.lastTs || 0, t0 + 0.001);
    const width = Math.max(600, $("timeline").clientWidth - 150);
    const scale = width / (end - t0);
    const keep = (x) => (!f.item || x.item === f.item) && (!f.agent || x.agent === f.agent);
    const lanes = new Map();
    let bars = 0, total = 0;
    const lane = (name) => {
      let l = lanes.get(name);
      if (!l) {
        l = document.createElement("div");
        l.className = "lane";
        l.dataset.lane = name;
        const label = document.createElement("span");
        label.className = "lane-name";
        label.textContent = name || "(run)";
        label.title = name;
        l.appendChild(label);
        lanes.set(name, l);
      }
      return l;
    };
    const bar = (l, cls, start, stop, title, open) => {
      total += 1;
      if (bars >= TIMELINE_BARS) return;
      bars += 1;
      const b = document.createElement("button");
      b.className = "tbar " + cls;
      const s = (start - t0) * scale;
      const w = Math.max(2, ((stop ?? end) - start) * scale);
      b.style.left = 140 + s + "px";
      b.style.width = w + "px";
      b.title = title;
      b.setAttribute("aria-label", title);
      b.addEventListener("click", open);
      l.appendChild(b);
      return b;
    };
    for (const inv of S.invocations) {
      if (!keep(inv)) continue;
      const name = mode === "item" ? inv.item : inv.agent;
      const took = inv.end !== null ? (inv.end - inv.start).toFixed(3) + " s" : "running";
      const b = bar(lane(name), "inv " + inv.status + (inv.retry ? " retry" : ""), inv.start, inv.end,
        inv.agent + " · " + inv.item + " · attempt " + inv.attempt + " · " + took,
        () => openDrawer({ type: "item", item: inv.item || "main" }));
      if (b) { b.dataset.kind = "invocation"; b.dataset.agent = inv.agent; b.dataset.item = inv.item; b.dataset.attempt = inv.attempt; }
    }
    for (const w of S.waits) {
      if (!keep(w)) continue;
      const name = mode === "item" ? w.item : w.agent;
      const b = bar(lane(name), "wait", w.start, w.end, "retry wait " + w.agent + " · " + w.item + (w.delay !== undefined ? " · backoff " + w.delay + " ms" : ""),
        () => openDrawer({ type: "item", item: w.item || "main" }));
      if (b) b.dataset.kind = "wait";
    }
    S.calls.forEach((c, i) => {
      if (!keep(c)) return;
      const name = mode === "item" ? c.item : c.agent;
      const lat = c.latency !== null ? (c.latency * 1000).toFixed(0) + " ms" : "waiting";
      const b = bar(lane(name), "call", c.start, c.end, "model call " + c.agent + " · " + c.item + " · turn " + c.turn + " · " + lat,
        () => openDrawer({ type: "call", call: i }));
      if (b) { b.dataset.kind = "call"; b.dataset.agent = c.agent; b.dataset.latency = c.latency === null ? "" : String(c.latency); }
    });
    const box = $("timeline");
    box.replaceChildren(...lanes.values());
    const tc = $("timeline-count");
    tc.textContent = lanes.size + " lanes · " + (bars < total ? "first " + bars + " of " : "") + total + " bars (invocations; model calls in yellow; retry waits grey) · " + (end - t0).toFixed(2) + " s";
    tc.dataset.bars = String(bars);
  }

  // ---- cost --------------------------------------------------------------------

  function renderCost() {
    dirty.cost = false;
    const f = S.filter;
    const per = new Map();
    const perItem = new Map();
    const tot = { calls: 0, input: 0, output: 0, cost: 0, latency: 0, max: 0 };
    for (const c of S.calls) {
      if (c.resp === null || (f.item && c.item !== f.item) || (f.agent && c.agent !== f.agent)) continue;
      const u = c.usage || {};
      const a = per.get(c.agent) || { calls: 0, input: 0, output: 0, cost: 0, latency: 0, max: 0 };
      for (const t of [a, tot]) {
        t.calls += 1; t.input += u.input_tokens || 0; t.output += u.output_tokens || 0; t.cost += u.cost_usd || 0;
        t.latency += c.latency || 0; t.max = Math.max(t.max, c.latency || 0);
      }
      per.set(c.agent, a);
      const it = perItem.get(c.item) || { calls: 0, tokens: 0, cost: 0 };
      it.calls += 1; it.tokens += (u.input_tokens || 0) + (u.output_tokens || 0); it.cost += u.cost_usd || 0;
      perItem.set(c.item, it);
    }
    const row = (cells, attrs) => {
      const tr = document.createElement("tr");
      for (const k in attrs || {}) tr.dataset[k] = attrs[k];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = String(c); tr.appendChild(td); }
      return tr;
    };
    const ms = (s) => (s * 1000).toFixed(0) + " ms";
    const cells = (name, t) => [name, t.calls, t.input.toLocaleString(), t.output.toLocaleString(), "$" + t.cost.toFixed(4), t.calls ? ms(t.latency / t.calls) : "", t.calls ? ms(t.max) : ""];
    $("cost-body").replaceChildren(...Array.from(per, ([name, t]) => row(cells(name, t), { agent: name, cost: t.cost.toFixed(6), calls: t.calls })));
    const total = $("cost-total");
    total.replaceChildren(...cells("total", tot).map((c) => { const td = document.createElement("td"); td.textContent = String(c); return td; }));
    total.dataset.cost = tot.cost.toFixed(6);
    total.dataset.calls = String(tot.calls);
    total.dataset.input = String(tot.input);
    const items = Array.from(perItem).sort((a, b) => b[1].cost - a[1].cost).slice(0, 50);
    $("cost-items-body").replaceChildren(...items.map(([name, t]) => row([name || "(run)", t.calls, t.tokens.toLocaleString(), "$" + t.cost.toFixed(4)], { item: name })));
  }

  // ---- human steps -------------------------------------------------------------

  function renderHuman() {
    dirty.human = false;
    const pending = Array.from(S.human.values()).filter((h) => !h.answered);
    $("human").hidden = pending.length === 0;
    const list = $("human-list");
    const have = new Set(Array.from(list.children, (li) => li.dataset.key));
    const want = new Set(pending.map((h) => h.agent + "|" + h.item + "|" + h.attempt));
    for (const li of Array.from(list.children)) if (!want.has(li.dataset.key)) li.remove();
    for (const h of pending) {
      const key = h.agent + "|" + h.item + "|" + h.attempt;
      if (have.has(key)) continue;
      list.appendChild(humanForm(h, key));
    }
  }

  function skeleton(schema) {
    if (!schema || typeof schema !== "object") return {};
    const out = {};
    for (const [name, prop] of Object.entries(schema.properties || {})) {
      const t = prop.type;
      out[name] = prop.enum ? prop.enum[0] : t === "boolean" ? false : t === "integer" || t === "number" ? 0 : t === "array" ? [] : t === "object" ? {} : "";
    }
    return out;
  }

  function humanForm(h, key) {
    const li = document.createElement("li");
    li.dataset.key = key;
    li.dataset.agent = h.agent;
    li.dataset.item = h.item;
    const head = document.createElement("div");
    head.textContent = h.agent + " · item " + h.item + " · attempt " + h.attempt + (h.payload.assignee ? " · for " + h.payload.assignee : "");
    const q = document.createElement("pre");
    q.textContent = String(h.payload.question || "");
    const form = document.createElement("form");
    const area = document.createElement("textarea");
    area.setAttribute("aria-label", "answer to " + h.agent + " for item " + h.item + " (JSON)");
    area.value = JSON.stringify(skeleton(h.payload.output_schema || h.payload.schema), null, 2);
    const by = document.createElement("input");
    by.setAttribute("aria-label", "answered by");
    by.placeholder = "your name";
    const send = document.createElement("button");
    send.type = "submit";
    send.textContent = "send answer";
    const err = document.createElement("div");
    err.className = "form-error";
    err.setAttribute("role", "alert");
    form.append(area, by, send, err);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      let answer;
      try { answer = JSON.parse(area.value); } catch (x) { err.textContent = "not JSON: " + x.message; return; }
      send.disabled = true;
      const run = config.run.id || PAGE_RUN;
      fetch(withToken("/api/runs/" + encodeURIComponent(run) + "/answer"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ item: h.item, agent: h.agent, answer: answer, by: by.value.trim() || undefined }),
      }).then((r) => r.text().then((t) => {
        if (!r.ok) throw new Error(r.status + ": " + t);
        err.textContent = "";
        li.dataset.sent = "true";
        send.textContent = "sent · waiting for the run to resume";
      })).catch((x) => { err.textContent = String(x.message || x); send.disabled = false; });
    });
    li.append(head, q, form);
    return li;
  }

  // ---- drawer ------------------------------------------------------------------

  function section(title, content) {
    const s = document.createElement("section");
    const h = document.createElement("h3");
    h.textContent = title;
    s.appendChild(h);
    if (typeof content === "string") {
      const pre = document.createElement("pre");
      pre.textContent = content;
      s.appendChild(pre);
    } else if (content) s.appendChild(content);
    return s;
  }

  const pretty = (x) => JSON.stringify(x, null, 2);

  function linkList(entries) {
    const ul = document.createElement("ul");
    for (const [text, target] of entries) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.textContent = text;
      b.addEventListener("click", () => openDrawer(target));
      li.appendChild(b);
      ul.appendChild(li);
    }
    return ul;
  }

  function openDrawer(target) {
    const d = $("drawer");
    const out = $("drawer-body");
    const parts = [];
    let title = "details";
    d.dataset.type = target.type;
    if (target.type === "event") {
      const ev = S.events[target.index];
      title = "event " + ev.seq + " · " + ev.kind;
      parts.push(section("event", pretty(ev)));
      if (ev.kind.startsWith("model_") && ev.agent) {
        const i = S.calls.findIndex((c) => c.agent === ev.agent && c.item === (ev.item || "") && c.attempt === (ev.attempt || 1) && c.turn === ((ev.payload && ev.payload.turn) || 1));
        if (i >= 0) parts.push(section("model call", linkList([["open this model call", { type: "call", call: i }]])));
      }
      if (ev.item) parts.push(section("work item", linkList([["open item " + ev.item, { type: "item", item: ev.item }]])));
    } else if (target.type === "call") {
      const c = S.calls[target.call];
      title = "model call · " + c.agent + " · " + (c.item || "run") + " · attempt " + c.attempt + " · turn " + c.turn;
      d.dataset.agent = c.agent;
      parts.push(section("latency", c.latency !== null ? (c.latency * 1000).toFixed(0) + " ms" : "no response yet"));
      const req = c.req !== null ? S.events.find((e) => e.seq === c.req) : null;
      const resp = c.resp !== null ? S.events.find((e) => e.seq === c.resp) : null;
      const sent = section("prompt and messages sent", "loading from the run store…");
      sent.dataset.testid = "drawer-request";
      parts.push(sent);
      if (req) parts.push(section("request (event)", pretty(req.payload)));
      if (resp) {
        const p = resp.payload;
        if (p.text) parts.push(section("response text", p.text));
        if (p.tool_calls && p.tool_calls.length) parts.push(section("tool calls", pretty(p.tool_calls)));
        if (p.structured !== undefined && p.structured !== null) parts.push(section("structured output", pretty(p.structured)));
        parts.push(section("response (event)", pretty(p)));
      }
      const tools = S.events.filter((e) => (e.kind === "tool_call" || e.kind === "tool_result") && e.agent === c.agent && (e.item || "") === c.item && (e.attempt || 1) === c.attempt && (!e.payload.turn || e.payload.turn === c.turn));
      if (tools.length) parts.push(section("tools", pretty(tools.map((e) => ({ kind: e.kind, payload: e.payload })))));
      const q = "?agent=" + encodeURIComponent(c.agent) + "&item=" + encodeURIComponent(c.item || "main") + "&attempt=" + c.attempt + "&turn=" + c.turn;
      getJson(API + "call" + q).then((r) => {
        const pre = sent.querySelector("pre");
        if (r.request) { pre.textContent = pretty(r.request); sent.dataset.loaded = "true"; }
        else { pre.textContent = r.why || "not recorded"; sent.dataset.loaded = "none"; }
        if (r.response && !resp) sent.after(section("response (store)", pretty(r.response)));
      }).catch((x) => { sent.querySelector("pre").textContent = "not available: " + x.message; sent.dataset.loaded = "none"; });
    } else if (target.type === "item") {
      const id = target.item;
      const r = S.itemRows.get(id) || { id: id, status: "?", reason: "", attempts: 0, cost: 0, start: null, end: null, calls: 0 };
      title = "item " + id;
      d.dataset.item = id;
      const dur = itemDuration(r);
      parts.push(section("summary", pretty({ status: r.status, failing_reason: r.reason || null, attempts: r.attempts, duration_s: dur, model_calls: r.calls, cost_usd: r.cost })));
      const evs = S.events.filter((e) => e.item === id);
      const verdicts = evs.filter((e) => e.kind === "qa_verdict" && e.payload.passed === false);
      if (verdicts.length) parts.push(section("QA issues", pretty(verdicts.map((e) => ({ agent: e.agent, attempt: e.attempt, issues: e.payload.issues })))));
      const feedback = evs.filter((e) => (e.kind === "agent_started" && e.payload.feedback) || e.kind === "retry_scheduled");
      if (feedback.length) parts.push(section("feedback", pretty(feedback.map((e) => ({ kind: e.kind, agent: e.agent, attempt: e.attempt, feedback: e.payload.feedback || e.payload.issues }))))); 
      const errors = evs.filter((e) => e.kind === "agent_failed" || e.kind === "item_aborted" || e.kind === "model_error");
      if (errors.length) parts.push(section("errors", pretty(errors.map((e) => ({ kind: e.kind, agent: e.agent, payload: e.payload })))));
      const calls = [];
      S.calls.forEach((c, i) => { if (c.item === id) calls.push([c.agent + " attempt " + c.attempt + " turn " + c.turn + (c.latency !== null ? " · " + (c.latency * 1000).toFixed(0) + " ms" : ""), { type: "call", call: i }]); });
      if (calls.length) parts.push(section("model calls", linkList(calls.slice(0, 200))));
      parts.push(section("events", linkList(evs.slice(0, 300).map((e) => [e.seq + " " + e.kind + (e.agent ? " " + e.agent : ""), { type: "event", index: S.events.indexOf(e) }]))));
    } else if (target.type === "agent") {
      const a = S.agents[target.agent];
      title = "agent " + target.agent;
      d.dataset.agent = target.agent;
      if (a) {
        parts.push(section("definition", pretty(a.spec)));
        parts.push(section("status", pretty({ status: nodeStatus(a), running: a.running, passed: a.passed, failed: a.failed, waiting: a.waiting, usage: a.usage })));
        const t = S.text[target.agent];
        if (t) parts.push(section("latest model text (" + t.key + ")", (t.cut ? "[… " + t.cut + " earlier characters not shown]\n" : "") + t.text));
        const calls = [];
        S.calls.forEach((c, i) => { if (c.agent === target.agent) calls.push([(c.item || "run") + " attempt " + c.attempt + " turn " + c.turn, { type: "call", call: i }]); });
        if (calls.length) parts.push(section("model calls (latest 100)", linkList(calls.slice(-100).reverse())));
      }
    } else if (target.type === "edge") {
      const e = config.edges.find((x) => x.id === target.edge);
      title = "edge " + target.edge;
      parts.push(section("definition", pretty(e || {})));
      if (S.routes[target.edge]) parts.push(section("taken", pretty(S.routes[target.edge])));
    }
    $("drawer-title").textContent = title;
    out.replaceChildren(...parts);
    d.hidden = false;
    $("drawer-close").focus();
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
    const st = runState();
    const wasHidden = b.hidden;
    if (S.run) {
      b.hidden = false;
      b.className = S.run.status || "";
      b.dataset.status = S.run.status || "";
      const text = "Run " + (S.run.status || "finished") + (S.run.final_state ? " · final state: " + S.run.final_state : "");
      if (b.textContent !== text) b.textContent = text;
    } else if (st === "crashed") {
      b.hidden = false;
      b.className = "crashed";
      b.dataset.status = "crashed";
      b.textContent = "Run crashed: it never finished and nothing is writing it any more (resume it: agentflow resume " + (config.run.id || "RUN") + ")";
    } else b.hidden = true;
    if (wasHidden !== b.hidden && cy) cy.resize();
  }

  // ---- runs list ---------------------------------------------------------------

  function fmtTime(t) { return t ? new Date(t * 1000).toLocaleString() : ""; }
  function fmtTook(r) {
    const end = r.finished_at || (r.state === "live" ? Date.now() / 1000 : null);
    if (!end || !r.started_at) return "";
    const s = Math.max(0, end - r.started_at);
    return s < 60 ? s.toFixed(1) + " s" : Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  }

  function renderRuns(data) {
    const tbody = $("runs-body");
    const rows = new Map(Array.from(tbody.children, (tr) => [tr.dataset.run, tr]));
    const frag = [];
    for (const r of data.runs) {
      let tr = rows.get(r.id);
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.run = r.id;
        for (let i = 0; i < 8; i++) tr.appendChild(document.createElement("td"));
        const a = document.createElement("a");
        a.href = withToken("/runs/" + encodeURIComponent(r.id));
        tr.firstChild.appendChild(a);
        tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") location.href = a.href; });
      }
      tr.dataset.status = r.status;
      tr.dataset.state = r.state;
      const cells = tr.children;
      cells[0].firstChild.textContent = r.id;
      const texts = [null, r.pipeline, r.status, fmtTime(r.started_at), fmtTook(r), r.items.passed + " / " + r.items.failed, String(r.events), "$" + Number(r.cost_usd || 0).toFixed(4)];
      for (let i = 1; i < 8; i++) if (cells[i].textContent !== texts[i]) cells[i].textContent = texts[i];
      cells[2].className = "s-" + r.status;
      frag.push(tr);
    }
    tbody.replaceChildren(...frag);
    const count = $("runs-count");
    count.textContent = data.runs.length + " runs · " + data.runs.filter((r) => r.state === "live").length + " live";
    count.dataset.count = String(data.runs.length);
  }

  function startRunsView() {
    $("runs-view").hidden = false;
    $("pipeline-name").textContent = "runs";
    $("run-state").hidden = true;
    document.title = "agentflow · runs";
    const poll = () => getJson("/api/runs").then((data) => {
      conn.connected = true;
      $("conn").textContent = "updated " + new Date().toLocaleTimeString();
      $("conn").dataset.connected = "true";
      renderRuns(data);
    }).catch((err) => {
      conn.connected = false;
      $("conn").dataset.connected = "false";
      $("conn").textContent = "DISCONNECTED · " + err.message;
    }).then(() => setTimeout(poll, POLL_MS));
    poll();
  }

  // ---- start -----------------------------------------------------------------

  function addNodeMirror(a) {
    const li = document.createElement("li");
    li.dataset.agent = a.id;
    li.dataset.status = "pending";
    li.dataset.testid = "node-state";
    $("node-states").appendChild(li);
  }

  function buildStatic() {
    $("pipeline-name").textContent = config.pipeline.name + (config.pipeline.version ? " v" + config.pipeline.version : "") + (config.pipeline_missing ? " (pipeline file not found: agents drawn from the events)" : "");
    $("run-id").textContent = config.run.id ? "run " + config.run.id : "";
    document.title = "agentflow · " + config.pipeline.name;
    for (const a of config.agents) addNodeMirror(a);
    const edges = $("edge-states");
    for (const e of config.edges) {
      const li = document.createElement("li");
      li.dataset.edge = e.id;
      li.dataset.kind = e.kind;
      li.dataset.pulses = "0";
      li.dataset.pulsing = "false";
      li.dataset.taken = "0";
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
    for (const id of ["filter-item", "filter-agent", "filter-kind"]) $(id).addEventListener("input", refilter);
    $("text-agent").addEventListener("change", schedule);
    const scroller = $("log-scroll");
    // Only the reader's own scrolling (wheel, keys, the scrollbar, touch) can stop the
    // log following the newest events; the page's own scrolls are not read back.
    let intent = -Infinity; // when the reader last scrolled (never, yet)
    const reader = () => { intent = performance.now(); };
    for (const type of ["wheel", "keydown", "pointerdown", "touchmove"]) scroller.addEventListener(type, reader, { passive: true });
    scroller.addEventListener("scroll", () => {
      if (follow && performance.now() - intent > 1000) return;
      const top = scroller.scrollTop;
      ownScroll = -1;
      follow = top + logViewport >= (S.logIdx.length + 1) * ROW_H - ROW_H;
      dirty.log = true;
      schedule();
    }, { passive: true });
    window.addEventListener("resize", () => { logViewport = 0; dirty.log = true; schedule(); });
    $("log-latest").addEventListener("click", () => { follow = true; dirty.log = true; schedule(); });
    $("log-body").addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (!tr) return;
      const seq = Number(tr.dataset.seq);
      const index = S.events[seq] && S.events[seq].seq === seq ? seq : S.events.findIndex((x) => x.seq === seq);
      if (index >= 0) openDrawer({ type: "event", index: index });
    });
    $("items-body").addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (tr) openDrawer({ type: "item", item: tr.dataset.item });
    });
    for (const b of document.querySelectorAll("#items-table th button")) {
      b.addEventListener("click", () => {
        itemsSort = { key: b.dataset.sort, dir: itemsSort.key === b.dataset.sort ? -itemsSort.dir : 1 };
        dirty.items = true;
        lastHeavy = -Infinity; // the reader asked: at once
        schedule();
      });
    }
    for (const id of ["items-search", "items-failed"]) $(id).addEventListener("input", () => { dirty.items = true; lastHeavy = -Infinity; schedule(); });
    $("timeline-mode").addEventListener("change", () => { dirty.timeline = true; lastHeavy = -Infinity; schedule(); });
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      tab.addEventListener("click", () => {
        pane = tab.dataset.pane;
        for (const t of document.querySelectorAll('[role="tab"]')) {
          const on = t === tab;
          t.setAttribute("aria-selected", String(on));
          $("pane-" + t.dataset.pane).hidden = !on;
        }
        dirty[pane === "events" ? "log" : pane] = true;
        lastHeavy = -Infinity;
        render();
      });
    }
    $("drawer-close").addEventListener("click", () => { $("drawer").hidden = true; });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("drawer").hidden = true; });
  }

  window.__agentflow = {
    view: VIEW,
    get events() { return S.events ? S.events.length : 0; },
    get kinds() { return Object.assign({}, S.kinds); },
    get state() { return S.state; },
    get runState() { return config ? runState() : "loading"; },
    get runId() { return config && config.run ? config.run.id : null; },
    get retryPulses() { return S.retryPulses; },
    get pulses() { return Object.assign({}, S.pulses); },
    get items() { const it = S.items || {}; return { created: it.created, finished: it.finished, passed: it.passed, failed: it.failed, aborted: it.aborted, completed: it.completed }; },
    get usage() { return Object.assign({}, S.usage); },
    get run() { return S.run; },
    get model() { return S.modelName; },
    get connection() { return Object.assign({}, conn); },
    get routes() { return JSON.parse(JSON.stringify(S.routes || {})); },
    get calls() { return (S.calls || []).length; },
    nodes() { const out = {}; for (const id in S.agents) out[id] = Object.assign({ passed: S.agents[id].passed, failed: S.agents[id].failed }, agentView(S.agents[id])); return out; },
    statusHistory() { const out = {}; for (const id in S.agents) out[id] = S.agents[id].history.slice(); return out; },
    graph() { return cy ? { nodes: cy.nodes().filter((n) => !n.data("box")).map((n) => n.id()), groups: cy.nodes().filter((n) => n.data("box")).map((n) => [n.id(), n.children().map((c) => c.id())]), edges: cy.edges().map((e) => e.id()), positions: cy.nodes().map((n) => [n.id(), n.position()]) } : null; },
    edgeClasses() { const out = {}; if (cy) cy.edges().forEach((e) => { out[e.id()] = e.classes().join(" "); }); return out; },
    edgeLabels() { const out = {}; if (cy) cy.edges().forEach((e) => { out[e.id()] = e.data("label"); }); return out; },
    // For the layout tests: where a node is drawn on the page, and the points of an edge.
    nodeClientPoint(id) { const n = cy.getElementById(id); const p = n.renderedPosition(); const r = $("graph").getBoundingClientRect(); return { x: r.left + p.x, y: r.top + p.y }; },
    labelBoxes() { const out = {}; cy.nodes().filter((n) => !n.data("box")).forEach((n) => { out[n.id()] = n.boundingBox({ includeNodes: false, includeEdges: false, includeLabels: true }); }); return out; },
    edgePoints(id, n) {
      const e = cy.getElementById(id); const s = e.sourceEndpoint(), t = e.targetEndpoint(); const c = e.controlPoints() || [];
      const pts = [];
      for (let i = 0; i <= n; i++) {
        const u = i / n;
        if (c.length) { const q = c[0]; pts.push({ x: (1 - u) * (1 - u) * s.x + 2 * (1 - u) * u * q.x + u * u * t.x, y: (1 - u) * (1 - u) * s.y + 2 * (1 - u) * u * q.y + u * u * t.y }); }
        else pts.push({ x: s.x + (t.x - s.x) * u, y: s.y + (t.y - s.y) * u });
      }
      return pts;
    },
    logState() { return { follow: follow, first: logView.first, last: logView.last, matching: S.logIdx.length, top: $("log-scroll").scrollTop, viewport: logViewport, ownScroll: ownScroll, dirty: dirty.log, pane: pane }; },
    openDrawer: openDrawer,
    render: render,
  };

  if (VIEW === "runs") { startRunsView(); return; }
  $("run-view").hidden = false;
  if (body.dataset.store === "true") $("home-link").textContent = "agentflow · all runs";
  getJson(API + "config")
    .then((c) => {
      config = c;
      config.run = config.run || {};
      config.run.loadedEvents = config.run.events || 0;
      resetState();
      buildStatic();
      renderLogWarning();
      buildGraph();
      render();
      connect();
      setTimeout(pollStatus, POLL_MS);
    })
    .catch((err) => { $("conn").textContent = String(err); $("run-state").dataset.state = "disconnected"; $("run-state").textContent = "CANNOT LOAD THIS RUN · " + err.message; });
})();
