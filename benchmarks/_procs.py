"""CPU time and resident memory of a process and all its descendants (hypercorn runs its
app in a child process, so the parent alone would miss it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psutil

__all__ = ["tree_cpu_seconds", "tree_rss"]


def _tree(pids: list[int]) -> Iterator[psutil.Process]:
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            yield root
            yield from root.children(recursive=True)


def _schedstat_seconds(pid: int) -> float:
    """On-CPU time of every thread of ``pid`` from ``/proc/<pid>/task/*/schedstat``: nanosecond
    resolution, where ``cpu_times`` counts 10 ms clock ticks (too coarse for short jobs)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of ``pids`` and their descendants (all threads)."""
    total = 0.0
    for proc in _tree(pids):
        with contextlib.suppress(psutil.NoSuchProcess, OSError):
            try:
                total += _schedstat_seconds(proc.pid)
            except FileNotFoundError:
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def tree_rss(pids: list[int]) -> int:
    """Resident set size, in bytes, of ``pids`` and their descendants."""
    total = 0
    for proc in _tree(pids):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total
