"""The peer: sse-starlette's ``EventSourceResponse`` on uvicorn, streaming the same events.

Written the way most Python teams write it: an async generator per stream that yields dicts,
handed to ``EventSourceResponse``; uvicorn with its defaults (h11, the asyncio loop).

What it offers for each benchmark, stated plainly:

- **cancel**: sse-starlette has no cancel API. The nearest equivalent is the one teams build:
  a per-app registry of runs, each with an ``asyncio.Event`` that ``POST /v1/runs/{id}/cancel``
  sets. The generator waits on that event instead of sleeping between events (and checks it
  before each event), so a cancel is noticed at once, not at the next chunk; the generator then
  yields a ``run.cancelled`` frame and returns.
- **disconnect**: sse-starlette listens for ``http.disconnect`` and cancels the task group that
  drives the generator; the generator's ``finally`` is the producer's cleanup. It stamps
  ``ended_at`` there, and ``GET /v1/runs/{id}`` reports it (the side channel).
- **keepalive**: sse-starlette's ping task, with a ``: keepalive`` comment so the bytes match.

Run: ``python -m benchmarks.peers.starlette_peer --port 8001 [--keepalive 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._synthetic import SyntheticInput, delta_text, native_json

__all__ = ["build_app", "main"]

# Terminal runs are kept this many at a time for the side channel, oldest dropped first, so
# a long benchmark cannot grow the registry without bound.
_RETAINED_RUNS = 100_000


@dataclass(slots=True)
class _Run:
    run_id: str
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    status: str = "running"
    outcome: dict[str, Any] | None = None
    ended_at: float | None = None


class _Registry:
    """The app's runs: owned by the app (``app.state``), not a module global."""

    def __init__(self) -> None:
        self.runs: OrderedDict[str, _Run] = OrderedDict()

    def open(self) -> _Run:
        run = _Run(secrets.token_hex(16))
        self.runs[run.run_id] = run
        while len(self.runs) > _RETAINED_RUNS:
            self.runs.popitem(last=False)
        return run


def _event(seq: int, type_: str, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(seq), "event": type_, "data": native_json(seq, type_, run_id, data)}


async def _cancelled_within(run: _Run, seconds: float) -> bool:
    """Wait ``seconds`` or until a cancel is requested, whichever is first."""
    if seconds <= 0:
        return run.cancel_requested.is_set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await run.cancel_requested.wait()
    return run.cancel_requested.is_set()


async def _produce(run: _Run, params: SyntheticInput) -> AsyncIterator[dict[str, Any]]:
    seq = 1
    outcome: tuple[str, str, dict[str, Any]] = ("completed", "run.completed", {})
    try:
        yield _event(seq, "run.started", run.run_id, {})
        for i in range(params.events):
            if run.cancel_requested.is_set():
                outcome = ("cancelled", "run.cancelled", {"reason": "requested"})
                break
            seq += 1
            yield _event(seq, "text.delta", run.run_id, {"text": delta_text(params)})
            last = i == params.events - 1
            if not last and await _cancelled_within(run, params.interval_s):
                outcome = ("cancelled", "run.cancelled", {"reason": "requested"})
                break
        else:
            outcome = ("completed", "run.completed", {"finish_reason": "stop"})
        status, type_, data = outcome
        seq += 1
        run.status, run.outcome = status, {"type": type_, **data}
        yield _event(seq, type_, run.run_id, data)
    finally:
        # The producer's cleanup: runs on completion, on cancel, and when sse-starlette
        # cancels the generator because the client went away.
        if run.status == "running":
            run.status = "cancelled"
            run.outcome = {"type": "run.cancelled", "reason": "client_disconnected"}
        run.ended_at = time.time()


def build_app(keepalive: float) -> Starlette:
    async def create_run(request: Request) -> Response:
        params = SyntheticInput.from_request(await request.json())
        run = request.app.state.registry.open()
        return EventSourceResponse(
            _produce(run, params),
            headers={"x-run-id": run.run_id, "x-accel-buffering": "no"},
            ping=keepalive,
            sep="\n",
            ping_message_factory=lambda: ServerSentEvent(comment="keepalive", sep="\n"),
        )

    def _find(request: Request) -> _Run | None:
        registry: _Registry = request.app.state.registry
        return registry.runs.get(request.path_params["run_id"])

    async def get_run(request: Request) -> Response:
        run = _find(request)
        if run is None:
            return JSONResponse({"error": {"code": "not_found", "message": "no run"}}, 404)
        body = {"id": run.run_id, "status": run.status, "outcome": run.outcome}
        return JSONResponse({**body, "ended_at": run.ended_at})

    async def cancel_run(request: Request) -> Response:
        run = _find(request)
        if run is None:
            return JSONResponse({"error": {"code": "not_found", "message": "no run"}}, 404)
        run.cancel_requested.set()
        return JSONResponse({"id": run.run_id, "status": run.status})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/v1/runs", create_run, methods=["POST"]),
            Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
            Route("/v1/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    app.state.registry = _Registry()
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keepalive", type=float, default=3600.0, help="seconds")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvicorn.run(
        build_app(args.keepalive),
        host=args.host,
        port=args.port,
        backlog=4096,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
