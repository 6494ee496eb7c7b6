"""The Redis store's scripts against a real redis-server: one finish wins, fencing, exact
ids and gaps, expiry of every key, interactions, cancels, aliases, and Redis going away.

These tests use the real clock (autojump would jump virtual time while a task waits on
Redis's socket); every wait is under ``trio.fail_after``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from engine import (
    Cancelled,
    CancelReason,
    Completed,
    ErrorCode,
    ErrorInfo,
    EventType,
    Failed,
    InteractionNotFound,
    InteractionNotPending,
    RunConflict,
    RunNotFound,
    RunStatus,
)
from engine.backends import StoreUnavailable
from engine.backends._redis_store import (
    RECENT_RUNS_KEPT,
    RedisStore,
    RedisStoreConfig,
    open_redis_store,
)
from tests._redis import clean_url, module_server, run_redis, wait_until

pytestmark = pytest.mark.redis
redis_server = pytest.fixture(scope="module")(module_server)
redis_url = pytest.fixture(clean_url)

CONFIG = RedisStoreConfig(retention=30, max_log_events=50, live_ttl=600)
TEXT = EventType.TEXT_DELTA
DONE = Completed("stop")


def text(*words: str) -> list[tuple[EventType, dict[str, Any]]]:
    return [(TEXT, {"text": word}) for word in words]


@asynccontextmanager
async def store(
    url: str, worker_id: str, config: RedisStoreConfig = CONFIG
) -> AsyncIterator[RedisStore]:
    async with open_redis_store(url, config, worker_id=worker_id) as opened:
        yield opened


async def new_run(s: RedisStore, run_id: str, **kwargs: Any) -> None:
    await s.create_run(run_id, producer="echo", **kwargs)


# -- appending: ids, fencing, gaps -------------------------------------------------------


async def test_append_writes_seq_ids_and_a_readable_record(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a:
            await new_run(a, "run_1", owner="key_1", metadata={"protocol": "native"})
            result = await a.append("run_1", 1, text("a", "b"), status=RunStatus.RUNNING)
            assert (result.verdict, result.last_seq) == ("ok", 2)
            entries = await a.client.xrange(a.log_key("run_1"))
            assert [e.identifier for e in entries] == ["1-0", "2-0"]
            record = await a.get_record("run_1")
            assert record is not None
            assert (record.status, record.last_seq, record.owner, record.worker) == (
                RunStatus.RUNNING,
                2,
                "key_1",
                "w_a",
            )
            assert record.started_at is not None and record.metadata == {"protocol": "native"}
            read = await a.read("run_1", 0)
            assert read.missing_from == 0
            assert [(e.seq, e.type, e.data["text"]) for e in read.events] == [
                (1, TEXT, "a"),
                (2, TEXT, "b"),
            ]
            # Appending again at an old seq is refused and changes nothing.
            again = await a.append("run_1", 2, text("x"))
            assert (again.verdict, again.last_seq) == ("out_of_order", 2)
            assert len(await a.client.xrange(a.log_key("run_1"))) == 2


async def test_a_foreign_writer_is_fenced(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a, store(redis_url, "w_b") as b:
            await new_run(a, "run_1")
            assert (await b.append("run_1", 1, text("x"))).verdict == "fenced"
            assert (await b.finish("run_1", DONE)).verdict == "fenced"
            assert await a.read("run_1", 0) == await b.read("run_1", 0)
            assert (await a.read("run_1", 0)).events == []
            record = await a.get_record("run_1")
            assert record is not None and record.status is RunStatus.QUEUED


async def test_a_trimmed_cursor_is_an_explicit_gap(redis_url: str) -> None:
    config = RedisStoreConfig(retention=30, max_log_events=5, live_ttl=600)
    with trio.fail_after(10):
        async with store(redis_url, "w_a", config) as a:
            await new_run(a, "run_1")
            for seq in range(1, 13):
                assert (await a.append("run_1", seq, text(str(seq)))).verdict == "ok"
            # Exactly max_log_events are kept: 8..12.
            assert await a.client.xlen(a.log_key("run_1")) == 5
            behind = await a.read("run_1", 2)
            assert behind.missing_from == 3
            assert [e.seq for e in behind.events] == [8, 9, 10, 11, 12]
            # A cursor right before the oldest entry left is not a gap.
            exact = await a.read("run_1", 7, count=2)
            assert (exact.missing_from, [e.seq for e in exact.events]) == (0, [8, 9])
            assert (await a.read("run_1", 12)).events == []


# -- finishing: exactly one terminal -----------------------------------------------------


async def test_exactly_one_finish_wins_between_owner_and_sweeper(redis_url: str) -> None:
    lost = Failed(ErrorInfo(ErrorCode.WORKER_LOST, "lost", "c1"))
    with trio.fail_after(20):
        async with store(redis_url, "w_a") as owner, store(redis_url, "w_s") as sweeper:
            for trial in range(60):
                run_id = f"run_{trial}"
                await new_run(owner, run_id)
                await owner.append(run_id, 1, text("x"), status=RunStatus.RUNNING)
                results: dict[str, Any] = {}

                async def finish(name: str, s: RedisStore, outcome: Any, **kw: Any) -> None:
                    results[name] = await s.finish(run_id, outcome, **kw)  # noqa: B023

                contenders = [
                    partial(finish, "owner", owner, DONE),
                    partial(finish, "sweeper", sweeper, lost, expected_worker="w_a"),
                ]
                async with trio.open_nursery() as nursery:
                    for contender in contenders[:: 1 if trial % 2 else -1]:
                        nursery.start_soon(contender)
                verdicts = sorted(r.verdict for r in results.values())
                assert verdicts == ["already_finished", "won"], (trial, results)
                entries = await owner.client.xrange(owner.log_key(run_id))
                terminals = [e for e in entries if e.field_values["t"].startswith("run.")]
                assert len(terminals) == 1 and terminals[0].identifier == "2-0"
                record = await owner.get_record(run_id)
                assert record is not None
                winner = (
                    results["owner"] if results["owner"].verdict == "won" else results["sweeper"]
                )
                assert record.status is winner.status and record.last_seq == 2
                assert record.outcome == (DONE if winner is results["owner"] else lost)
            assert await owner.live_runs() == {}


async def test_the_loser_of_finish_changes_nothing(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a:
            await new_run(a, "run_1")
            first = await a.finish("run_1", Cancelled(CancelReason.REQUESTED), answer={"x": 1})
            assert (first.verdict, first.seq) == ("won", 1)
            second = await a.finish("run_1", DONE)
            assert (second.verdict, second.status) == ("already_finished", RunStatus.CANCELLED)
            assert (await a.append("run_1", 2, text("late"))).verdict == "finished"
            record = await a.get_record("run_1")
            assert record is not None
            assert record.outcome == Cancelled(CancelReason.REQUESTED)
            assert record.answer == {"x": 1} and record.ended_at is not None
            events = (await a.read("run_1", 0)).events
            assert [e.type for e in events] == [EventType.CANCELLED]


async def test_append_refuses_terminals_and_unpaired_interactions(redis_url: str) -> None:
    async with store(redis_url, "w_a") as a:
        with pytest.raises(ValueError):
            await a.append("run_1", 1, [(EventType.COMPLETED, {})])
        with pytest.raises(ValueError):
            await a.append("run_1", 1, [], status=RunStatus.FAILED)
        with pytest.raises(ValueError):
            await a.append("run_1", 1, [], status=RunStatus.AWAITING_INPUT)


# -- expiry ------------------------------------------------------------------------------


async def test_live_keys_carry_the_live_ttl_and_finish_sets_retention_on_every_key(
    redis_url: str,
) -> None:
    config = RedisStoreConfig(retention=1, max_log_events=50, live_ttl=600)
    with trio.fail_after(15):
        async with store(redis_url, "w_a", config) as a:
            await new_run(a, "run_c", client_run_id="mine")
            interaction = {"interaction_id": "int_1", "prompt": "?"}
            await a.append(
                "run_c", 1, text("q"), status=RunStatus.AWAITING_INPUT, interaction=interaction
            )
            await a.cancel("run_c")
            keys = a.run_keys("run_c")
            for key in keys:
                ttl = await a.client.pttl(key)
                assert 590_000 < ttl <= 600_000, (key, ttl)
            alias_key = a.alias_keys(None, "mine")[0]
            assert 590_000 < await a.client.pttl(alias_key) <= 600_000

            assert (await a.finish("run_c", DONE)).verdict == "won"
            for key in [*keys, alias_key]:
                ttl = await a.client.pttl(key)
                assert 0 < ttl <= 1000, (key, ttl)

            # Wait for the retention to pass: every key of the run is gone.
            async def gone() -> bool:
                return not await a.client.exists([*keys, alias_key])

            await wait_until(gone)
            assert await a.get_record("run_c") is None


async def test_a_live_runs_keys_are_renewed_by_appends_and_heartbeats(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a:
            await new_run(a, "run_1", client_run_id="c")
            interaction = {"interaction_id": "int_1", "prompt": "?"}
            await a.append(
                "run_1", 1, text("q"), status=RunStatus.AWAITING_INPUT, interaction=interaction
            )
            keys = [k for k in a.run_keys("run_1") if k.endswith(("rec", "log", "ia"))]
            alias_key = a.alias_keys(None, "c")[0]

            async def shorten() -> None:
                for key in [*keys, alias_key]:
                    assert await a.client.pexpire(key, 5000)

            async def renewed(with_alias: bool) -> None:
                for key in [*keys, alias_key] if with_alias else keys:
                    assert await a.client.pttl(key) > 590_000, key

            await shorten()
            await a.append("run_1", 2, text("more"))
            await renewed(with_alias=False)
            # A run paused for input writes nothing: its owner's heartbeat renews it.
            await shorten()
            assert (await a.touch("run_1"))[0] == "live"
            await renewed(with_alias=True)


async def test_nothing_is_left_after_many_finished_runs_and_the_retention(
    redis_url: str,
) -> None:
    config = RedisStoreConfig(
        retention=1, max_log_events=50, live_ttl=600, heartbeat_interval=0.2, heartbeat_ttl=1
    )
    with trio.fail_after(15):
        async with store(redis_url, "w_a", config) as a:
            for i in range(40):
                run_id = f"run_{i}"
                await new_run(a, run_id, client_run_id=f"c{i}" if i % 2 else None)
                await a.append(run_id, 1, text("a", "b"), status=RunStatus.RUNNING)
                if i % 3 == 0:
                    await a.cancel(run_id)
                await a.finish(run_id, DONE)
            await a.beat()  # the heartbeat key has a TTL too
            assert await a.client.dbsize() > 0
            for key in await a.client.keys("*"):
                assert await a.client.pttl(key) > 0, key

            # What outlives the runs is the owner's recent-runs index (for listing): one key,
            # bounded, with an expiry of its own (checked above).
            index = a.recent_key(None)
            assert await a.client.zcard(index) == 40 <= RECENT_RUNS_KEPT

            async def only_the_index_left() -> bool:
                return set(await a.client.keys("*")) == {index}

            await wait_until(only_the_index_left)


async def test_the_recent_runs_index_keeps_the_newest_runs_and_expires(redis_url: str) -> None:
    config = RedisStoreConfig(retention=1, max_log_events=50, live_ttl=600)
    with trio.fail_after(10):
        async with store(redis_url, "w_a", config) as a:
            for i in range(RECENT_RUNS_KEPT + 5):
                await a.create_run(f"run_{i}", producer="p", owner="key_x")
            newest = await a.recent_run_ids("key_x", 3)
            assert newest == [
                f"run_{i}" for i in range(RECENT_RUNS_KEPT + 4, RECENT_RUNS_KEPT + 1, -1)
            ]
            index = a.recent_key("key_x")
            assert await a.client.zcard(index) == RECENT_RUNS_KEPT  # bounded
            assert 0 < await a.client.pttl(index) <= 601_000  # live TTL + retention
            assert await a.recent_run_ids(None, 3) == []  # another owner's index


# -- interactions ------------------------------------------------------------------------


async def ask(s: RedisStore, run_id: str, interaction_id: str, seq: int) -> None:
    interaction = {"interaction_id": interaction_id, "prompt": "go on?"}
    result = await s.append(
        run_id,
        seq,
        [(EventType.INTERACTION_REQUIRED, interaction)],
        status=RunStatus.AWAITING_INPUT,
        interaction=interaction,
    )
    assert result.verdict == "ok"


async def test_answer_from_another_worker(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a, store(redis_url, "w_b") as b:
            await new_run(a, "run_1", owner="k")
            await ask(a, "run_1", "int_1", 1)
            record = await b.get_record("run_1")
            assert record is not None and record.status is RunStatus.AWAITING_INPUT
            assert record.interaction == {"interaction_id": "int_1", "prompt": "go on?"}
            with pytest.raises(RunNotFound):
                await b.answer("run_1", "int_1", "yes", owner="other")
            with pytest.raises(InteractionNotFound):
                await b.answer("run_1", "int_9", "yes", owner="k")
            await b.answer("run_1", "int_1", {"ok": [1, 2]}, owner="k")
            with pytest.raises(InteractionNotPending):
                await b.answer("run_1", "int_1", "again", owner="k")
            record = await b.get_record("run_1")
            assert record is not None
            assert record.status is RunStatus.RUNNING and record.interaction is None
            assert await a.interaction_state("run_1", "int_1") == ("answered", {"ok": [1, 2]})
            assert await a.expire_interaction("run_1", "int_1") == ("answered", {"ok": [1, 2]})


async def test_answer_and_expiry_race_has_one_winner(redis_url: str) -> None:
    with trio.fail_after(20):
        async with store(redis_url, "w_a") as a, store(redis_url, "w_b") as b:
            outcomes = set()
            for trial in range(40):
                run_id = f"run_{trial}"
                await new_run(a, run_id)
                await ask(a, run_id, "int_1", 1)
                answered: list[bool] = []
                expired: list[tuple[str, Any]] = []

                async def answer() -> None:
                    try:
                        await b.answer(run_id, "int_1", trial)  # noqa: B023
                        answered.append(True)  # noqa: B023
                    except InteractionNotPending:
                        answered.append(False)  # noqa: B023

                async def expire() -> None:
                    expired.append(await a.expire_interaction(run_id, "int_1"))  # noqa: B023

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(answer)
                    nursery.start_soon(expire)
                if answered[0]:
                    # The answer won: the owner gets it instead of a timeout.
                    assert expired[0] == ("answered", trial)
                else:
                    assert expired[0] == ("expired", None)
                    assert await a.interaction_state(run_id, "int_1") == ("expired", None)
                outcomes.add(answered[0])
            assert outcomes  # at least one trial ran; both orders are checked above


async def test_the_end_of_a_run_clears_its_pending_interaction(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a, store(redis_url, "w_b") as b:
            await new_run(a, "run_1")
            await ask(a, "run_1", "int_1", 1)
            await a.finish("run_1", Cancelled(CancelReason.REQUESTED))
            with pytest.raises(InteractionNotPending):
                await b.answer("run_1", "int_1", "late")
            assert await a.interaction_state("run_1", "int_1") == ("cleared", None)


# -- cancels and aliases -----------------------------------------------------------------


async def test_cancel_is_durable_and_the_first_reason_wins(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a, store(redis_url, "w_b") as b:
            await new_run(a, "run_1", owner="k")
            assert await b.cancel("run_1", owner="other") == "not_found"
            assert await b.cancel("run_nope", owner="k") == "not_found"
            assert await b.cancel("run_1", CancelReason.REQUESTED, owner="k") == "requested"
            assert await b.cancel("run_1", CancelReason.SHUTDOWN, owner="k") == "requested"
            touched = await a.touch("run_1")
            assert touched[:2] == ["live", "requested"]
            await a.finish("run_1", Cancelled(CancelReason.REQUESTED))
            assert await b.cancel("run_1", owner="k") == "already_decided"


async def test_client_run_id_conflicts_while_live_and_is_reusable_after(redis_url: str) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a, store(redis_url, "w_b") as b:
            await new_run(a, "run_1", owner="k", client_run_id="c")
            with pytest.raises(RunConflict):
                await new_run(b, "run_2", owner="k", client_run_id="c")
            # Another owner's client_run_id is another alias.
            await new_run(b, "run_3", owner="j", client_run_id="c")
            assert await b.lookup("c", owner="k") == "run_1"
            await a.finish("run_1", DONE)
            await new_run(b, "run_2", owner="k", client_run_id="c")
            assert await a.lookup("c", owner="k") == "run_2"


async def test_a_cancel_before_create_starts_the_run_cancelled_on_another_worker(
    redis_url: str,
) -> None:
    with trio.fail_after(10):
        async with store(redis_url, "w_a") as a, store(redis_url, "w_b") as b:
            assert await b.cancel_client_run_id("c", owner="k") == ("remembered", None)
            created = await a.create_run("run_1", producer="echo", owner="k", client_run_id="c")
            assert created.cancel_reason is CancelReason.REQUESTED
            # Taken once: the next run with that client_run_id starts normally.
            await a.finish("run_1", Cancelled(CancelReason.REQUESTED))
            again = await a.create_run("run_2", producer="echo", owner="k", client_run_id="c")
            assert again.cancel_reason is None
            assert await b.cancel_client_run_id("c", owner="k") == ("requested", "run_2")


# -- Redis going away --------------------------------------------------------------------


async def test_startup_check_names_the_setting(tmp_path: Any) -> None:
    with run_redis(tmp_path) as server:
        url = server.url
    with trio.fail_after(10), pytest.raises(StoreUnavailable) as caught:
        async with open_redis_store("redis://user:secret@" + url.split("//")[1]):
            pass  # pragma: no cover
    assert "SCOPESTREAM_REDIS_URL" in str(caught.value)
    assert url in str(caught.value) and "secret" not in str(caught.value)


async def test_store_unreachable_when_the_server_stops(tmp_path: Any) -> None:
    with run_redis(tmp_path) as server, trio.fail_after(15):
        async with store(server.url, "w_a") as a:
            await new_run(a, "run_1")
            server.stop()
            with pytest.raises(StoreUnavailable) as caught:
                await a.append("run_1", 1, text("x"))
            assert "SCOPESTREAM_REDIS_URL" in str(caught.value)
            with pytest.raises(StoreUnavailable):
                await a.read("run_1", 0)
            with pytest.raises(StoreUnavailable):
                await a.finish("run_1", DONE)


def test_engine_imports_without_coredis() -> None:
    code = (
        "import sys; sys.modules['coredis'] = None\n"
        "import engine, engine.backends\n"
        "assert 'coredis' not in [m for m, v in sys.modules.items() if v is not None]\n"
        "try:\n"
        "    import engine.backends._redis_store\n"
        "except ImportError:\n"
        "    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr
