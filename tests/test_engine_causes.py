"""Every pair of causes that can end a run, in both orders and at the same instant:
exactly one terminal event, the right one, and the status agrees with it."""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import pytest
import trio
import trio.testing

from engine import (
    Cancelled,
    CancelReason,
    Completed,
    Connection,
    DisconnectPolicy,
    EngineConfig,
    ErrorCode,
    Failed,
    InteractionNotPending,
    Outcome,
    RunContext,
    open_engine,
)
from engine.protocols.native import NativeProjection

from ._engine_helpers import assert_one_terminal
from ._sse import native_events

CAUSES = [
    "return",
    "raise",
    "cancel",
    "disconnect",
    "deadline",
    "stall",
    "shutdown",
    "answer",
    "ia_timeout",
]
PRODUCER_ENDS = {"return", "raise"}
EXTERNAL = {"cancel", "disconnect", "deadline", "stall", "shutdown", "ia_timeout"}
TERMINALS = {"run.completed", "run.failed", "run.cancelled"}
INTERACTION = {"answer", "ia_timeout"}


def expected(cause: str) -> Outcome | tuple[str, ErrorCode]:
    return {
        "return": Completed("stop"),
        "answer": Completed("stop"),
        "raise": ("failed", ErrorCode.SERVER_ERROR),
        "cancel": Cancelled(CancelReason.REQUESTED),
        "disconnect": Cancelled(CancelReason.CLIENT_DISCONNECTED),
        "shutdown": Cancelled(CancelReason.SHUTDOWN),
        "deadline": ("failed", ErrorCode.TIMEOUT),
        "stall": ("failed", ErrorCode.STALLED),
        "ia_timeout": ("failed", ErrorCode.INTERACTION_TIMEOUT),
    }[cause]


def matches(outcome: Outcome | None, want: Outcome | tuple[str, ErrorCode]) -> bool:
    if isinstance(want, tuple):
        return isinstance(outcome, Failed) and outcome.error.code is want[1]
    return outcome == want


def pairs() -> list[tuple[str, float, str, float]]:
    out = []
    for a, b in itertools.combinations(CAUSES, 2):
        # A producer parked on a question can neither return nor raise, and waiting for a
        # human is never a stall (tested on its own in test_engine_runs).
        if {a, b} & INTERACTION and {a, b} & (PRODUCER_ENDS | {"stall"}):
            continue
        for ta, tb in ((1.0, 2.0), (2.0, 1.0), (1.0, 1.0)):
            out.append((a, ta, b, tb))
    return out


@pytest.mark.parametrize(("a", "ta", "b", "tb"), pairs())
async def test_pair_of_causes(
    a: str, ta: float, b: str, tb: float, autojump_clock: trio.testing.MockClock
) -> None:
    at = {a: ta, b: tb}
    config = EngineConfig(
        run_timeout=at.get("deadline"),
        stall_timeout=at.get("stall"),
        keepalive_interval=100.0,
    )
    cleanup_saw_cancel: list[bool] = []

    async with open_engine(config) as engine:
        base = trio.current_time()

        async def producer(ctx: RunContext) -> None:
            try:
                if {a, b} & INTERACTION:
                    await ctx.ask("go on?", answer_within=at.get("ia_timeout", 1000.0))
                    if "answer" in at:
                        return
                if "return" in at or "raise" in at:
                    end = min(t for c, t in at.items() if c in PRODUCER_ENDS)
                    await trio.sleep_until(base + end)
                    if at.get("raise") == end:
                        raise ValueError("secret internal detail")
                    return
                await trio.sleep_forever()
            except trio.Cancelled:
                cleanup_saw_cancel.append(True)
                raise

        policy = DisconnectPolicy("cancel" if "disconnect" in at else "continue")
        run = engine.start_run(producer, on_disconnect=policy)
        received: list[bytes] = []

        async def reader() -> None:
            with Connection(run, NativeProjection()) as conn:
                limit = trio.move_on_at(base + at["disconnect"]) if "disconnect" in at else None
                with limit or nullcontext():
                    while (chunk := await conn.next_chunk()) is not None:
                        received.append(chunk)
                if not conn.finished:
                    conn.disconnected()

        async def external(cause: str, t: float) -> None:
            await trio.sleep_until(base + t)
            if cause == "cancel":
                run.cancel()
            elif cause == "shutdown":
                await engine.aclose()
            elif cause == "answer":
                pending = run.pending_interaction
                if pending is None:
                    # The question was already settled (timed out or cleared): a late
                    # answer is refused, never a deadlock.
                    with pytest.raises(InteractionNotPending):
                        run.answer(run.log.all()[1].data["interaction_id"], "yes")
                else:
                    run.answer(pending.id, "yes")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            for cause, t in at.items():
                nursery.start_soon(external, cause, t)
            with trio.fail_after(50):
                await run.wait_done()

        assert_one_terminal(run)
        if ta == tb:
            assert matches(run.outcome, expected(a)) or matches(run.outcome, expected(b))
        else:
            first = a if ta < tb else b
            assert matches(run.outcome, expected(first)), (first, run.outcome)
        if isinstance(run.outcome, Failed):
            assert "secret" not in run.outcome.error.message
            assert run.outcome.error.correlation_id.startswith("err_")
        if ta != tb and (a if ta < tb else b) in EXTERNAL:
            # The producer was parked when the cause arrived: its own cleanup ran, and it
            # knew it was cancelled.
            assert cleanup_saw_cancel == [True]
        # A client that stayed to the end received exactly one terminal frame, the last one.
        events = native_events(b"".join(received))
        if events and events[-1]["seq"] == run.log.last_seq:
            terminals = [e for e in events if e["type"] in TERMINALS]
            assert terminals == [events[-1]]
            assert terminals[0]["data"] == run.outcome.as_dict()
        else:
            assert "disconnect" in at
