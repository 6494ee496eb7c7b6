"""The distributed part's report: every figure per configuration, then the comparisons the
Redis backend is judged by (the cost of the store, scaling with workers, the cross-worker
cancel against one Redis round trip plus the local cancel), then the machine."""

from __future__ import annotations

import math
import statistics
from typing import Any

from ._markdown import _num

__all__ = ["compare_distributed", "render_distributed"]


def _stat(figs: dict[str, Any], key: str, config: str, stat: str = "median") -> float:
    """One statistic of one figure for one configuration, at its only (or largest) level."""
    levels = figs.get(key, {}).get("levels", {})
    if not levels:
        return math.nan
    row = levels[max(levels, key=int)]
    value = row.get(config, {}).get(stat, math.nan)
    return float(value) if value is not None else math.nan


def compare_distributed(figs: dict[str, Any]) -> list[dict[str, Any]]:
    """The comparisons, each ``{"comparison", "measured", "goal", "met"}``: ``goal`` None for
    a cost that is reported with no target; ``met`` None when a figure it needs is missing or
    there is no goal."""
    out: list[dict[str, Any]] = []

    def add(comparison: str, measured: str, goal: str | None, met: bool, *parts: float) -> None:
        missing = any(math.isnan(p) or p == 0 for p in parts)
        out.append({
            "comparison": comparison,
            "measured": "n/a" if missing else measured,
            "goal": goal,
            "met": None if missing or goal is None else met,
        })  # fmt: skip

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.nan

    mem = _stat(figs, "throughput_100B", "memory-1w")
    for key, how in (
        ("throughput_100B", "as clients see it"),
        ("throughput_100B_stored", "stored"),
    ):
        red = _stat(figs, key, "redis-1w")
        add(
            f"single-stream throughput ({how}), Redis ÷ memory (1 worker)",
            f"{_num(red)} vs {_num(mem)} events/s = {ratio(red, mem):.2f}x",
            None,
            True,
            red,
            mem,
        )
    for stat, label in (("median", "p50"), ("p99", "p99")):
        mem, red = (_stat(figs, "latency", c, stat) for c in ("memory-1w", "redis-1w"))
        add(
            f"added latency {label} at {_level(figs, 'latency')} streams, Redis - memory",
            f"{_num(red)} - {_num(mem)} ms = {red - mem:+.3g} ms",
            None,
            True,
            red,
            mem,
        )
    for key, how in (("aggregate", "as clients see it"), ("aggregate_stored", "stored")):
        one, two = (_stat(figs, key, c) for c in ("redis-1w", "redis-2w"))
        add(
            f"aggregate throughput ({how}) at {_level(figs, key)} streams, 2 workers ÷ 1",
            f"{_num(two)} vs {_num(one)} events/s = {ratio(two, one):.2f}x",
            "near-linear: ≥ 1.8x",
            ratio(two, one) >= 1.8,
            one,
            two,
        )
    # The round trip a worker pays is the one through its own client, Python included.
    ping = _stat(figs, "redis_ping_store", "redis")
    for stat, label in (("median", "p50"), ("p99", "p99")):
        local, cross = (_stat(figs, "cancel", c, stat) for c in ("redis-1w", "redis-2w"))
        add(
            f"cancel → terminal {label}: cross-worker vs same-worker + one Redis round trip "
            "(PING p50 through the workers' client)",
            f"{_num(cross)} vs {_num(local)} + {_num(ping)} = {_num(local + ping)} ms",
            "within one Redis round trip plus the local cancel",
            cross <= local + ping,
            cross,
            local,
            ping,
        )
    return out


def _level(figs: dict[str, Any], key: str) -> str:
    levels = figs.get(key, {}).get("levels", {})
    return f"{max(map(int, levels)):,}" if levels else "?"


