// The playground's controller: start a run over the chosen protocol, apply its frames to
// the page's state, keep that state in sessionStorage (so a reload resumes from the last
// cursor), stop runs, answer their questions.
//
// The state and the cursor are saved together after every network chunk, in the same task
// that applied the chunk: a reload can only happen between two chunks, so the saved text is
// always exactly the text up to the saved cursor. Resuming asks for what follows it.

import * as api from "./api.js";
import { PROTOCOLS, native } from "./protocols.js";
import { readFrames } from "./sse.js";
import { refreshMetrics, refreshRuns } from "./panels.js";
import { renderRun, renderTranscript } from "./view.js";
import { loadProducers, readForm, restoreForm, showProducerOptions } from "./form.js";
import { applyStep } from "./steps.js";

const STORE = "scopestream.playground.run";
const RETRY_DELAYS = [250, 500, 1000, 2000, 4000];
const LABELS = Object.fromEntries(Object.entries(PROTOCOLS).map(([name, p]) => [name, p.label]));
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

let state = load();
let generation = 0; // bumped when a stream is replaced: older readers stop applying frames
let unloading = false;
let stopClickedAt = null; // performance.now() of the last Stop click, in this page only
let following = null; // aborts the requests of the stream being followed

/** Stop following the current stream (its reader stops at once, even when idle) and
 *  return the signal for the next one. */
function replaceStream() {
  following?.abort();
  following = new AbortController();
  generation += 1;
  return following.signal;
}

function load() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE));
    return saved && saved.runId ? saved : null;
  } catch {
    return null;
  }
}

function save() {
  if (unloading) return;
  if (state) sessionStorage.setItem(STORE, JSON.stringify(state));
  else sessionStorage.removeItem(STORE);
}

const handlers = { answer };

function render() {
  renderTranscript(state, handlers);
  renderRun(state, LABELS);
}

function protocolOf(s) {
  return s.via === "native" ? native : PROTOCOLS[s.protocol];
}

// -- running -------------------------------------------------------------------------

function notice(text) {
  if (!state) return;
  state.notices.push(text);
}

async function start(event) {
  event?.preventDefault();
  const opts = readForm();
  opts.signal = replaceStream();
  const gen = generation;
  stopClickedAt = null;
  state = {
    protocol: opts.protocol, producer: opts.producer, message: opts.message, chatId: opts.chatId,
    runId: null, responseId: null, via: null, cursor: null, parts: [], notices: [],
    terminal: null, server: null, phase: "starting", startedAt: Date.now(), latencyMs: null,
  };
  render();
  if (matchMedia("(max-width: 720px)").matches) {
    // One column (a phone): the run is below the form, bring it into view.
    document.querySelector(".card.run").scrollIntoView({ block: "start" });
  }
  let started;
  try {
    started = await PROTOCOLS[opts.protocol].start(opts, api);
  } catch (error) {
    if (gen !== generation) return;
    // Refused before any stream: a bad request, or a run that failed before its first
    // event (the server answers those with an HTTP error, not a 200 stream).
    state.terminal = { status: "failed", code: error.code, message: error.message, source: `HTTP ${error.status ?? "error"}, before any event` };
    state.phase = "done";
    render();
    return;
  }
  if (gen !== generation) return;
  state.runId = started.runId;
  state.responseId = started.responseId || null;
  save();
  render();
  refreshRuns();
  if (started.response) await consume(started.response, gen);
  else await resume();
}

/** Read one stream to its end, applying and saving chunk by chunk. */
async function consume(response, gen) {
  const decode = protocolOf(state).decoder();
  state.phase = "streaming";
  render();
  try {
    await readFrames(response, (frames) => {
      if (gen !== generation) return false;
      const latency = stopClickedAt === null ? null : performance.now() - stopClickedAt;
      for (const frame of frames) for (const step of decode(frame)) applyStep(state, step, latency);
      save();
      render();
      return true;
    });
  } catch {
    // the connection broke: handled below like a stream that ended early
  }
  if (gen !== generation || unloading) return;
  if (state.terminal) await confirm(gen);
  else retryLater(gen, 0);
}

/** After the terminal: what does the run's own status say? (They must agree.) */
async function confirm(gen) {
  try {
    const view = await api.requestJSON(`/v1/runs/${state.runId}`);
    if (gen !== generation) return;
    const outcome = view.outcome || {};
    const detail = outcome.reason || outcome.error?.code || outcome.finish_reason || "";
    state.server = { status: view.status, detail };
    if (!TERMINAL.has(view.status)) {
      // The stream ended with a connection error the protocol frames like a failure (the AI
      // SDK's slow-consumer end): the run goes on, so follow it again.
      state.terminal = null;
      state.server = null;
      notice("The stream ended before the run did; resuming.");
      retryLater(gen, 0);
      return;
    }
    // Facts the protocol has no slot for (the AI SDK's abort has no reason, its error no
    // code) come from the run's status, and the page says so.
    const t = state.terminal;
    const known = { code: outcome.error?.code, message: outcome.error?.message, reason: outcome.reason, finishReason: outcome.finish_reason };
    t.fromStatus = [];
    for (const [name, value] of Object.entries(known)) {
      if ((t[name] === undefined || t[name] === null) && value) {
        t[name] = value;
        t.fromStatus.push(name === "finishReason" ? "finish reason" : name);
      }
    }
  } catch (error) {
    if (gen !== generation) return;
    notice(`Could not read the run's status: ${error.message}`);
  }
  state.phase = "done";
  save();
  render();
  refreshRuns();
  refreshMetrics();
}

