"""The markdown report: targets, one table of every figure with ratios beside each, the
client's headroom, how figures grow with streams, and the machine."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["render"]

_PEER, _FLOOR = "sse-starlette", "floor"


def _num(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def _tail(better: str) -> str:
    return "p1" if better == "higher" else "p99"


def _figure_rows(figs: dict[str, Any], servers: list[str]) -> list[str]:
    others = [s for s in (_PEER, _FLOOR) if s in servers and s != servers[0]]
    subject = servers[0]
    head = ["figure", "unit", "streams"]
    head += [f"{s} p50 / tail" for s in servers]
    head += [f"{subject} ÷ {o} (p50 / tail)" for o in others]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, fig in figs.items():
        tail = _tail(fig["better"])
        for level, row in fig["levels"].items():
            streams = f"{int(level):,}" if int(level) else "search"
            cells = [f"{fig['title']} (`{key}`)", f"{fig['unit']}, {tail}", streams]
            for s in servers:
                stats = row.get(s, {})
                cell = f"{_num(stats.get('median', math.nan))} / {_num(stats.get(tail, math.nan))}"
                if "streams_opened_min" in stats:
                    cell += f" (only {int(stats['streams_opened_min']):,} opened)"
                cells.append(cell)
            ours = row.get(subject, {})
            for o in others:
                theirs = row.get(o, {})
                cells.append(
                    f"{_ratio(ours.get('median', math.nan), theirs.get('median', math.nan))}"
                    f" / {_ratio(ours.get(tail, math.nan), theirs.get(tail, math.nan))}"
                )
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def _targets(verdicts: list[dict[str, Any]]) -> list[str]:
    rows = ["| target | measured | verdict |", "|---|---|---|"]
    for v in verdicts:
        mark = {True: "met", False: "**missed**", None: "not measured"}[v["met"]]
        detail = f" — {v['detail']}" if v["detail"] else ""
        rows.append(f"| {v['target']} | {v['measured']} | {mark}{detail} |")
    return rows


def _headroom(records: list[dict[str, Any]], servers: list[str]) -> list[str]:
    """Per step group and server: the most CPU the load generator used in any job, next to the
    server's CPU in that same job."""
    worst: dict[tuple[str, str], tuple[float, float]] = {}
    for r in records:
        if "loadgen_cpu_share" not in r:
            continue
        key = (r["step"].split("@")[0], r["server"])
        pair = (r["loadgen_cpu_share"], r.get("server_cpu_share", math.nan))
        if key not in worst or pair[0] > worst[key][0]:
            worst[key] = pair
    groups = list(dict.fromkeys(group for group, _ in worst))
    head = ["step", *[f"driving {s}: client / server" for s in servers]]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in groups:
        cells = [group]
        for s in servers:
            client, server = worst.get((group, s), (math.nan, math.nan))
            cells.append(f"{client:.0%} / {server:.0%}" if not math.isnan(client) else "n/a")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _client_note(
    figs: dict[str, Any], records: list[dict[str, Any]], servers: list[str]
) -> list[str]:
    """The evidence, in words: the client's own CPU per server, the jobs where it came close
    to a full core, and the rate the floor got out of the same client."""
    out = []
    subject = servers[0]
    for s in servers:
        shares = sorted(r["loadgen_cpu_share"] for r in records
                        if r["server"] == s and "loadgen_cpu_share" in r)  # fmt: skip
        if shares:
            out.append(f"- Driving {s}, the load generator used at most {shares[-1]:.0%} of its "
                       f"CPU in any job (median {shares[len(shares) // 2]:.0%}).")  # fmt: skip
    close = [r for r in records if r.get("loadgen_cpu_share", 0.0) >= 0.9]
    if close:
        jobs = "; ".join(
            f"{r['step']} on {r['server']} (client {r['loadgen_cpu_share']:.0%}, server "
            f"{r.get('server_cpu_share', math.nan):.0%})"
            for r in close
        )
        out.append(f"- It came within 10% of a full core in {len(close)} job(s): {jobs}. "
                   "Those figures may understate that server.")  # fmt: skip
    for key in ("throughput_100B", "throughput_4KiB", "first_event"):
        row = figs.get(key, {}).get("levels", {}).get("1", {})
        ours = row.get(subject, {}).get("median", math.nan)
        floor = row.get(_FLOOR, {}).get("median", math.nan)
        if subject == _FLOOR or math.isnan(ours) or math.isnan(floor):
            continue
        better = floor > ours if figs[key]["better"] == "higher" else floor < ours
        if better:
            out.append(f"- On `{key}` (1 stream) the same client got {_num(floor)} "
                       f"{figs[key]['unit']} from the floor against {_num(ours)} from "
                       f"{subject}: the client was not what held {subject} back.")  # fmt: skip
    return out


