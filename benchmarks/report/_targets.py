"""The targets from the issue, each checked against a run and, where missed, by how much.

Reported, never asserted: a benchmark on a shared two-core machine is evidence, not a gate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["evaluate"]

PEER, FLOOR = "sse-starlette", "floor"


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured in this run
    detail: str


def _stat(figs: dict[str, Any], key: str, level: int, server: str, stat: str) -> float:
    try:
        return float(figs[key]["levels"][str(level)][server][stat])
    except KeyError:
        return math.nan


def _levels(figs: dict[str, Any], key: str) -> list[int]:
    return sorted(int(level) for level in figs.get(key, {}).get("levels", {}))


def _throughput(figs: dict[str, Any], key: str, label: str, subject: str) -> list[Verdict]:
    ours = _stat(figs, key, 1, subject, "median")
    peer = _stat(figs, key, 1, PEER, "median")
    floor = _stat(figs, key, 1, FLOOR, "median")
    out = []
    ratio = ours / peer
    measured = f"{ours:,.0f} vs {peer:,.0f} events/s = {ratio:.2f}x"
    if math.isnan(ratio):
        out.append(Verdict(f"{label}: >= 2x sse-starlette", "not measured", None, ""))
    else:
        short = "" if ratio >= 2 else f"missed: needs {2 / ratio - 1:.0%} more events/s"
        out.append(Verdict(f"{label}: >= 2x sse-starlette", measured, ratio >= 2, short))
    ratio = ours / floor
    measured = f"{ours:,.0f} vs {floor:,.0f} events/s = {ratio:.2f}x"
    if math.isnan(ratio):
        out.append(Verdict(f"{label}: above the floor", "not measured", None, ""))
    else:
        short = "" if ratio > 1 else f"missed: {1 - ratio:.0%} below the floor"
        out.append(Verdict(f"{label}: above the floor", measured, ratio > 1, short))
    return out


def _below(
    figs: dict[str, Any], key: str, level: int, limit: float, unit: str, target: str, subject: str
) -> Verdict:
    value = _stat(figs, key, level, subject, "p99" if unit == "ms" else "median")
    if math.isnan(value):
        return Verdict(target, "not measured", None, "")
    measured = f"{value:.3g} {unit} at {level:,} streams"
    short = "" if value < limit else f"missed by {value - limit:.3g} {unit} ({value / limit:.2f}x)"
    return Verdict(target, measured, value < limit, short)


def _nearest(levels: list[int], wanted: int) -> int:
    """The level measured closest to the one the target names (quick runs are smaller)."""
    return min(levels, key=lambda level: abs(level - wanted)) if levels else wanted


def evaluate(figs: dict[str, Any], subject: str = "scopestream") -> list[dict[str, Any]]:
    """One verdict per target, for ``subject`` against the peer and the floor."""
    verdicts = _throughput(figs, "throughput_100B", "single-stream throughput, 100 B", subject)
    verdicts += _throughput(figs, "throughput_4KiB", "single-stream throughput, 4 KiB", subject)
    verdicts.append(_below(figs, "cancel", 1, 2.0, "ms", "cancel -> terminal p99 < 2 ms", subject))
    verdicts.append(
        _below(figs, "disconnect", 1, 2.0, "ms", "disconnect -> cleanup p99 < 2 ms", subject)
    )
    ours = _stat(figs, "disconnect", 1, subject, "p99")
    peer = _stat(figs, "disconnect", 1, PEER, "p99")
    target = "disconnect -> cleanup p99 no slower than sse-starlette"
    if math.isnan(ours / peer):
        verdicts.append(Verdict(target, "not measured", None, ""))
    else:
        short = "" if ours <= peer else f"missed by {ours - peer:.3g} ms ({ours / peer:.2f}x)"
        measured = f"{ours:.3g} vs {peer:.3g} ms"
        verdicts.append(Verdict(target, measured, ours <= peer, short))
    level = _nearest(_levels(figs, "idle_memory"), 10_000)
    opened = figs.get("idle_memory", {}).get("levels", {}).get(str(level), {}).get(subject, {})
    opened_min = opened.get("streams_opened_min")
    verdict = _below(
        figs, "idle_memory", level, 12.0, "KiB", "10,000 idle streams < 12 KiB each", subject
    )
    if level != 10_000 and verdict.met is not None:
        verdict = Verdict(verdict.target, verdict.measured, verdict.met,
                          (verdict.detail + "; " if verdict.detail else "")
                          + "measured below the target's 10,000 streams")  # fmt: skip
    if opened_min is not None:
        verdict = Verdict(verdict.target, verdict.measured, False,
                          f"only {int(opened_min):,} of {level:,} streams opened in the time "
                          "allowed; " + verdict.detail)  # fmt: skip
    verdicts.append(verdict)
    level = _nearest(_levels(figs, "latency"), 100)
    verdict = _below(
        figs, "latency", level, 1.0, "ms", "added latency p99 < 1 ms at 100 streams", subject
    )
    verdicts.append(verdict)
    return [asdict(v) for v in verdicts]
