// The four wire protocols, as a client of each sees them. Each protocol says how to start a
// run, how to resume it after a reload, how to stop it, and how to read its frames into the
// page's own small vocabulary of steps:
//
//   {t: "text" | "reasoning", text}            {t: "tool-start", id, name, itemId?}
//   {t: "tool-args", id, delta}                 {t: "tool-ready", id, name, args}
//   {t: "tool-output", id, output}              {t: "ask", id, prompt, url}
//   {t: "resolved", id}                         {t: "data", name, data}
//   {t: "cursor", value}                        {t: "run", responseId}
//   {t: "notice", text}                         {t: "end"}
//   {t: "terminal", status: "completed" | "failed" | "cancelled",
//    finishReason?, code?, message?, reason?, correlationId?}
//
// A protocol that cannot carry a fact on the wire (the AI SDK's abort has no reason, its
// error no code) leaves it out; the page then shows what GET /v1/runs/{id} says.

const json = (text) => JSON.parse(text);

function runInput(opts) {
  // synthetic refuses unknown fields; every other producer gets the conversation.
  const messages = [{ role: "user", content: opts.message }];
  return opts.producer === "synthetic" ? { ...opts.params } : { messages, ...opts.params };
}

function metadataOf(opts) {
  // OpenAI metadata values are strings; the server validates them against the producer.
  return Object.fromEntries(Object.entries(opts.params).map(([k, v]) => [k, String(v)]));
}

/** The OpenAI streams announce a question as ": interaction_required {json}". */
function askFromComment(comment) {
  const prefix = "interaction_required ";
  if (!comment.startsWith(prefix)) return [];
  const info = json(comment.slice(prefix.length));
  return [{ t: "ask", id: info.interaction_id, prompt: info.prompt, url: info.response_url }];
}

const runPath = (state) => `/v1/runs/${encodeURIComponent(state.runId)}`;

export const native = {
  label: "Native runs API",
  hint: "POST /v1/runs; resumes with Last-Event-ID after a reload.",
  async start(opts, api) {
    const body = { producer: opts.producer, input: runInput(opts), on_disconnect: opts.onDisconnect };
    if (opts.background) {
      const run = await api.requestJSON("/v1/runs", { method: "POST", json: { ...body, background: true }, signal: opts.signal });
      return { runId: run.id, response: null }; // followed through the resume route
    }
    const response = await api.requestStream("/v1/runs", { method: "POST", json: { ...body, stream: true }, signal: opts.signal });
    return { runId: response.headers.get("x-run-id"), response };
  },
  resume(state) {
    const headers = state.cursor === null ? {} : { "Last-Event-ID": String(state.cursor) };
    return { path: `${runPath(state)}/events`, headers, fromStart: state.cursor === null };
  },
  cancelPath: (state) => `${runPath(state)}/cancel`,
  decoder() {
    return (frame) => {
      if (frame.comment !== undefined) return [];
      const body = json(frame.data);
      if (frame.event === "gap") {
        return [{ t: "notice", text: `Events ${body.from}–${body.to} are no longer kept by the server.` }];
      }
      if (frame.event === "slow_consumer") {
        return [{ t: "notice", text: "This page fell behind the run; resuming." }];
      }
      const d = body.data;
      const out = [];
      switch (body.type) {
        case "text.delta": out.push({ t: "text", text: d.text }); break;
        case "reasoning.delta": out.push({ t: "reasoning", text: d.text }); break;
        case "tool_call.started": out.push({ t: "tool-start", id: d.tool_call_id, name: d.name }); break;
        case "tool_call.delta": out.push({ t: "tool-args", id: d.tool_call_id, delta: d.delta }); break;
        case "tool_call.ready": out.push({ t: "tool-ready", id: d.tool_call_id, name: d.name, args: d.arguments }); break;
        case "tool.result": out.push({ t: "tool-output", id: d.tool_call_id, output: d.output }); break;
        case "interaction.required": out.push({ t: "ask", id: d.interaction_id, prompt: d.prompt, url: d.response_url }); break;
        case "interaction.resolved": out.push({ t: "resolved", id: d.interaction_id }); break;
        case "data": out.push({ t: "data", name: d.name, data: d.data }); break;
        case "run.completed": out.push({ t: "terminal", status: "completed", finishReason: d.finish_reason }); break;
        case "run.failed":
          out.push({ t: "terminal", status: "failed", code: d.error.code, message: d.error.message, correlationId: d.error.correlation_id });
          break;
        case "run.cancelled": out.push({ t: "terminal", status: "cancelled", reason: d.reason }); break;
        default: break; // run.started, steps, usage: nothing to show
      }
      out.push({ t: "cursor", value: body.seq });
      return out;
    };
  },
};

