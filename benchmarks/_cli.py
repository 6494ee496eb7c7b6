"""``python -m benchmarks``: start the servers, run every step, write the report.

Writes ``results.json`` (every figure's summary, the targets, the machine, one record per load
generator job), ``raw.json.gz`` (every job's samples), ``report.md`` and PNG plots into
``benchmarks/results/<timestamp>/``, and prints the report. ``--render DIR`` redoes the report
and plots of an earlier run from its files; ``--update-docs`` copies the report into
``docs/benchmarks.md``. ``--distributed`` runs only the distributed part (the Redis backend
against the in-memory one, one worker against two; see :mod:`benchmarks._distributed`) and
writes the same files, its report going to the docs' "Distributed runs" section.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import os
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from . import report
from ._distributed import (
    CONFIGS,
    DISTRIBUTED_FIGURES,
    DISTRIBUTED_SCALES,
    finished_runs_facts,
    run_distributed,
    server_warnings,
)
from ._plan import FIGURES, SCALES
from ._run import Raw, RunOptions, figures, run_suite, samples_of
from ._servers import ROOT, Server, local_specs
from ._target import Target

__all__ = ["main"]

_DOCS = ROOT / "docs" / "benchmarks.md"
_MARKERS = {
    "suite": ("<!-- results:start -->", "<!-- results:end -->"),
    "distributed": ("<!-- distributed:start -->", "<!-- distributed:end -->"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller run, well under a minute")
    size.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    p.add_argument("--repeats", type=int, help="override the scale's repeat count")
    p.add_argument("--distributed", action="store_true",
                   help="only the distributed part: Redis vs memory backend, 1 vs 2 workers")  # fmt: skip
    p.add_argument(
        "--servers",
        default="scopestream,sse-starlette,floor",
        help="local servers to run, comma-separated; the first is the subject of the ratios",
    )
    p.add_argument("--target", metavar="URL", help="an external SSE URL to measure instead")
    p.add_argument("--target-name", default="target")
    p.add_argument("--target-body", default="", help="request body for a generic target")
    p.add_argument("--target-pid", type=int, action="append", default=[],
                   help="the target's server pid(s), to read its RSS (idle streams)")  # fmt: skip
    p.add_argument("--target-keepalive", type=float, help="the target's keepalive interval, s")
    p.add_argument("--with-peers", action="store_true", help="with --target: run the peers too")
    p.add_argument("--out", type=Path, help="output directory")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and client CPUs")
    p.add_argument("--update-docs", action="store_true", help=f"rewrite the results in {_DOCS}")
    p.add_argument("--render", type=Path, metavar="DIR",
                   help="only redo the report, plots (and docs) of an earlier run's folder")  # fmt: skip
    return p


def _cpus(pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, client CPU), or no pinning on a single-CPU machine."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    os.sched_setaffinity(0, {cpus[1]})  # this orchestrator stays off the server's CPU
    return cpus[0], cpus[1]


def _sampler(raw: Raw) -> Any:
    by_key = {f.key: f for f in FIGURES}

    def samples(key: str, level: int, server: str) -> list[float]:
        fig = by_key[key]
        values = samples_of(raw, fig.group, level, server, fig.field)
        return [abs(v) * fig.scale if fig.absolute else v * fig.scale for v in values]

    return samples


def _update_docs(markdown: str, part: str) -> None:
    text = _DOCS.read_text()
    start_mark, end_mark = _MARKERS[part]
    start, end = text.index(start_mark) + len(start_mark), text.index(end_mark)
    body = markdown.split("\n", 1)[1].replace("\n## ", "\n### ")  # nest under the docs' heading
    _DOCS.write_text(text[:start] + "\n" + body.strip() + "\n" + text[end:])


def _options(args: argparse.Namespace, out_dir: Path) -> RunOptions:
    scale = SCALES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.repeats:
        scale = dataclasses.replace(scale, repeats=args.repeats, idle_repeats=args.repeats)
    server_cpu, client_cpu = _cpus(not args.no_pin)
    specs = local_specs()
    opts = RunOptions(scale, out_dir, server_cpu=server_cpu, client_cpu=client_cpu)
    if args.target:
        target = Target.from_url(args.target, name=args.target_name, body=args.target_body)
        opts.external = [Server(target.name, target, pids=args.target_pid, description=target.url)]
        opts.external_keepalive_s = args.target_keepalive
        opts.generic = target.kind == "generic"
        opts.specs = [specs[n] for n in ("sse-starlette", "floor")] if args.with_peers else []
        return opts
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = set(names) - set(specs)
    if unknown:
        raise SystemExit(f"unknown servers {sorted(unknown)}; known: {sorted(specs)}")
    opts.specs = [specs[n] for n in names]
    return opts


def _meta(opts: RunOptions, argv: list[str], started: float, load: tuple[float, ...]) -> Any:
    pinned = opts.server_cpu is not None
    return {
        "scale": opts.scale.name,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "duration_s": time.time() - started,
        "command": " ".join([".venv/bin/python -m benchmarks", *map(shlex.quote, argv)]),
        "pinning": f"servers on CPU {opts.server_cpu}, load generator on CPU {opts.client_cpu}"
        if pinned
        else "none",
        "machine": report.machine_info(ROOT),
        # Other work on the machine skews every figure: say how busy it was.
        "loadavg_before": load,
        "loadavg_after": os.getloadavg(),
        "scale_params": dataclasses.asdict(opts.scale),
    }


def _write(out_dir: Path, results: dict[str, Any], raw: Raw, *, update_docs: bool) -> str:
    """(Re)compute figures and targets from ``raw``; write every output file; return the
    markdown report."""
    part = results["meta"].get("part", "suite")
    if part == "distributed":
        results["figures"] = figures(raw, list(CONFIGS), DISTRIBUTED_FIGURES)
        results["comparisons"] = report.compare_distributed(results["figures"])
        results["server_warnings"] = server_warnings(out_dir / "server-logs")
        markdown = report.render_distributed(results)
    else:
        servers = list(results["servers"])
        results["figures"] = figures(raw, servers)
        results["targets"] = report.evaluate(results["figures"], servers[0])
        markdown = report.render(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True))
    with gzip.open(out_dir / "raw.json.gz", "wt") as f:
        json.dump(raw, f)
    (out_dir / "report.md").write_text(markdown)
    # The distributed part has tables only: its figures are few, one level each.
    plots = report.plot_all(results, _sampler(raw), out_dir) if part == "suite" else []
    if update_docs:
        _update_docs(markdown, part)
    print(f"results: {out_dir} ({len(plots)} plots)", file=sys.stderr)
    return markdown


def _load(out_dir: Path) -> tuple[dict[str, Any], Raw]:
    results = json.loads((out_dir / "results.json").read_text())
    with gzip.open(out_dir / "raw.json.gz", "rt") as f:
        loaded = json.load(f)
    # JSON made the levels strings; the figures want them as numbers again.
    raw: Raw = {
        group: {int(level): servers for level, servers in levels.items()}
        for group, levels in loaded.items()
    }
    return results, raw


def _versions() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    redis = next((w for w in out.split() if w.startswith("v=")), "v=unknown")[2:]
    found = {"redis-server": redis}
    for name in ("coredis", "trio", "hypercorn", "quart-trio"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _distributed(args: argparse.Namespace, argv: list[str], out_dir: Path) -> int:
    scale = DISTRIBUTED_SCALES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.repeats:
        scale = dataclasses.replace(scale, repeats=args.repeats)
    started, load = time.time(), os.getloadavg()
    raw, jobs = run_distributed(scale, out_dir)
    results: dict[str, Any] = {
        "meta": {
            "part": "distributed",
            "scale": scale.name,
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
            "duration_s": time.time() - started,
            "command": " ".join([".venv/bin/python -m benchmarks", *map(shlex.quote, argv)]),
            "pinning": "none (two workers need both cores; Redis and the load generator share "
            "them)",
            "machine": report.machine_info(ROOT),
            "versions": _versions(),
            "loadavg_before": load,
            "loadavg_after": os.getloadavg(),
            "scale_params": dataclasses.asdict(scale),
        },
        "configs": dict(CONFIGS),
        "finished_runs": finished_runs_facts(raw, scale),
        "jobs": jobs,
    }
    print(_write(out_dir, results, raw, update_docs=args.update_docs))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.render:
        print(_write(args.render, *_load(args.render), update_docs=args.update_docs))
        return 0
    out_dir: Path = args.out or ROOT / "benchmarks" / "results" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.distributed:
        return _distributed(args, argv, out_dir)
    opts = _options(args, out_dir)
    started, load = time.time(), os.getloadavg()
    raw, jobs = run_suite(opts)
    results: dict[str, Any] = {
        "meta": _meta(opts, argv, started, load),
        "servers": {
            **{s.name: {"description": s.description, "url": s.target.url} for s in opts.external},
            **{s.name: {"description": s.description} for s in opts.specs},
        },
        "jobs": jobs,
    }
    print(_write(out_dir, results, raw, update_docs=args.update_docs))
    return 0
