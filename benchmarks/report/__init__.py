"""Turning a run's results into a markdown report, a JSON file and PNG plots."""

from ._distributed import compare_distributed as compare_distributed
from ._distributed import render_distributed as render_distributed
from ._machine import machine_info as machine_info
from ._markdown import render as render
from ._plots import plot_all as plot_all
from ._targets import evaluate as evaluate

__all__ = [
    "compare_distributed",
    "evaluate",
    "machine_info",
    "plot_all",
    "render",
    "render_distributed",
]
