// Drawing the page from its state. Text from the server only ever goes into textContent:
// nothing a run emits is parsed as HTML.

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const pretty = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));

function askText(part) {
  switch (part.state) {
    case "answered": return `Answered: ${pretty(part.answer ?? "")}`;
    case "timed out": return "This question timed out: the run failed with interaction_timeout.";
    case "cancelled": return "This question was cancelled with its run.";
    case "closed": return "This question is no longer open.";
    default: return "";
  }
}

function partNode(part, index, handlers) {
  switch (part.kind) {
    case "text":
      return el("div", { class: "part part-text", text: part.text });
    case "reasoning":
      return el("details", { class: "part part-reasoning", open: "" },
        el("summary", { text: "Reasoning" }), el("div", { class: "reasoning-text", text: part.text }));
    case "tool":
      return el("div", { class: "part part-tool" },
        el("div", { class: "tool-head" }, el("span", { class: "tool-icon", "aria-hidden": "true", text: "⚙" }),
          el("strong", { text: part.name || "tool" }), el("code", { class: "muted", text: part.id })),
        el("div", { class: "tool-label", text: "arguments" }),
        el("pre", { class: "tool-args", text: pretty(part.args || "") }),
        part.output === undefined ? null : el("div", { class: "tool-label", text: "result" }),
        part.output === undefined ? null : el("pre", { class: "tool-output", text: pretty(part.output) }));
    case "data":
      return el("div", { class: "part part-data" }, el("code", { text: `data-${part.name}` }),
        el("pre", { text: pretty(part.data) }));
    case "ask": {
      const box = el("div", { class: "part part-ask", "data-state": part.state, "data-interaction": part.id },
        el("div", { class: "ask-title", text: "The run asks" }), el("p", { class: "ask-prompt", text: part.prompt }));
      if (part.state === "pending") {
        const input = el("input", { class: "ask-input", "aria-label": "Your answer", placeholder: "Your answer" });
        const form = el("form", { class: "ask-form" }, input,
          el("button", { type: "submit", class: "primary", text: "Answer" }));
        form.addEventListener("submit", (event) => {
          event.preventDefault();
          handlers.answer(index, input.value);
        });
        box.append(form);
      } else {
        box.append(el("p", { class: "ask-state", text: askText(part) }));
      }
      if (part.error) box.append(el("p", { class: "ask-error", text: part.error }));
      return box;
    }
    default:
      return el("div");
  }
}

/** The transcript, rebuilt part by part: unchanged parts keep their nodes (and focus). */
export function renderTranscript(state, handlers) {
  const box = $("transcript");
  if (!state) {
    box.replaceChildren(el("p", { class: "empty", text: "Pick a protocol and a producer, type a message and press Send." }));
    box.dataset.key = "";
    return;
  }
  const key = `${state.startedAt}`;
  if (box.dataset.key !== key) {
    box.replaceChildren(el("div", { class: "bubble user", text: state.message || "(no message)" }),
      el("div", { class: "bubble assistant" }));
    box.dataset.key = key;
  }
  const assistant = box.querySelector(".bubble.assistant");
  const nodes = assistant.children;
  state.parts.forEach((part, index) => {
    const signature = JSON.stringify(part);
    const existing = nodes[index];
    if (existing && existing.dataset.sig === signature) return;
    const node = partNode(part, index, handlers);
    node.dataset.sig = signature;
    if (existing) existing.replaceWith(node);
    else assistant.append(node);
  });
  while (nodes.length > state.parts.length) nodes[nodes.length - 1].remove();
  if (!state.parts.length && !state.terminal) {
    assistant.replaceChildren(el("span", { class: "typing", text: "…" }));
  }
}

export function statusOf(state) {
  if (!state) return "idle";
  if (state.terminal) return state.terminal.status;
  if (state.parts.some((p) => p.kind === "ask" && p.state === "pending")) return "awaiting_input";
  return state.phase;
}

function sourceOf(terminal) {
  if (terminal.source) return terminal.source;
  const filled = terminal.fromStatus || [];
  return filled.length
    ? `terminal from the stream; ${filled.join(", ")} from GET /v1/runs/{id}`
    : "terminal from the stream";
}

function terminalNode(state) {
  const t = state.terminal;
  const rows = [];
  const row = (label, id, value) => {
    if (value !== undefined && value !== null && value !== "") {
      rows.push(el("div", {}, el("dt", { text: label }), el("dd", { id, text: String(value) })));
    }
  };
  row("finish reason", "terminal-finish", t.finishReason);
  row("code", "terminal-code", t.code);
  row("message", "terminal-message", t.message);
  row("reason", "terminal-reason", t.reason);
  row("correlation id", "terminal-correlation", t.correlationId);
  if (state.latencyMs !== null && state.latencyMs !== undefined) {
    row("stop → terminal", "stop-latency", `${state.latencyMs.toFixed(1)} ms`);
  }
  const head = el("div", { class: "terminal-head" },
    el("span", { class: "badge", "data-status": t.status, id: "terminal-status", text: t.status }),
    el("span", { class: "muted", text: sourceOf(t) }));
  const server = state.server
    ? el("p", { class: "server-check", id: "server-status", "data-status": state.server.status,
        "data-agrees": String(state.server.status === t.status),
        text: `GET /v1/runs says: ${state.server.status}${state.server.detail ? ` (${state.server.detail})` : ""}` })
    : null;
  return [head, el("dl", { class: "terminal-facts" }, ...rows), server];
}

export function renderRun(state, labels) {
  const status = statusOf(state);
  const badge = $("run-status");
  badge.textContent = status.replace("_", " ");
  badge.dataset.status = status;
  $("run-id").textContent = state?.runId || "—";
  $("run-protocol").textContent = state ? labels[state.protocol] + (state.via === "native" ? " (replayed from the native log)" : "") : "—";
  $("run-cursor").textContent = state?.cursor ?? "—";
  const terminal = $("terminal");
  if (state?.terminal) {
    terminal.hidden = false;
    terminal.dataset.status = state.terminal.status;
    terminal.replaceChildren(...terminalNode(state).filter(Boolean));
  } else {
    terminal.hidden = true;
    terminal.replaceChildren();
  }
  $("notices").replaceChildren(...(state?.notices || []).map((text) => el("p", { class: "notice", text })));
  $("stop").disabled = !state || !state.runId || Boolean(state.terminal) || Boolean(state.stopRequested);
}

export function renderRuns(list) {
  const rows = list.map((run) => el("tr", { "data-run": run.id },
    el("td", {}, el("span", { class: "badge", "data-status": run.status, text: run.status.replace("_", " ") })),
    el("td", { text: run.producer }),
    el("td", { text: new Date((run.started_at || run.created_at) * 1000).toLocaleTimeString([], { hour12: false }) }),
    el("td", { class: "num", text: String(run.last_seq) }),
    el("td", {}, el("a", { href: `#follow=${run.id}`, class: "follow", title: `Follow ${run.id}`, "aria-label": `Follow run ${run.id}`, text: "→" }))));
  $("runs").tBodies[0].replaceChildren(...rows);
  if (!rows.length) {
    $("runs").tBodies[0].append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No runs yet." })));
  }
}

export function renderMetrics(facts) {
  $("metrics").replaceChildren(...facts.map(([label, value, id]) =>
    value === null
      ? el("div", { class: "metrics-group" }, el("dt", { text: label }))
      : el("div", {}, el("dt", { text: label }), el("dd", { id, text: value }))));
}