function retryLater(gen, attempt) {
  if (attempt >= RETRY_DELAYS.length) {
    state.phase = "disconnected";
    notice("Lost the connection to the server. Reload the page to resume.");
    save();
    render();
    return;
  }
  state.phase = "reconnecting";
  render();
  setTimeout(() => {
    if (gen === generation && !unloading) resume(attempt + 1);
  }, RETRY_DELAYS[attempt]);
}

/** Follow the run again from the saved cursor (after a reload, a lost connection, or from
 *  the recent-runs list). A protocol without resume is followed through the native log. */
async function resume(attempt = 0) {
  const signal = replaceStream();
  const gen = generation;
  state.phase = "resuming";
  render();
  let plan = protocolOf(state).resume(state);
  let response;
  try {
    response = plan ? await api.requestStream(plan.path, { headers: plan.headers, signal }) : null;
    if (gen !== generation) return;
    if (!response) {
      // No resume in this protocol, or none active (204): the native log has the whole run.
      state.via = "native";
      state.cursor = null;
      plan = native.resume(state);
      response = await api.requestStream(plan.path, { headers: plan.headers, signal });
      if (gen !== generation) return;
    }
  } catch (error) {
    if (gen !== generation) return;
    if (error instanceof api.ApiError) {
      notice(`Cannot follow this run: ${error.message}`);
      state.phase = "lost";
      save();
      render();
      return;
    }
    retryLater(gen, attempt);
    return;
  }
  if (plan.fromStart) {
    // The stream starts at the run's beginning: rebuild the answer rather than append.
    state.parts = [];
  }
  await consume(response, gen);
}

async function stop() {
  if (!state || !state.runId || state.terminal || state.stopRequested) return;
  stopClickedAt = performance.now();
  state.stopRequested = true;
  render();
  try {
    await api.requestJSON(protocolOf({ ...state, via: null }).cancelPath(state), { method: "POST" });
  } catch (error) {
    state.stopRequested = false;
    notice(`Stop failed: ${error.message}`);
    render();
  }
}

async function answer(index, value) {
  const part = state.parts[index];
  try {
    await api.requestJSON(part.url, { method: "POST", json: { response: value } });
    part.state = "answered";
    part.answer = value;
    part.error = null;
  } catch (error) {
    part.error = `${error.message}`;
    if (error.status === 409) part.state = "closed";
  }
  save();
  render();
}

function follow(runId) {
  stopClickedAt = null;
  state = {
    protocol: "native", producer: "", message: `Following ${runId}`, chatId: null,
    runId, responseId: null, via: null, cursor: null, parts: [], notices: [],
    terminal: null, server: null, phase: "resuming", startedAt: Date.now(), latencyMs: null,
  };
  save();
  resume();
}

function followFromHash() {
  const match = /^#follow=(run_\w+)$/.exec(location.hash);
  if (!match) return;
  history.replaceState(null, "", location.pathname);
  follow(match[1]);
}

// -- wiring --------------------------------------------------------------------------

function wire() {
  const form = document.getElementById("run-form");
  form.addEventListener("submit", start);
  form.addEventListener("change", showProducerOptions);
  document.getElementById("stop").addEventListener("click", stop);
  document.getElementById("runs-refresh").addEventListener("click", refreshRuns);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      start();
    } else if (event.key === "Escape" && !document.querySelector("dialog[open]")) {
      stop();
    }
  });
  const forget = document.getElementById("key-forget");
  forget.hidden = !api.storedKey();
  forget.addEventListener("click", () => {
    api.forgetKey();
    forget.hidden = true;
  });
  window.addEventListener("hashchange", followFromHash);
  window.addEventListener("pagehide", () => {
    unloading = true;
  });
  setInterval(() => {
    if (document.visibilityState === "visible") {
      refreshMetrics();
      refreshRuns();
    }
    forget.hidden = !api.storedKey();
  }, 3000);
}

async function main() {
  wire();
  render();
  await loadProducers((text) => notice(text));
  restoreForm(state);
  document.getElementById("key-forget").hidden = !api.storedKey();
  if (location.hash.startsWith("#follow=")) followFromHash();
  else if (state && !state.terminal) resume(); // a reload mid-stream: carry on from the cursor
  else if (state) render(); // a finished run shows its terminal, never "running"
  refreshRuns();
  refreshMetrics();
}

main();
