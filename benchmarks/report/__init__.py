"""Turning a run's results into a markdown report, a JSON file and PNG plots."""

from ._machine import machine_info as machine_info
from ._markdown import render as render
from ._plots import plot_all as plot_all
from ._targets import evaluate as evaluate

__all__ = ["evaluate", "machine_info", "plot_all", "render"]
