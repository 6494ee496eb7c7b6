"""The targets, each checked against a run and, where missed, by how much: every one is a
ratio to sse-starlette on uvicorn measured in the same run.

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


def _versus(
    figs: dict[str, Any],
    key: str,
    level: int,
    stat: str,
    factor: float,
    target: str,
    subject: str,
) -> Verdict:
    """``subject``'s ``stat`` against ``factor`` times the peer's, at ``level``: at most that
    where lower is better, at least that where higher is better."""
    unit = figs.get(key, {}).get("unit", "")
    higher = figs.get(key, {}).get("better") == "higher"
    ours = _stat(figs, key, level, subject, stat)
    peer = _stat(figs, key, level, PEER, stat)
    if math.isnan(ours) or math.isnan(peer) or peer == 0:
        return Verdict(target, "not measured", None, "")
    ratio = ours / peer
    measured = f"{ours:.3g} vs {peer:.3g} {unit} = {ratio:.2f}x"
    if level:
        measured += f" at {level:,} streams"
    met = ratio >= factor if higher else ratio <= factor
    short = "" if met else f"missed: {ratio:.2f}x where the target is {factor:g}x"
    return Verdict(target, measured, met, short)


def _nearest(levels: list[int], wanted: int) -> int:
    """The level measured closest to the one the target names (quick runs are smaller)."""
    return min(levels, key=lambda level: abs(level - wanted)) if levels else wanted


def evaluate(figs: dict[str, Any], subject: str = "scopestream") -> list[dict[str, Any]]:
    """One verdict per target, for ``subject`` against the peer (the floor is in the table)."""
    verdicts = [
        _versus(figs, key, 1, "median", 3.0, f"single-stream throughput, {label}: >= 3x", subject)
        for key, label in (("throughput_100B", "100 B"), ("throughput_4KiB", "4 KiB"))
    ]
    level = _nearest(_levels(figs, "latency"), 100)
    for stat in ("median", "p99"):
        verdicts.append(_versus(figs, "latency", level, stat, 1.0,
                                f"added latency {_name(stat)} at 100 streams: no worse", subject))  # fmt: skip
    verdicts.append(_versus(figs, "capacity", 0, "median", 2.0,
                            "capacity at 20 events/s, p99 < 50 ms: >= 2x", subject))  # fmt: skip
    for wanted in (1, 10):
        level = _nearest(_levels(figs, "first_event"), wanted)
        verdicts.append(_versus(figs, "first_event", level, "median", 1.5,
                                f"time to first event p50 at {level}: within 1.5x", subject))  # fmt: skip
        verdicts.append(_versus(figs, "first_event", level, "p99", 1.0,
                                f"time to first event p99 at {level}: no worse", subject))  # fmt: skip
    for wanted in (1, 10):
        level = _nearest(_levels(figs, "cancel"), wanted)
        verdicts.append(_versus(figs, "cancel", level, "p99", 1.0,
                                f"cancel -> terminal p99 at {level}: no worse", subject))  # fmt: skip
    verdicts.append(_versus(figs, "disconnect", 1, "p99", 1.0,
                            "disconnect -> cleanup p99 at 1: no worse", subject))  # fmt: skip
    level = _nearest(_levels(figs, "idle_memory"), 10_000)
    verdict = _versus(figs, "idle_memory", level, "median", 0.6,
                      "memory per idle stream at 10,000: <= 0.6x", subject)  # fmt: skip
    opened = figs.get("idle_memory", {}).get("levels", {}).get(str(level), {}).get(subject, {})
    if level != 10_000 and verdict.met is not None:
        verdict = Verdict(verdict.target, verdict.measured, verdict.met,
                          (verdict.detail + "; " if verdict.detail else "")
                          + "measured below the target's 10,000 streams")  # fmt: skip
    if "streams_opened_min" in opened:
        verdict = Verdict(verdict.target, verdict.measured, False,
                          f"only {int(opened['streams_opened_min']):,} of {level:,} streams "
                          "opened in the time allowed; " + verdict.detail)  # fmt: skip
    verdicts.append(verdict)
    return [asdict(v) for v in verdicts]


def _name(stat: str) -> str:
    return "p50" if stat == "median" else stat
