"""Property-based interleavings: any set of causes at any times, any number of followers.
Exactly one terminal event, the status agrees, and every follower that stays to the end
receives that terminal exactly once, last."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Connection, DisconnectPolicy, EngineConfig, RunContext, open_engine
from engine.protocols.native import NativeProjection

from ._engine_helpers import assert_one_terminal
from ._sse import native_events

CAUSES = st.sampled_from(["cancel", "shutdown", "disconnect", "return", "raise"])
TIMES = st.integers(min_value=0, max_value=6).map(lambda t: t / 2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    causes=st.lists(st.tuples(CAUSES, TIMES), min_size=1, max_size=5),
    followers=st.integers(min_value=0, max_value=3),
    events_per_second=st.integers(min_value=0, max_value=4),
    deadline=st.one_of(st.none(), TIMES.filter(lambda t: t > 0)),
)
def test_any_interleaving_ends_in_exactly_one_terminal(
    causes: list[tuple[str, float]],
    followers: int,
    events_per_second: int,
    deadline: float | None,
) -> None:
    async def scenario() -> None:
        ends = sorted(t for c, t in causes if c in ("return", "raise"))

        async def producer(ctx: RunContext) -> None:
            end = ends[0] if ends else 1000.0
            step = 1 / events_per_second if events_per_second else end
            t = 0.0
            while t + step < end:
                await trio.sleep(step)
                t += step
                await ctx.text(".")
            await trio.sleep(max(0.0, end - t))
            if ends and any(c == "raise" and tt == end for c, tt in causes):
                raise RuntimeError("boom")

        config = EngineConfig(run_timeout=deadline, keepalive_interval=0.25)
        received: list[bytes] = []
        async with open_engine(config) as engine:
            run = engine.start_run(producer, on_disconnect=DisconnectPolicy("cancel"))

            async def follow(leave_at: float | None) -> None:
                chunks = []
                with Connection(run, NativeProjection()) as conn:
                    with trio.move_on_at(leave_at if leave_at is not None else float("inf")):
                        while (chunk := await conn.next_chunk()) is not None:
                            chunks.append(chunk)
                    if not conn.finished:
                        conn.disconnected()
                        return
                received.append(b"".join(chunks))

            async def act(cause: str, at: float) -> None:
                await trio.sleep_until(at)
                if cause == "cancel":
                    run.cancel()
                elif cause == "shutdown":
                    await engine.aclose()

            disconnect_at = min((t for c, t in causes if c == "disconnect"), default=None)
            async with trio.open_nursery() as nursery:
                for i in range(followers):
                    nursery.start_soon(follow, disconnect_at if i == 0 else None)
                for cause, at in causes:
                    nursery.start_soon(act, cause, at)
                with trio.fail_after(2000):
                    await run.wait_done()
            terminal = assert_one_terminal(run)
        for raw in received:
            events = native_events(raw)
            assert [e["seq"] for e in events] == list(range(1, terminal.seq + 1))
            assert sum(e["type"].startswith("run.") and e["seq"] > 1 for e in events) == 1
            assert events[-1] == terminal.as_dict() | {"type": terminal.type.value}

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
