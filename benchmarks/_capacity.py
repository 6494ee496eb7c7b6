"""The capacity search: the most concurrent streams one server carries at a steady rate.

A level *holds* when, over a steady-state window, every stream stayed open, no client saw an
error, at least 90% of the expected events arrived inside the window and the p99 added latency
stayed under the limit. The search probes ``start``, doubling while levels hold (up to
``limit``), then bisects between the last level that held and the first that did not. It is
pure: :func:`search` takes the probe as a function, so its logic is tested without servers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._stats import percentile

__all__ = ["P99_LIMIT_S", "RATE_INTERVAL_MS", "holds", "search"]

RATE_INTERVAL_MS = 50.0  # 20 events/s per stream
P99_LIMIT_S = 0.050
_MIN_DELIVERED = 0.9


def holds(result: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether one latency probe's result shows the level carried, and why not."""
    if result is None:
        return False, "the probe did not finish"
    if result.get("errors"):
        return False, f"client errors: {result['errors'][:2]}"
    if result.get("streams_lost"):
        return False, f"{result['streams_lost']} streams ended early"
    expected = result.get("expected_samples", 0)
    if expected and result.get("samples_total", 0) < _MIN_DELIVERED * expected:
        return False, f"only {result.get('samples_total', 0)} of {expected} events in the window"
    p99 = percentile(sorted(result.get("latency_s", [])), 99)
    if not p99 < P99_LIMIT_S:  # NaN (no samples) does not hold either
        return False, f"p99 {p99 * 1e3:.1f} ms"
    return True, f"p99 {p99 * 1e3:.1f} ms"


def search(
    probe: Callable[[int], dict[str, Any] | None], *, start: int, limit: int, refine: int
) -> tuple[int, list[tuple[int, bool, str]]]:
    """The largest level that held (0 if even ``start`` did not), and every probe made:
    ``(level, held, why)`` in order."""
    tried: list[tuple[int, bool, str]] = []

    def attempt(level: int) -> bool:
        ok, why = holds(probe(level))
        tried.append((level, ok, why))
        return ok

    best, failed = 0, None
    level = start
    while level <= limit:
        if not attempt(level):
            failed = level
            break
        best = level
        level *= 2
    if failed is None:
        return best, tried  # held at the limit: capacity is at least that
    low, high = best, failed
    for _ in range(refine):
        if high - low <= max(1, low // 20):
            break  # within 5%: more probes would only measure noise
        middle = (low + high) // 2 if low else max(1, high // 2)
        if attempt(middle):
            low = middle
        else:
            high = middle
    return low, tried