export const chat = {
  label: "OpenAI Chat Completions",
  hint: "POST /v1/chat/completions. The protocol has no resume: a reload cancels the run, and the page then shows it from the native log.",
  async start(opts, api) {
    const body = {
      model: opts.producer,
      messages: [{ role: "user", content: opts.message }],
      stream: true,
      metadata: metadataOf(opts),
    };
    const response = await api.requestStream("/v1/chat/completions", { method: "POST", json: body, signal: opts.signal });
    return { runId: response.headers.get("x-run-id"), response };
  },
  resume: () => null,
  cancelPath: (state) => `${runPath(state)}/cancel`,
  decoder() {
    const toolIds = new Map(); // a tool call's index in the chunks -> its id
    return (frame) => {
      if (frame.comment !== undefined) return askFromComment(frame.comment);
      if (frame.data === "[DONE]") return [{ t: "end" }];
      const chunk = json(frame.data);
      if (chunk.error) {
        const e = chunk.error;
        if (e.code === "cancelled") return [{ t: "terminal", status: "cancelled", message: e.message }];
        if (e.code === "gap" || e.code === "slow_consumer") return [{ t: "notice", text: e.message }];
        return [{ t: "terminal", status: "failed", code: e.code, message: e.message, correlationId: e.correlation_id }];
      }
      const out = [];
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        if (delta.content) out.push({ t: "text", text: delta.content });
        for (const call of delta.tool_calls || []) {
          if (call.id) {
            toolIds.set(call.index, call.id);
            out.push({ t: "tool-start", id: call.id, name: call.function?.name });
          }
          const args = call.function?.arguments;
          if (args) out.push({ t: "tool-args", id: toolIds.get(call.index), delta: args });
        }
        if (choice.finish_reason) out.push({ t: "terminal", status: "completed", finishReason: choice.finish_reason });
      }
      return out;
    };
  },
};

export const responses = {
  label: "OpenAI Responses",
  hint: "POST /v1/responses; resumes with ?stream=true&starting_after=N. With background, a reload does not cancel the run.",
  async start(opts, api) {
    const body = {
      model: opts.producer,
      input: opts.message,
      stream: true,
      background: opts.background,
      metadata: metadataOf(opts),
    };
    const response = await api.requestStream("/v1/responses", { method: "POST", json: body, signal: opts.signal });
    const runId = response.headers.get("x-run-id");
    return { runId, responseId: `resp_${runId.replace(/^run_/, "")}`, response };
  },
  resume(state) {
    const after = state.cursor === null ? "" : `&starting_after=${state.cursor}`;
    return { path: `/v1/responses/${state.responseId}?stream=true${after}`, headers: {}, fromStart: state.cursor === null };
  },
  cancelPath: (state) => `/v1/responses/${state.responseId}/cancel`,
  decoder() {
    return (frame) => {
      if (frame.comment !== undefined) return askFromComment(frame.comment);
      const ev = json(frame.data);
      const out = [];
      switch (ev.type) {
        case "response.output_text.delta": out.push({ t: "text", text: ev.delta }); break;
        case "response.reasoning_text.delta":
        case "response.reasoning_summary_text.delta":
          out.push({ t: "reasoning", text: ev.delta }); break;
        case "response.output_item.added":
          if (ev.item.type === "function_call") {
            out.push({ t: "tool-start", id: ev.item.call_id, name: ev.item.name, itemId: ev.item.id });
          }
          break;
        case "response.function_call_arguments.delta": out.push({ t: "tool-args", id: ev.item_id, delta: ev.delta }); break;
        case "response.function_call_arguments.done": out.push({ t: "tool-ready", id: ev.item_id, args: ev.arguments }); break;
        case "response.completed": out.push({ t: "terminal", status: "completed", finishReason: "stop" }); break;
        case "response.incomplete":
          out.push({ t: "terminal", status: "completed", finishReason: ev.response.incomplete_details?.reason || "incomplete" });
          break;
        case "response.failed":
          if (ev.response.status === "cancelled") out.push({ t: "terminal", status: "cancelled" });
          else out.push({ t: "terminal", status: "failed", code: ev.response.error?.code, message: ev.response.error?.message });
          break;
        case "error":
          out.push({ t: "notice", text: ev.message });
          if (ev.code !== "slow_consumer") return out; // a gap: the stream cannot go on
          break;
        default: break;
      }
      if (ev.sequence_number !== undefined) out.push({ t: "cursor", value: ev.sequence_number });
      return out;
    };
  },
};

