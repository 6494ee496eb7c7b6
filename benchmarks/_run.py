"""The orchestrator: runs every step on every server, through the load generator process.

Order of work, so that servers are compared under the same conditions:

1. *stream phase*: all servers up at once (keepalives off); for each step, for each repeat,
   each server in turn (the order rotates between repeats, so none is always first);
2. *idle phase*: for each repeat, each server freshly started with a short keepalive interval,
   then idle streams opened level by level (a fresh process per repeat makes RSS growth
   comparable from one repeat to the next).

One ``python -m benchmarks.loadgen --serve`` process runs every job, one at a time; the
server's CPU time over a job and the load generator's own are read by the load generator over
the same interval.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._capacity import RATE_INTERVAL_MS, search
from ._plan import FIGURES, Figure, Scale, Step, steps
from ._servers import KEEPALIVE_OFF, ROOT, Server, ServerSpec, pin_preexec, running
from ._stats import summarise

__all__ = ["Raw", "RunOptions", "figures", "run_suite"]

# group -> level -> server -> one loadgen result per repeat
Raw = dict[str, dict[int, dict[str, list[dict[str, Any]]]]]
# (server, or None when it could not start; step; repeat; extra job parameters)
_Do = Callable[["Server | None", Step, int, dict[str, Any]], None]


@dataclass(slots=True)
class RunOptions:
    scale: Scale
    out_dir: Path
    specs: list[ServerSpec] = field(default_factory=list)  # servers to start
    external: list[Server] = field(default_factory=list)  # servers already running
    external_keepalive_s: float | None = None  # their keepalive interval, for the idle phase
    server_cpu: int | None = None
    client_cpu: int | None = None
    generic: bool = False


@dataclass(slots=True)
class _Progress:
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        print(f"[{self.done}/{self.total} {elapsed:6.1f}s] {text}", file=sys.stderr, flush=True)


def _rotate(items: Sequence[Any], by: int) -> list[Any]:
    by %= max(1, len(items))
    return [*items[by:], *items[:by]]


class _LoadGenerator:
    """The load generator process (``python -m benchmarks.loadgen --serve``), one job at a
    time over its stdin and stdout. A job that overruns gets the process killed (its whole
    group) and a fresh one started for the next job."""

    def __init__(self, cpu: int | None) -> None:
        self._cpu = cpu
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.loadgen", "--serve"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=pin_preexec(self._cpu),
            )
        return self._proc

    def run(self, job: dict[str, Any], limit_s: float) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job).encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], limit_s)
        line = proc.stdout.readline() if ready else b""
        if not line:
            self.close()
            return {"error": "load generator timed out" if not ready else "load generator died"}
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _run_job(
    loadgen: _LoadGenerator, server: Server, step: Step, extra: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """One step on one server: (the load generator's result or None, the job's record)."""
    job = {
        "scenario": step.scenario,
        "target": server.target.as_dict(),
        "params": {**step.params, **extra},
        "timeout_s": step.timeout_s,
        "server_pids": server.pids,
    }
    record: dict[str, Any] = {"step": step.name, "server": server.name}
    t0 = time.perf_counter()
    result = loadgen.run(job, step.timeout_s + 30)
    record["wall_s"] = time.perf_counter() - t0
    if "error" in result:
        record["error"] = result["error"]
        return None, record
    record["loadgen_cpu_share"] = result["loadgen"]["cpu_share"]
    if "server" in result:
        record["server_cpu_share"] = result["server"]["cpu_share"]
    if result.get("errors"):
        record["errors"] = result["errors"][:5]
    return result, record


def _store(raw: Raw, step: Step, server: str, result: dict[str, Any]) -> None:
    if step.scenario != "idle":
        raw[step.group][step.level][server].append(result)
        return
    # One idle job walks every level; file each level's part as its own result.
    for level, part in result["levels"].items():
        raw[step.group][int(level)][server].append(part)


def run_suite(opts: RunOptions) -> tuple[Raw, list[dict[str, Any]]]:
    """Run every step; return the raw results and one record per job (errors included)."""
    scale = opts.scale
    plan = steps(scale, generic=opts.generic)
    names = [spec.name for spec in opts.specs] + [s.name for s in opts.external]
    idle_ok = bool(opts.specs) or (
        opts.external_keepalive_s is not None and all(s.pids for s in opts.external)
    )
    stream_steps = [s for s in plan if s.phase == "stream"]
    idle_steps = [s for s in plan if s.phase == "idle" and idle_ok]
    capacity = not opts.generic
    h2_servers = sum(spec.http2 for spec in opts.specs) + sum(s.http2 for s in opts.external)
    jobs = sum(h2_servers if s.http2 else len(names) for s in stream_steps) * scale.repeats
    jobs += len(idle_steps) * scale.idle_repeats * len(names)
    jobs += _capacity_probes(scale) * len(names) if capacity else 0  # at most; often fewer
    progress = _Progress(jobs)
    raw: Raw = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    records: list[dict[str, Any]] = []
    logs = opts.out_dir / "server-logs"

    def do(server: Server | None, step: Step, repeat: int, extra: dict[str, Any]) -> None:
        if server is None or not server.alive():
            name = server.name if server else extra["server"]
            error = extra.get("error", "server exited")
            records.append({"step": step.name, "server": name, "error": error, "repeat": repeat})
            progress.say(f"{step.name} r{repeat} {name}: {error}")
            return
        result, record = _run_job(loadgen, server, step, extra)
        record["repeat"] = repeat
        records.append(record)
        if result is not None:
            _store(raw, step, server.name, result)
        note = record.get("error") or "; ".join(record.get("errors", [])) or "ok"
        progress.say(f"{step.name} r{repeat} {server.name}: {record.get('wall_s', 0):.1f}s {note}")

    loadgen = _LoadGenerator(opts.client_cpu)
    try:
        with contextlib.ExitStack() as stack:
            servers = list(opts.external)
            for spec in opts.specs:
                cm = running(spec, keepalive=KEEPALIVE_OFF, cpu=opts.server_cpu, log_dir=logs)
                servers.append(stack.enter_context(cm))
            for step in stream_steps:
                for repeat in range(scale.repeats):
                    for server in _rotate(servers, repeat):
                        if server.http2 or not step.http2:
                            do(server, step, repeat, {})
            if capacity:
                for server in servers:
                    _capacity(scale, server, raw, do)
        _idle_phase(opts, idle_steps, do)
    finally:
        loadgen.close()
    return raw, records


def _capacity_probes(scale: Scale) -> int:
    doublings = 0
    while scale.capacity_start << (doublings + 1) <= scale.capacity_limit:
        doublings += 1
    return doublings + 1 + scale.capacity_refine


def _capacity(scale: Scale, server: Server, raw: Raw, do: _Do) -> None:
    """Search one server's capacity (see ``benchmarks/_capacity.py``). Each probe is a latency
    job filed under ``capacity_probe``; the level found is the ``capacity`` figure's one sample,
    filed under level 0 (the table shows it as "search")."""

    def probe(level: int) -> dict[str, Any] | None:
        params = {
            "streams": level,
            "interval_ms": RATE_INTERVAL_MS,
            "window_s": scale.capacity_window_s,
            "event_bytes": 100,
        }
        step = Step("capacity_probe", level, "latency", params)
        before = len(raw["capacity_probe"][level][server.name])
        do(server, step, 0, {})
        results = raw["capacity_probe"][level][server.name]
        return results[-1] if len(results) > before else None

    best, tried = search(
        probe,
        start=scale.capacity_start,
        limit=scale.capacity_limit,
        refine=scale.capacity_refine,
    )
    probes = [{"streams": level, "held": ok, "why": why} for level, ok, why in tried]
    raw["capacity"][0][server.name].append({"max_streams": best, "probes": probes})
    print(f"capacity {server.name}: {best} streams; probes {tried}", file=sys.stderr, flush=True)


def _idle_phase(opts: RunOptions, idle_steps: list[Step], do: _Do) -> None:
    scale, logs = opts.scale, opts.out_dir / "server-logs"
    for step in idle_steps:
        keepalive = scale.idle_keepalive_s
        for repeat in range(scale.idle_repeats):
            for server in _rotate(list(opts.external), repeat):
                ext = {"server_pids": server.pids, "keepalive_s": opts.external_keepalive_s}
                do(server, step, repeat, ext)
            for spec in _rotate(opts.specs, repeat):
                try:
                    cm = running(spec, keepalive=keepalive, cpu=opts.server_cpu, log_dir=logs)
                    with cm as server:
                        do(server, step, repeat, {"server_pids": server.pids})
                except RuntimeError as exc:
                    do(None, step, repeat, {"error": str(exc), "server": spec.name})


def samples_of(raw: Raw, group: str, level: int, server: str, field_: str) -> list[float]:
    out: list[float] = []
    for result in raw.get(group, {}).get(level, {}).get(server, []):
        value = result.get(field_)
        if isinstance(value, list):
            out.extend(float(v) for v in value)
        elif isinstance(value, int | float):
            out.append(float(value))
    return out


def figures(raw: Raw, servers: list[str], figs: Sequence[Figure] = FIGURES) -> dict[str, Any]:
    """Every figure of ``figs``, at every level it was measured at, for every server (or
    configuration): a summary in the figure's unit."""
    out: dict[str, Any] = {}
    for fig in figs:
        levels: dict[str, Any] = {}
        for level in sorted(raw.get(fig.group, {})):
            row = {}
            for name in servers:
                values = samples_of(raw, fig.group, level, name, fig.field)
                values = [abs(v) * fig.scale if fig.absolute else v * fig.scale for v in values]
                row[name] = summarise(values)
                opened = samples_of(raw, fig.group, level, name, "streams")
                if opened and min(opened) < level:
                    row[name]["streams_opened_min"] = min(opened)  # it did not reach the level
            levels[str(level)] = row
        out[fig.key] = {
            "title": fig.title,
            "unit": fig.unit,
            "better": fig.better,
            "levels": levels,
        }
    return out
