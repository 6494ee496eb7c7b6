// Applying a stream's steps (see protocols.js) to the page's state. No I/O, no DOM: the
// state is plain data, saved as it is to sessionStorage.

function findTool(state, id) {
  return state.parts.find((p) => p.kind === "tool" && (p.id === id || p.itemId === id));
}

function appendText(state, kind, text) {
  const last = state.parts[state.parts.length - 1];
  if (last && last.kind === kind) last.text += text;
  else state.parts.push({ kind, text });
}

/** The terminal: once per run (anything after it is not shown as one). A question still
 *  open then says why it closed. `latencyMs` is the time since Stop was clicked, if it was. */
function settle(state, terminal, latencyMs) {
  if (state.terminal) return;
  const { t, ...facts } = terminal;
  state.terminal = facts;
  if (latencyMs !== null) state.latencyMs = latencyMs;
  for (const part of state.parts) {
    if (part.kind !== "ask" || part.state !== "pending") continue;
    if (facts.status === "cancelled") part.state = "cancelled";
    else if (facts.code === "interaction_timeout") part.state = "timed out";
    else part.state = "closed";
  }
}

export function applyStep(state, step, latencyMs = null) {
  switch (step.t) {
    case "text": appendText(state, "text", step.text); break;
    case "reasoning": appendText(state, "reasoning", step.text); break;
    case "tool-start":
      if (!findTool(state, step.id)) {
        state.parts.push({ kind: "tool", id: step.id, itemId: step.itemId, name: step.name, args: "" });
      }
      break;
    case "tool-args": {
      const tool = findTool(state, step.id);
      if (tool) tool.args += step.delta;
      break;
    }
    case "tool-ready": {
      const tool = findTool(state, step.id);
      if (tool) {
        tool.args = step.args;
        if (step.name) tool.name = step.name;
      }
      break;
    }
    case "tool-output": {
      const tool = findTool(state, step.id);
      if (tool) tool.output = step.output;
      break;
    }
    case "ask":
      if (!state.parts.some((p) => p.kind === "ask" && p.id === step.id)) {
        state.parts.push({ kind: "ask", id: step.id, prompt: step.prompt, url: step.url, state: "pending" });
      }
      break;
    case "resolved": {
      const ask = state.parts.find((p) => p.kind === "ask" && p.id === step.id);
      if (ask && ask.state === "pending") ask.state = "answered";
      break;
    }
    case "data": state.parts.push({ kind: "data", name: step.name, data: step.data }); break;
    case "cursor": state.cursor = step.value; break;
    case "notice": state.notices.push(step.text); break;
    case "terminal": settle(state, step, latencyMs); break;
    default: break;
  }
}