def _figure_rows(figs: dict[str, Any], configs: dict[str, str]) -> list[str]:
    rows = [
        "| figure | unit | streams | configuration | p50 | tail | samples |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, fig in figs.items():
        tail = "p1" if fig["better"] == "higher" else "p99"
        for level, row in fig["levels"].items():
            for config, stats in row.items():
                if not stats.get("n"):
                    continue
                streams = f"{int(level):,}" if int(level) else "—"
                rows.append(
                    f"| {fig['title']} (`{key}`) | {fig['unit']}, {tail} | {streams} "
                    f"| {configs.get(config, config)} | {_num(stats['median'])} "
                    f"| {_num(stats[tail])} | {stats['n']} |"
                )
    return rows


def _comparison_rows(comparisons: list[dict[str, Any]]) -> list[str]:
    rows = ["| comparison | measured | goal | verdict |", "|---|---|---|---|"]
    for c in comparisons:
        if c["goal"] is None:
            goal, verdict = "none: the cost, reported", "—"
        else:
            goal = c["goal"]
            verdict = {True: "met", False: "**missed**", None: "not measured"}[c["met"]]
        rows.append(f"| {c['comparison']} | {c['measured']} | {goal} | {verdict} |")
    return rows


def _cpu_rows(records: list[dict[str, Any]]) -> list[str]:
    """Per step and configuration, the median CPU share (100% = one core) of the load
    generator, the scopestream workers (both, for two) and Redis over its jobs."""
    shares: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in records:
        if "loadgen_cpu_share" not in r:
            continue
        cell = shares.setdefault((r["step"], r["server"]), {})
        for field in ("loadgen_cpu_share", "server_cpu_share", "redis_cpu_share"):
            if field in r:
                cell.setdefault(field, []).append(r[field])
    rows = [
        "| step | configuration | load generator | workers | Redis |",
        "|---|---|---|---|---|",
    ]
    for (step, config), cell in shares.items():
        cols = [
            f"{statistics.median(cell[f]) * 100:.0f}%" if cell.get(f) else "n/a"
            for f in ("loadgen_cpu_share", "server_cpu_share", "redis_cpu_share")
        ]
        rows.append(f"| {step} | {config} | " + " | ".join(cols) + " |")
    return rows


def _problems(results: dict[str, Any]) -> list[str]:
    """Jobs that failed or lost streams, and what the workers logged as warnings: shown, so
    that a figure missing samples says why."""
    failed = [r for r in results["jobs"] if r.get("error") or r.get("errors")]
    warnings = results.get("server_warnings", {"count": 0, "first": []})
    if not failed and not warnings["count"]:
        return ["No job failed, and the workers logged no warning.", ""]
    lines = ["## Problems seen", ""]
    for r in failed:
        what = r.get("error") or "; ".join(r["errors"])
        lines.append(f"- job `{r['step']}` on {r['server']}, repeat {r.get('repeat')}: {what}")
    if warnings["count"]:
        lines.append(f"- the workers logged {warnings['count']} warning(s) or error(s); first:")
        lines += [f"  - `{w}`" for w in warnings["first"]]
    return [*lines, ""]


def render_distributed(results: dict[str, Any]) -> str:
    meta, figs = results["meta"], results["figures"]
    machine = meta["machine"]
    load_b, load_a = meta["loadavg_before"], meta["loadavg_after"]
    runs = results.get("finished_runs", {})
    lines = [
        "# scopestream distributed benchmarks (Redis backend)",
        "",
        f"Command: `{meta['command']}` ({meta['duration_s']:.0f} s, {meta['scale']} size). "
        "Configurations: "
        + "; ".join(f"**{k}**: {v}" for k, v in results["configs"].items())
        + ". Two workers are two `hypercorn -k trio app:serve` processes on two ports sharing "
        "one `redis-server`; the load generator deals streams round-robin over them, and the "
        "`redis-2w` cancel is sent to the worker that does not serve the stream.",
        "",
        "## Comparisons",
        "",
        *_comparison_rows(results["comparisons"]),
        "",
        "## Figures",
        "",
        "Each cell is over all samples of all repeats: the median and a tail (p99 where lower "
        "is better, p1 where higher is better; throughput has one sample per job).",
        "",
        *_figure_rows(figs, results["configs"]),
        "",
    ]
    if runs:
        lines += [
            f"Finished runs measured: {runs['runs']} runs of {runs['events']} x 100 B events, "
            f"{runs['keys_per_run']:g} keys each, read once every key carried the retention "
            f"expiry ({runs['retention_s']} s; remaining {runs['ttl_s_min']:.0f}-"
            f"{runs['ttl_s_max']:.0f} s), {runs['settle_s']:.2f} s after the last client had "
            "its terminal frame (the owner's clients get events before its batched writes "
            "reach Redis).",
            "",
        ]
    lines += _problems(results)
    lines += [
        "## Where the CPU went",
        "",
        "Median CPU time over wall time of each step's jobs (100% = one core busy all the "
        "time), nothing pinned.",
        "",
        *_cpu_rows(results["jobs"]),
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']}, nproc {machine['nproc']} (both workers, Redis and the "
        "load generator share these cores: with 2 cores, two workers cannot have a core each "
        "to themselves); memory "
        f"{machine['memory']}; Linux {machine['kernel']}",
        f"- CPython {machine['python']}; "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- scopestream commit {machine['commit']}",
        f"- pinning: {meta['pinning']}",
        "- load average (1, 5, 15 min) before the run "
        + " / ".join(f"{x:.2f}" for x in load_b)
        + ", after "
        + " / ".join(f"{x:.2f}" for x in load_a)
        + " (a shared machine: other work ran beside this one)",
    ]
    return "\n".join(lines) + "\n"
