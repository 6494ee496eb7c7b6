"""The measurements, as the load generator process runs them.

Each scenario is an ``async`` function of a :class:`~._target.Target` and keyword parameters,
returning raw samples (seconds, bytes, counts) in a JSON-ready dict; statistics are the
orchestrator's business. Streams the client ends itself (idle and latency streams) are closed
with a reset, so thousands of them leave no TIME_WAIT sockets behind.

Clocks: intervals inside this process use ``time.perf_counter()``; producer-to-client and
close-to-cleanup figures compare ``time.time()`` here with ``time.time()`` in the server,
which is the same clock on one machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._client import StreamClient, open_exchange, open_stream, request
from ._client_h2 import H2Stream, H2StreamConnection, open_h2
from ._procs import tree_rss
from ._redis import used_memory
from ._target import Target
from ._wire import build_request, extract_stamp

__all__ = ["SCENARIOS"]

_DELTA = b"text.delta"
_TERMINALS = frozenset((b"run.completed", b"run.failed", b"run.cancelled"))
_TERMINAL_STATUSES = frozenset(("completed", "failed", "cancelled"))
_FOREVER = 100_000  # events: outlives the measurement, within the default output budget
_IDLE_INTERVAL_MS = 3_600_000.0  # one event, then an hour of silence but for keepalives
_MAX_SAMPLES = 50_000


def _is_event(target: Target, event: bytes, comment: bool) -> bool:
    """A producer event: ``text.delta`` on a runs target, any non-comment frame otherwise."""
    if target.kind == "runs":
        return event == _DELTA
    return not comment


def _thin(samples: list[float]) -> list[float]:
    if len(samples) <= _MAX_SAMPLES:
        return samples
    return random.Random(0).sample(samples, _MAX_SAMPLES)


def _errors(clients: Sequence[Any]) -> list[str]:
    out = [c.error for c in clients if c.error]
    out += [f"HTTP {c.status}" for c in clients if c.status not in (None, 200)]
    return out[:20]


async def _gather_limited(
    n: int, limit: int, make: Callable[[], Awaitable[None]], *, stop_at: float = float("inf")
) -> None:
    """Run ``make()`` ``n`` times, at most ``limit`` at once, starting none after ``stop_at``
    (a ``time.perf_counter()`` value)."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < stop_at:
            remaining -= 1
            await make()

    await asyncio.gather(*(worker() for _ in range(min(n, limit))))


# -- throughput -----------------------------------------------------------------------------


