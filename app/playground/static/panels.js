// The side panels: the caller's recent runs (GET /v1/runs) and the server's metrics at a
// glance (GET /metrics, Prometheus text).

import { requestJSON, request } from "./api.js";
import { renderMetrics, renderRuns } from "./view.js";

/** Prometheus text exposition → [{name, labels, value}] (the subset the page reads). */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

/** The smallest bucket bound holding quantile q of the observations, or null. */
function quantileBound(buckets, count, q) {
  const bound = buckets.find((b) => b.value >= q * count);
  return bound ? bound.labels.le : null;
}

const ms = (seconds) => (seconds === "+Inf" ? "> 5 s" : `≤ ${Number(seconds) * 1000} ms`);

export function summarize(samples) {
  const one = (name) => samples.find((s) => s.name === name)?.value ?? 0;
  const prefix = "scopestream_cancel_to_terminal_seconds";
  const count = one(`${prefix}_count`);
  const buckets = samples.filter((s) => s.name === `${prefix}_bucket`);
  const outcomes = {};
  for (const s of samples.filter((s) => s.name === "scopestream_runs_total")) {
    outcomes[s.labels.outcome] = (outcomes[s.labels.outcome] || 0) + s.value;
  }
  const facts = [
    ["live runs", String(one("scopestream_live_runs")), "metric-live"],
    ["open connections", String(one("scopestream_connections")), "metric-connections"],
    ["runs ended", null],
    ...["completed", "failed", "cancelled"].map((o) => [o, String(outcomes[o] || 0), `metric-${o}`]),
    ["cancel → terminal", null],
    ["measured", String(count), "metric-cancels"],
  ];
  if (count) {
    facts.push(["mean", `${((one(`${prefix}_sum`) / count) * 1000).toFixed(2)} ms`, "metric-cancel-mean"]);
    facts.push(["p50", ms(quantileBound(buckets, count, 0.5)), "metric-cancel-p50"]);
    facts.push(["p99", ms(quantileBound(buckets, count, 0.99)), "metric-cancel-p99"]);
  }
  return facts;
}

export async function refreshMetrics() {
  const note = document.getElementById("metrics-error");
  try {
    const response = await request("/metrics");
    if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
    renderMetrics(summarize(parseMetrics(await response.text())));
    note.hidden = true;
  } catch (error) {
    note.textContent = `Metrics unavailable: ${error.message}`;
    note.hidden = false;
  }
}

export async function refreshRuns() {
  try {
    const list = await requestJSON("/v1/runs?limit=15");
    renderRuns(list.data);
  } catch {
    // the list is a convenience: a failure leaves the last one shown
  }
}
