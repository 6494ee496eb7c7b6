"""Summary statistics. Percentiles interpolate linearly between order statistics (NumPy's
default), so a p99 over fewer than 100 samples leans on the largest ones."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "summarise"]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted samples; NaN if there are none."""
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarise(samples: Sequence[float]) -> dict[str, float]:
    """n, median, p99 and p1 (the low tail, which is the bad one for throughput), mean, min,
    max. Every value is NaN when there are no samples, so a missing figure cannot pass for a
    measured one."""
    ordered = sorted(samples)
    n = len(ordered)
    return {
        "n": n,
        "median": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "p1": percentile(ordered, 1),
        "mean": math.fsum(ordered) / n if n else math.nan,
        "min": ordered[0] if n else math.nan,
        "max": ordered[-1] if n else math.nan,
    }