export const aiSdk = {
  label: "Vercel AI SDK UI stream",
  hint: "POST /api/chat; resumes with GET /api/chat/{id}/stream (the message from its start). on_disconnect=continue keeps the run for it.",
  async start(opts, api) {
    const body = {
      id: opts.chatId,
      trigger: "submit-message",
      messages: [{ id: `m_${Date.now()}`, role: "user", parts: [{ type: "text", text: opts.message }] }],
      model: opts.producer, // a producer's name, or a model the routing table sends upstream
      metadata: opts.params,
      on_disconnect: opts.onDisconnect === "cancel" ? "cancel" : "continue",
    };
    const response = await api.requestStream("/api/chat", { method: "POST", json: body, signal: opts.signal });
    return { runId: response.headers.get("x-run-id"), response };
  },
  resume: (state) => ({ path: `/api/chat/${encodeURIComponent(state.chatId)}/stream`, headers: {}, fromStart: true }),
  cancelPath: (state) => `${runPath(state)}/cancel`,
  decoder() {
    let error = null; // an error chunk ends the message only if [DONE] follows it
    return (frame) => {
      if (frame.comment !== undefined) return [];
      const out = [];
      if (frame.data === "[DONE]") {
        if (error !== null) out.push({ t: "terminal", status: "failed", message: error });
        out.push({ t: "end" });
        return out;
      }
      const ch = json(frame.data);
      if (error !== null && ch.type !== "finish-step") {
        out.push({ t: "notice", text: error }); // the message went on: it was a gap
        error = null;
      }
      switch (ch.type) {
        case "text-delta": out.push({ t: "text", text: ch.delta }); break;
        case "reasoning-delta": out.push({ t: "reasoning", text: ch.delta }); break;
        case "tool-input-start": out.push({ t: "tool-start", id: ch.toolCallId, name: ch.toolName }); break;
        case "tool-input-delta": out.push({ t: "tool-args", id: ch.toolCallId, delta: ch.inputTextDelta }); break;
        case "tool-input-available": out.push({ t: "tool-ready", id: ch.toolCallId, name: ch.toolName, args: ch.input }); break;
        case "tool-output-available": out.push({ t: "tool-output", id: ch.toolCallId, output: ch.output }); break;
        case "data-interaction":
          if (ch.data.resolved) out.push({ t: "resolved", id: ch.id });
          else out.push({ t: "ask", id: ch.id, prompt: ch.data.prompt, url: ch.data.response_url });
          break;
        case "finish": out.push({ t: "terminal", status: "completed" }); break;
        case "abort": out.push({ t: "terminal", status: "cancelled" }); break;
        case "error": error = ch.errorText; break;
        default:
          if (ch.type.startsWith("data-")) out.push({ t: "data", name: ch.type.slice(5), data: ch.data });
      }
      return out;
    };
  },
};

export const PROTOCOLS = { native, chat, responses, ai_sdk: aiSdk };
