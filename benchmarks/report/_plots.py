"""PNG plots (matplotlib, Agg backend): latency CDFs, and figures against stream count."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

# The backend is chosen before pyplot is imported: no display, and no GUI toolkit loaded.
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

__all__ = ["plot_all"]

_CDF_FIGURES = ("latency", "first_event", "cancel", "disconnect", "keepalive_jitter")
Samples = Callable[[str, int, str], list[float]]  # (figure key, level, server) -> samples


def _cdf(key: str, title: str, unit: str, levels: list[int], servers: list[str],
         samples: Samples, path: Path) -> None:  # fmt: skip
    fig, axes = plt.subplots(1, len(levels), figsize=(4.5 * len(levels), 3.6), squeeze=False)
    for ax, level in zip(axes[0], levels, strict=True):
        for server in servers:
            values = sorted(v for v in samples(key, level, server) if v > 0)
            if not values:
                continue
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.plot(values, ys, label=server, drawstyle="steps-post")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(unit)
        ax.set_ylabel("fraction of samples")
        ax.set_title(f"{level:,} stream{'s' if level != 1 else ''}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _against_streams(
    figs: dict[str, Any], keys: list[str], servers: list[str], path: Path, *, logy: set[str]
) -> None:
    keys = [k for k in keys if figs.get(k, {}).get("levels")]
    if not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4.8 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        spec = figs[key]
        tail = "p1" if spec["better"] == "higher" else "p99"
        levels = [int(level) for level in spec["levels"]]
        for server in servers:
            med = [spec["levels"][str(x)].get(server, {}).get("median", math.nan) for x in levels]
            low = [spec["levels"][str(x)].get(server, {}).get(tail, math.nan) for x in levels]
            (line,) = ax.plot(levels, med, marker="o", label=f"{server} p50")
            ax.plot(levels, low, marker=".", linestyle="--", color=line.get_color(),
                    label=f"{server} {tail}")  # fmt: skip
        ax.set_xscale("log")
        if key in logy:
            ax.set_yscale("log")
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel(spec["unit"])
        ax.set_title(spec["title"], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_all(results: dict[str, Any], samples: Samples, out_dir: Path) -> list[Path]:
    """Write every plot into ``out_dir``; return their paths."""
    figs, servers = results["figures"], list(results["servers"])
    written: list[Path] = []
    for key in _CDF_FIGURES:
        spec = figs.get(key)
        if not spec or not spec["levels"]:
            continue
        path = out_dir / f"cdf_{key}.png"
        levels = [int(level) for level in spec["levels"]]
        _cdf(key, spec["title"], spec["unit"], levels, servers, samples, path)
        written.append(path)
    groups = {
        "throughput.png": ["throughput_100B", "throughput_4KiB", "throughput_4KiB_mb"],
        "memory.png": ["idle_memory", "keepalive_jitter"],
        "latency_vs_streams.png": ["latency", "first_event", "cancel", "disconnect"],
    }
    logy = {"throughput_100B", "throughput_4KiB", "throughput_4KiB_mb", "keepalive_jitter",
            "latency", "first_event", "cancel", "disconnect"}  # fmt: skip
    for name, keys in groups.items():
        path = out_dir / name
        _against_streams(figs, keys, servers, path, logy=logy)
        if path.exists():
            written.append(path)
    return written