def _scaling(figs: dict[str, Any], servers: list[str]) -> list[str]:
    rows = [
        "| figure | streams | " + " | ".join(f"{s} p50 growth" for s in servers) + " |",
        "|" + "---|" * (2 + len(servers)),
    ]
    for key, fig in figs.items():
        levels = list(fig["levels"])
        if len(levels) < 2:
            continue
        lo, hi = fig["levels"][levels[0]], fig["levels"][levels[-1]]
        cells = [f"`{key}` ({fig['unit']})", f"{int(levels[0]):,} → {int(levels[-1]):,}"]
        for s in servers:
            cells.append(_ratio(hi.get(s, {}).get("median", math.nan),
                                lo.get(s, {}).get("median", math.nan)))  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _loads(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _machine(meta: dict[str, Any]) -> list[str]:
    m = meta["machine"]
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return [
        f"- CPU: {m['cpu_model']}, nproc {m['nproc']}; memory {m['memory']}; Linux {m['kernel']}",
        f"- {m['implementation']} {m['python']}; {pkgs}",
        f"- scopestream commit {m['commit']}",
        f"- pinning: {meta['pinning']}",
        f"- load average (1, 5, 15 min) before the run {_loads(meta['loadavg_before'])}, "
        f"after {_loads(meta['loadavg_after'])}",
    ]


def render(results: dict[str, Any]) -> str:
    meta, figs = results["meta"], results["figures"]
    servers: list[str] = list(results["servers"])
    lines = [
        f"# scopestream benchmarks: {meta['scale']} run, {meta['started']}",
        "",
        f"Command: `{meta['command']}` ({meta['duration_s']:.0f} s). "
        f"Servers: "
        + "; ".join(f"**{n}**: {s['description']}" for n, s in results["servers"].items()),
        "",
        "## Targets",
        "",
        *_targets(results["targets"]),
        "",
        "## Figures",
        "",
        "Each cell is the median and a tail over all samples of all repeats: the p99 where lower "
        "is better, the p1 where higher is better (throughput, one sample per run). Ratios are "
        f"{servers[0]} ÷ the other server, for the median and for the tail.",
        "",
        *_figure_rows(figs, servers),
        "",
        "## Is the client the bottleneck?",
        "",
        "CPU time over wall time during a job (100% = one core busy all the time): the "
        "load generator's own, and the server's whole process tree over the same interval, "
        "in the job where the load generator was busiest. The load generator and the servers "
        "are pinned to different CPUs when there are two or more.",
        "",
        *_headroom(results["jobs"], servers),
        "",
        *_client_note(figs, results["jobs"], servers),
        "",
        "## Growth with the number of streams",
        "",
        "Median at the largest level ÷ median at the smallest.",
        "",
        *_scaling(figs, servers),
        "",
        "## Machine",
        "",
        *_machine(meta),
        "",
    ]
    errors = [r for r in results["jobs"] if r.get("error") or r.get("errors")]
    if errors:
        lines += ["## Errors", ""]
        for r in errors:
            lines.append(f"- {r['step']} on {r['server']}: {r.get('error') or r.get('errors')}")
        lines.append("")
    return "\n".join(lines)
