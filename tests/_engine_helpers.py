"""Small helpers shared by the engine tests."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from engine import Connection, Event, Producer, Run, RunContext, RunHandle
from engine.protocols.native import NativeProjection

from ._sse import native_events


def assert_one_terminal(run: Run) -> Event:
    """The log's seqs are 1..n without gaps, it holds exactly one terminal, last, and the
    run's status and outcome agree with it."""
    events = run.log.all()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    terminals = [e for e in events if e.terminal]
    assert len(terminals) == 1, terminals
    assert events[-1] is terminals[0]
    assert run.outcome is not None
    assert run.status is run.outcome.status
    assert terminals[0].type is run.outcome.event_type
    assert dict(terminals[0].data) == run.outcome.as_dict()
    return terminals[0]


async def read_all(run: RunHandle, cursor: int = 0) -> list[dict[str, Any]]:
    """Follow a run from ``cursor`` to its terminal; return the native events received."""
    chunks = []
    with Connection(run, NativeProjection(), cursor=cursor) as conn:
        while (chunk := await conn.next_chunk()) is not None:
            chunks.append(chunk)
    return native_events(b"".join(chunks))


async def wait_for(predicate: Any, *, limit: float = 1000) -> None:
    """Let the other tasks run until ``predicate()`` holds, in virtual time.

    The predicates read engine state that has no event of its own, so this polls; polling
    is deterministic only on a virtual clock, where a poll interval and ``limit`` cost no
    real time and cannot be stretched by a loaded machine. So it refuses to run without
    ``autojump_clock`` (on the real clock it would sleep in wall-clock steps and give up
    after ``limit`` real seconds).
    """
    clock = trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock) or clock.autojump_threshold != 0:
        raise RuntimeError("wait_for needs the autojump_clock fixture (a virtual clock)")
    with trio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 (no event to wait on; see above)
            await trio.sleep(0.001)


async def forever(ctx: RunContext) -> None:
    await trio.sleep_forever()


async def instant(ctx: RunContext) -> None:
    await trio.lowlevel.checkpoint()


def ticker(n: int, interval: float = 1.0) -> Producer:
    """A producer emitting ``t0``, ``t1``, ... ``interval`` seconds apart."""

    async def producer(ctx: RunContext) -> None:
        for i in range(n):
            await ctx.text(f"t{i}")
            await trio.sleep(interval)

    return producer
