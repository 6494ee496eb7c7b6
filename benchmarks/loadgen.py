"""The load generator: one process, one job, one JSON answer.

Reads a job from stdin::

    {"scenario": "latency", "target": {...Target fields...}, "params": {...},
     "timeout_s": 60, "server_pids": [1234]}

runs it on an asyncio loop (protocol callbacks over raw non-blocking sockets, see
:mod:`benchmarks._client`), and writes the scenario's samples to stdout, plus its own CPU time
and wall time and, given ``server_pids``, the server's CPU time over the same interval, so
the report can show which of the two was the bottleneck::

    python -m benchmarks.loadgen < job.json > result.json

With ``--serve`` it reads one job per line and answers one line each, until stdin closes;
that is how the orchestrator drives it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

from ._procs import tree_cpu_seconds
from ._scenarios import SCENARIOS
from ._target import Target

__all__ = ["main", "run_job"]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job; raises ``TimeoutError`` past ``timeout_s``."""
    target = Target(**job["target"])
    scenario = SCENARIOS[job["scenario"]]
    server_pids: list[int] = job.get("server_pids", [])
    cpu0, server0, wall0 = _cpu_seconds(), tree_cpu_seconds(server_pids), time.perf_counter()
    async with asyncio.timeout(job.get("timeout_s", 300)):
        result = await scenario(target, **job.get("params", {}))
    wall = time.perf_counter() - wall0
    cpu, server = _cpu_seconds() - cpu0, tree_cpu_seconds(server_pids) - server0
    result["loadgen"] = {"cpu_s": cpu, "wall_s": wall, "cpu_share": cpu / wall}
    if server_pids:
        # Over exactly the same interval, so the two shares can be set side by side.
        result["server"] = {"cpu_s": server, "cpu_share": server / wall}
    return result


def _serve() -> None:
    """One job per line in, one result per line out, until stdin closes. A failed job answers
    ``{"error": ...}`` and the process carries on: one process serves a whole benchmark run, so
    interpreter start-up is paid once, not per job."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            result = asyncio.run(run_job(json.loads(line)))
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def main() -> None:
    # Thousands of streams need thousands of descriptors: take the hard limit.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if "--serve" in sys.argv[1:]:
        _serve()
        return
    json.dump(asyncio.run(run_job(json.load(sys.stdin))), sys.stdout)


if __name__ == "__main__":
    main()