async def throughput(
    target: Target,
    *,
    streams: int,
    events: int,
    event_bytes: int,
    max_s: float = 60.0,
    spread: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """``streams`` concurrent streams of ``events`` events each, as fast as the server goes.
    With ``spread`` (more targets), the streams are dealt round-robin over ``target`` and
    those, as a load balancer would (several workers of one service), and the figure is their
    aggregate.

    The window runs from the first body byte of any stream to the end of the last body (or
    ``max_s``, for a generic stream that does not end); bodies are counted, not parsed, so the
    client spends a ``recv_into`` and a walk over chunk-size lines per read.
    """
    generic = target.kind == "generic"
    pool = [target, *(Target(**t) for t in spread)]
    reqs = [(t, t.stream_request(events=events, event_bytes=event_bytes)) for t in pool]
    clients = await asyncio.gather(
        *(
            open_stream(t.host, t.port, req, count_frames=generic)
            for t, req in (reqs[i % len(reqs)] for i in range(streams))
        )
    )
    await asyncio.wait([c.finished for c in clients], timeout=max_s)
    for c in clients:
        c.disconnect(reset=True)  # only the unfinished ones: a no-op for the rest
    if target.kind == "runs":
        # Servers may add frames of their own (scopestream sends a usage event); what counts
        # is the producer's events, all of them, in a stream that ended with run.completed.
        whole = [c for c in clients if b"event: run.completed" in c.counter.tail]
        events = events * len(whole)
    else:
        whole = clients
        events = sum(c.counter.frames for c in clients)
    body = sum(c.counter.bytes for c in clients)
    first, last = (
        min(c.t_first_body for c in clients if c.t_first_body),
        max(c.t_end for c in clients),
    )
    window = last - first
    # The window's ends on the wall clock too, for what happens after it in another process
    # (a store catching up with what the server already sent).
    wall_offset = time.time() - time.perf_counter()
    errors = _errors(clients) + ["stream did not complete"] * (len(clients) - len(whole))
    return {
        "events_per_s": events / window,
        "mb_per_s": body / window / 1e6,
        "events": events,
        "body_bytes": body,
        "window_s": window,
        "first_wall": first + wall_offset,
        "last_wall": last + wall_offset,
        "errors": errors[:20],
    }


# -- time to first event ----------------------------------------------------------------------


async def first_event(
    target: Target, *, concurrency: int, count: int, event_bytes: int
) -> dict[str, Any]:
    """TCP connect started -> first producer event received, on short fresh streams;
    ``concurrency`` clients open streams back to back."""
    samples: list[float] = []
    errors: list[str] = []
    req = target.stream_request(events=1, event_bytes=event_bytes)

    async def one() -> None:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[float] = loop.create_future()

        def on_frame(c: StreamClient, event: bytes, data: bytes, comment: bool) -> None:
            if not got.done() and _is_event(target, event, comment):
                got.set_result(c.recv_perf)

        t0 = time.perf_counter()
        client = await open_stream(target.host, target.port, req, on_frame)
        either: list[asyncio.Future[Any]] = [got, client.finished]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if got.done():
            samples.append(got.result() - t0)
        else:
            errors.append(client.error or f"no event (HTTP {client.status})")
        if target.kind == "runs":
            await client.finished
        else:
            client.disconnect(reset=True)

    await _gather_limited(count, concurrency, one)
    return {"ttfe_s": samples, "errors": errors[:20]}


# -- added latency ----------------------------------------------------------------------------


async def latency(
    target: Target, *, streams: int, interval_ms: float, window_s: float, event_bytes: int
) -> dict[str, Any]:
    """Producer emit -> client receive, for events emitted inside a steady-state window.

    ``streams`` streams emit one stamped event every ``interval_ms``; their starts are spread
    over one interval (or 1 ms apart at least) so they do not tick in lockstep. The window opens
    one interval after every stream has delivered its first event (stream start-up is not
    steady state) and lasts ``window_s``. Each stream has a connection of its own.
    """
    req = target.stream_request(
        events=_FOREVER, event_bytes=event_bytes, interval_ms=interval_ms, stamp=True
    )

    async def open_one(on_frame: Any) -> StreamClient:
        return await open_stream(target.host, target.port, req, on_frame)

    def close(clients: list[StreamClient]) -> None:
        for c in clients:
            c.disconnect(reset=True)

    return await _latency(target, open_one, close, streams, interval_ms, window_s)


async def latency_h2(
    target: Target,
    *,
    streams: int,
    interval_ms: float,
    window_s: float,
    event_bytes: int,
    per_connection: int,
) -> dict[str, Any]:
    """:func:`latency` with the streams multiplexed over HTTP/2 connections (h2c, prior
    knowledge), ``per_connection`` streams on each, as a browser page following several runs
    over one connection."""
    body = json.dumps({
        "producer": "synthetic",
        "input": {"events": _FOREVER, "event_bytes": event_bytes, "interval_ms": interval_ms,
                  "stamp": True},
        "stream": True,
    }).encode()  # fmt: skip
    connections: list[H2StreamConnection] = []

    async def open_one(on_frame: Any) -> H2Stream:
        if not connections or len(connections[-1].streams) >= per_connection:
            connections.append(await open_h2(target.host, target.port))
        return connections[-1].open(target.host, target.path, body, on_frame)

    def close(_streams: list[H2Stream]) -> None:
        for conn in connections:
            conn.close()

    return await _latency(target, open_one, close, streams, interval_ms, window_s)


async def _latency(
    target: Target,
    open_one: Callable[[Any], Awaitable[Any]],
    close: Callable[[list[Any]], None],
    streams: int,
    interval_ms: float,
    window_s: float,
) -> dict[str, Any]:
    interval = interval_ms / 1000
    window = [float("inf"), float("-inf")]
    samples: list[float] = []
    flowing: set[int] = set()  # id() of the clients that received an event

    def on_frame(c: Any, event: bytes, data: bytes, comment: bool) -> None:
        if event == _DELTA or (target.kind == "generic" and not comment):
            flowing.add(id(c))
            stamp = extract_stamp(data)
            if stamp is not None and window[0] <= stamp <= window[1]:
                samples.append(c.recv_wall - stamp)

    clients: list[Any] = []
    pace = max(interval / streams, 0.001)
    t0 = time.perf_counter()
    try:
        for j in range(streams):
            await asyncio.sleep(max(0.0, t0 + j * pace - time.perf_counter()))
            clients.append(await open_one(on_frame))
        give_up = time.perf_counter() + 30
        while len(flowing) < streams and time.perf_counter() < give_up:
            if any(c.finished.done() for c in clients):
                break  # a stream died: measure what is left, and report it as lost
            await asyncio.sleep(0.01)
        await asyncio.sleep(interval + 0.1)
        now = time.time()
        window[:] = [now, now + window_s]
        await asyncio.sleep(window_s + interval + 0.1)  # let the last window events arrive
        window[:] = [float("inf"), float("-inf")]
        lost = sum(1 for c in clients if c.finished.done())
    finally:
        close(clients)
    return {
        "latency_s": _thin(samples),
        "samples_total": len(samples),
        "expected_samples": int(streams * window_s / interval),
        "streams_lost": lost,
        "events_per_s": len(samples) / window_s,
        "errors": _errors(clients),
    }


# -- cancel and disconnect --------------------------------------------------------------------


class _Watch:
    """Frames of one stream, as futures: the k-th producer event, and the terminal frame."""

    def __init__(
        self,
        target: Target,
        after_events: int,
        on_comment: Callable[[StreamClient], None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.target = target
        self.after = after_events
        self.on_comment = on_comment
        self.seen = 0
        self.ready: asyncio.Future[None] = loop.create_future()
        self.terminal: asyncio.Future[tuple[bytes, float]] = loop.create_future()

    def on_frame(self, c: StreamClient, event: bytes, data: bytes, comment: bool) -> None:
        if _is_event(self.target, event, comment):
            self.seen += 1
            if self.seen >= self.after and not self.ready.done():
                self.ready.set_result(None)
        elif event in _TERMINALS and not self.terminal.done():
            self.terminal.set_result((event, c.recv_perf))
        elif comment and self.on_comment is not None:
            self.on_comment(c)


async def _open_watched(
    target: Target,
    interval_ms: float,
    after_events: int,
    patience_s: float,
    on_comment: Callable[[StreamClient], None] | None = None,
) -> tuple[StreamClient, _Watch]:
    """Open a stream of ``interval_ms``-spaced events; return once ``after_events`` arrived."""
    watch = _Watch(target, after_events, on_comment)
    req = target.stream_request(events=_FOREVER, event_bytes=100, interval_ms=interval_ms)
    client = await open_stream(target.host, target.port, req, watch.on_frame)
    try:
        async with asyncio.timeout(patience_s):
            await watch.ready
    except BaseException:
        client.disconnect(reset=True)
        raise
    return client, watch


async def cancel(
    target: Target,
    *,
    concurrency: int,
    count: int,
    interval_ms: float,
    after_events: int,
    patience_s: float = 10.0,
    cancel_via: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Cancel request written (on a connection opened beforehand) -> terminal frame received
    by the streaming client. The cancel lands at a random point of the producer's interval.
    With ``cancel_via`` (another worker of the same service) the stream is served by
    ``target`` and the cancel is sent to that other worker."""
    via = Target(**cancel_via) if cancel_via else target
    samples: list[float] = []
    outcomes: dict[str, int] = {}
    errors: list[str] = []

    async def one() -> None:
        client, watch = await _open_watched(target, interval_ms, after_events, patience_s)
        assert client.run_id is not None, "the stream carries no x-run-id header"
        path = via.run_path(client.run_id, "cancel")
        exchange = await open_exchange(via.host, via.port)
        await asyncio.sleep(random.uniform(0, interval_ms / 1000))
        t0 = time.perf_counter()
        exchange.send(build_request("POST", via.host, via.port, path))
        try:
            async with asyncio.timeout(patience_s):
                event, t1 = await watch.terminal
                status, _body = await exchange.response
        except TimeoutError:
            errors.append("no terminal frame")
            client.disconnect(reset=True)
            return
        samples.append(t1 - t0)
        key = f"{event.decode()} (cancel HTTP {status})"
        outcomes[key] = outcomes.get(key, 0) + 1
        await client.finished

    await _gather_limited(count, concurrency, one)
    return {"cancel_s": samples, "outcomes": outcomes, "errors": errors[:20]}


async def _ended_at(target: Target, run_id: str, patience_s: float) -> tuple[float, str]:
    """Poll the status route until the run is terminal: (ended_at, status or outcome)."""
    path = target.run_path(run_id)
    # The server stamps ended_at itself, so how soon we ask changes nothing but the wait.
    async with asyncio.timeout(patience_s):
        while True:
            await asyncio.sleep(0.01)
            status, body = await request(target.host, target.port, "GET", path)
            run = json.loads(body) if status == 200 else {}
            if run.get("status") in _TERMINAL_STATUSES and run.get("ended_at") is not None:
                outcome = run.get("outcome") or {}
                reason = outcome.get("reason") if isinstance(outcome, dict) else None
                return float(run["ended_at"]), f"{run['status']}/{reason}"


async def disconnect(
    target: Target,
    *,
    concurrency: int,
    count: int,
    interval_ms: float,
    after_events: int,
    patience_s: float = 10.0,
) -> dict[str, Any]:
    """Client closes its socket -> the producer's cleanup has run (``ended_at``, which the
    server stamps after cleanup and reports on its status route). The close lands at a random
    point of the producer's interval."""
    samples: list[float] = []
    outcomes: dict[str, int] = {}
    errors: list[str] = []

    async def one() -> None:
        client, _watch = await _open_watched(target, interval_ms, after_events, patience_s)
        assert client.run_id is not None, "the stream carries no x-run-id header"
        await asyncio.sleep(random.uniform(0, interval_ms / 1000))
        t_close = time.time()
        client.disconnect()
        try:
            ended, outcome = await _ended_at(target, client.run_id, patience_s)
        except TimeoutError:
            errors.append("cleanup never reported")
            return
        samples.append(ended - t_close)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    await _gather_limited(count, concurrency, one)
    return {"disconnect_s": samples, "outcomes": outcomes, "errors": errors[:20]}


# -- idle streams -----------------------------------------------------------------------------


async def idle(
    target: Target,
    *,
    levels: list[int],
    hold_s: float,
    keepalive_s: float,
    server_pids: list[int],
    settle_s: float = 0.3,
    ramp_limit_s: float = 60.0,
    connect_concurrency: int = 64,
    patience_s: float = 30.0,
    redis_port: int | None = None,
) -> dict[str, Any]:
    """Open idle streams (one event, then only keepalives) up to each level in turn (giving up
    on a level after ``ramp_limit_s``); at each, let the server settle ``settle_s``, hold the
    streams ``hold_s`` while recording keepalive arrivals, then read the server's RSS.

    Memory per stream is (RSS at the level - RSS before any idle stream) / level. Keepalive
    jitter is each gap between two keepalives on one stream minus the configured interval.
    With ``redis_port`` (a server on the Redis backend), Redis's ``used_memory`` is read beside
    the RSS, giving what each live stream costs the store as well.
    """
    marks: dict[int, list[float]] = {}
    recording = [False]

    def on_comment(c: StreamClient) -> None:
        if recording[0]:
            marks.setdefault(id(c), []).append(c.recv_perf)

    # Warm the server up (imports, caches, pools) so the baseline is the steady state.
    for _ in range(20):
        await (
            await open_stream(target.host, target.port, target.stream_request(events=1))
        ).finished
    await asyncio.sleep(0.5)
    baseline = tree_rss(server_pids)
    redis_baseline = used_memory(redis_port) if redis_port else 0
    clients: list[StreamClient] = []
    failures: list[str] = []
    out: dict[str, Any] = {"baseline_rss": baseline, "levels": {}}

    async def open_one() -> None:
        try:
            client, _watch = await _open_watched(
                target, _IDLE_INTERVAL_MS, 1, patience_s, on_comment
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            return
        clients.append(client)

    try:
        for level in levels:
            t0 = time.perf_counter()
            # A server that cannot keep up (every stream costs it a keepalive write per
            # interval) may never reach the level: measure what it did open in the time given.
            stop_at = t0 + ramp_limit_s
            await _gather_limited(
                level - len(clients), connect_concurrency, open_one, stop_at=stop_at
            )
            ramp = time.perf_counter() - t0
            await asyncio.sleep(settle_s)
            marks.clear()
            recording[0] = True
            await asyncio.sleep(hold_s)
            recording[0] = False
            rss = tree_rss(server_pids)
            jitter = [
                (b - a) - keepalive_s
                for times in marks.values()
                for a, b in itertools.pairwise(times)
            ]
            alive = sum(1 for c in clients if not c.finished.done())
            out["levels"][str(level)] = {
                "wanted": level,
                "streams": alive,
                "rss": rss,
                "per_stream_bytes": (rss - baseline) / max(1, alive),
                "jitter_s": _thin(jitter),
                "keepalives": sum(len(t) for t in marks.values()),
                "ramp_s": ramp,
            }
            if redis_port:
                # Blocking, but outside the hold: no keepalive is being timed now.
                redis_bytes = used_memory(redis_port) - redis_baseline
                out["levels"][str(level)]["redis_per_stream_bytes"] = redis_bytes / max(1, alive)
    finally:
        for c in clients:
            c.disconnect(reset=True)
    out["errors"] = failures[:20]
    return out


SCENARIOS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "throughput": throughput,
    "first_event": first_event,
    "latency": latency,
    "latency_h2": latency_h2,
    "cancel": cancel,
    "disconnect": disconnect,
    "idle": idle,
}
