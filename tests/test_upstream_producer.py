"""The upstream producer's pure parts: chunks → events (a property over any chunk sequence),
the error table, and the model routing table."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.producers.upstream import (
    ChunkReader,
    Upstream,
    UpstreamConfig,
    http_error,
    retry_after_seconds,
    stream_error,
)
from app.routing import ModelRouter
from engine import (
    Cancelled,
    CancelReason,
    EngineConfig,
    ErrorCode,
    Event,
    EventType,
    Failed,
    RunContext,
    open_engine,
)
from engine.protocols import (
    ChatCompletionsProjection,
    ResponsesProjection,
    UIMessageStreamProjection,
)

from ._engine_helpers import assert_one_terminal
from ._server import free_port
from ._upstream import Done, Sleep, fake_upstream, started

# -- the property ---------------------------------------------------------------------------

_TEXT = st.text(min_size=1, max_size=6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def _split(draw: st.DrawFn, text: str) -> list[str]:
    """``text`` cut at random places (empty fragments included, as servers send them)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=5)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def upstream_streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A chunk sequence as some server could send it, and what it means: text, reasoning
    (under either field name), tool calls whose arguments arrive in fragments, possibly
    interleaved, with or without ids, the name in the first fragment or a later one, or
    repeated in every fragment after it; usage."""
    chunks: list[dict[str, Any]] = []
    expected: dict[str, Any] = {"text": "", "reasoning": "", "calls": {}}

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    chunks.append(delta({"role": "assistant", "content": ""}))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "reasoning_content", "reasoning"]))
        piece = draw(_TEXT)
        chunks.append(delta({"content" if kind == "text" else kind: piece}))
        expected["text" if kind == "text" else "reasoning"] += piece
    n_calls = draw(st.integers(0, 3))
    fragments: list[tuple[int, dict[str, Any]]] = []
    for index in range(n_calls):
        arguments = json.dumps(draw(_JSON))
        call_id = draw(st.one_of(st.none(), st.just(f"call_{index}")))
        name = f"tool_{index}"
        repeat_name = draw(st.booleans())
        pieces = draw(_split(arguments))
        # Usually the name opens the call; some servers send argument text before it.
        name_at = draw(st.integers(0, len(pieces) - 1))
        expected["calls"][index] = {"id": call_id, "name": name, "arguments": arguments}
        for i, piece in enumerate(pieces):
            fragment: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
            if i == 0:
                fragment["type"] = "function"
                if call_id is not None:
                    fragment["id"] = call_id
            if i == name_at or (i > name_at and repeat_name):
                fragment["function"]["name"] = name
            fragments.append((index, fragment))
    if draw(st.booleans()):
        # Parallel calls interleaved: keep each call's own order, shuffle between calls.
        order = draw(st.permutations(range(len(fragments))))
        by_call: dict[int, list[dict[str, Any]]] = {}
        for index, fragment in fragments:
            by_call.setdefault(index, []).append(fragment)
        slots = sorted(fragments[i][0] for i in order)
        fragments = [(index, by_call[index].pop(0)) for index in slots]
    chunks += [delta({"tool_calls": [fragment]}) for _, fragment in fragments]
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))
    chunks.append(delta({}, finish))
    expected["finish"] = "tool_calls" if n_calls and finish == "stop" else finish
    if draw(st.booleans()):
        usage = {"prompt_tokens": draw(st.integers(0, 99)), "completion_tokens": 5}
        chunks.append({"choices": [], "usage": usage})
        expected["usage"] = (usage["prompt_tokens"], 5)
    return chunks, expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(upstream_streams())
def test_any_chunk_sequence_gives_a_valid_event_sequence(
    stream: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    chunks, expected = stream

    async def producer(ctx: RunContext) -> Any:
        reader = ChunkReader(ctx)
        for chunk in chunks:
            await reader.feed(json.loads(json.dumps(chunk)))
        return await reader.finish()

    async def scenario() -> list[Event]:
        async with open_engine() as engine:
            run = engine.start_run(producer)
            await run.wait_done()
            assert_one_terminal(run)
            return run.log.all()

    events = trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    terminal = events[-1]
    assert terminal.type is EventType.COMPLETED, terminal.data
    assert terminal.data["finish_reason"] == expected["finish"]
    by_type = [e for e in events if e.type is EventType.TEXT_DELTA]
    assert "".join(e.data["text"] for e in by_type) == expected["text"]
    reasoning = [e.data["text"] for e in events if e.type is EventType.REASONING_DELTA]
    assert "".join(reasoning) == expected["reasoning"]
    if "usage" in expected:
        usage = terminal.data["usage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == expected["usage"]

    started = [e for e in events if e.type is EventType.TOOL_CALL_STARTED]
    ready = [e for e in events if e.type is EventType.TOOL_CALL_READY]
    assert len(started) == len(ready) == len(expected["calls"])
    ids = [e.data["tool_call_id"] for e in started]
    assert len(set(ids)) == len(ids)  # one id per call
    position = {e.seq: i for i, e in enumerate(events)}
    for index, call in expected["calls"].items():
        start = next(e for e in started if e.data["name"] == call["name"])
        call_id = start.data["tool_call_id"]
        if call["id"] is not None:
            assert call_id == call["id"]  # the upstream's id is kept
        deltas = [
            e
            for e in events
            if e.type is EventType.TOOL_CALL_DELTA and e.data["tool_call_id"] == call_id
        ]
        done = next(e for e in ready if e.data["tool_call_id"] == call_id)
        # Started before every delta, ready after them; the deltas are the arguments.
        assert all(position[start.seq] < position[d.seq] < position[done.seq] for d in deltas)
        assert "".join(d.data["delta"] for d in deltas) == call["arguments"]
        assert done.data["name"] == call["name"]
        assert done.data["arguments"] == json.loads(call["arguments"])
        assert index == [e.data["name"] for e in ready].index(call["name"])  # index order
    # Every projection takes the sequence (none raises, each ends exactly once).
    chat = ChatCompletionsProjection(completion_id="c", model="m", created=0)
    raw = chat.events(events)
    assert raw.endswith(b"data: [DONE]\n\n") and raw.count(b"[DONE]") == 1
    responses = ResponsesProjection(response_id="resp_1", model="m", created_at=0)
    assert responses.events(events).count(b"event: response.") > 0
    ui = UIMessageStreamProjection(message_id="msg_1")
    assert ui.events(events).endswith(b"data: [DONE]\n\n")


async def _feed_all(chunks: list[Any]) -> Any:
    async def producer(ctx: RunContext) -> Any:
        reader = ChunkReader(ctx)
        for chunk in chunks:
            await reader.feed(chunk)
        return await reader.finish()

    async with open_engine() as engine:
        run = engine.start_run(producer)
        await run.wait_done()
        return run.outcome


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([{"choices": [{"index": 0, "delta": {"content": "x"}}]}], "ended before"),
        ([{"choices": [{"delta": {"content": 5}}]}], "malformed"),
        ([{"choices": "nope"}], "malformed"),
        ([["not", "an", "object"]], "malformed"),
        (
            [
                {
                    "choices": [
                        {"delta": {"tool_calls": [{"index": 0}]}, "finish_reason": "tool_calls"}
                    ]
                }
            ],
            "no name",
        ),
        ([{"choices": [{"delta": {}, "finish_reason": "abort"}]}], "abnormally"),
        ([{"usage": {"prompt_tokens": "many"}}], "malformed"),
    ],
)
async def test_a_stream_that_is_not_an_answer_fails(chunks: list[Any], message: str) -> None:
    outcome = await _feed_all(chunks)
    assert outcome.status.value == "failed"
    assert outcome.error.code is ErrorCode.UPSTREAM_ERROR
    assert message in outcome.error.message


async def test_other_choices_are_ignored() -> None:
    chunks = [
        {"choices": [{"index": 1, "delta": {"content": "other"}, "finish_reason": "stop"}]},
        {"choices": [{"index": 0, "delta": {"content": "mine"}, "finish_reason": "length"}]},
    ]
    outcome = await _feed_all(chunks)
    assert outcome.finish_reason == "length"


async def _run_upstream(upstream: Upstream, *, open_client: bool) -> Any:
    """One run of ``upstream`` (its client held open or not); the run's outcome."""
    stop = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            if open_client:
                await nursery.start(upstream.hold, stop)
            async with open_engine() as engine:
                run = engine.start_run(upstream, input={"model": "m", "messages": []})
                await run.wait_done()
            stop.set()
    return run.outcome


async def test_connection_refused_is_an_upstream_error() -> None:
    upstream = Upstream(UpstreamConfig(base_url=f"http://127.0.0.1:{free_port()}/v1"))
    outcome = await _run_upstream(upstream, open_client=True)
    assert outcome.error.code is ErrorCode.UPSTREAM_ERROR
    assert outcome.error.message == "The model provider could not be reached."


async def test_a_producer_whose_client_is_not_open_fails_cleanly() -> None:
    upstream = Upstream(UpstreamConfig(base_url="http://127.0.0.1:9/v1"))
    outcome = await _run_upstream(upstream, open_client=False)
    assert outcome.error.code is ErrorCode.UPSTREAM_ERROR


@pytest.mark.parametrize("cause", ["deadline", "shutdown"])
async def test_a_deadline_or_shutdown_closes_the_upstream(cause: str) -> None:
    # Real sockets and the real clock: the fake upstream pauses mid-stream for an hour.
    with fake_upstream() as fake:
        model = fake.script("paused", [*started("paused"), Sleep(3600), Done()])
        upstream = Upstream(UpstreamConfig(base_url=fake.url))
        stop = trio.Event()
        config = EngineConfig(run_timeout=0.5 if cause == "deadline" else None)
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(upstream.hold, stop)
                async with open_engine(config) as engine:
                    run = engine.start_run(upstream, input={"model": model, "messages": []})
                    await trio.to_thread.run_sync(fake.wait_for_stall, model)
                    acted_at = time.monotonic()
                    if cause == "shutdown":
                        await engine.aclose()
                    await run.wait_done()
                stop.set()
            exchange = await trio.to_thread.run_sync(fake.wait_for_disconnect, model)
    assert exchange.disconnected_at is not None and exchange.pending_step_at is not None
    assert acted_at <= exchange.disconnected_at < exchange.pending_step_at
    outcome = run.outcome
    if cause == "deadline":
        assert isinstance(outcome, Failed) and outcome.error.code is ErrorCode.TIMEOUT
    else:
        assert isinstance(outcome, Cancelled) and outcome.reason is CancelReason.SHUTDOWN


# -- the error table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            {"error": {"code": "context_length_exceeded", "message": "x"}},
            "context_length_exceeded",
        ),
        (400, {"error": {"message": "prompt is too long: 5 > 4"}}, "context_length_exceeded"),
        (413, {"error": {"message": "maximum context length is 4096"}}, "context_length_exceeded"),
        (400, {"error": "invalid temperature"}, "invalid_request"),
        (422, b"not json", "invalid_request"),
        (401, {}, "upstream_error"),
        (403, {}, "upstream_error"),
        (404, {}, "model_not_found"),
        (408, {}, "timeout"),
        (429, {}, "rate_limit_exceeded"),
        (500, {}, "upstream_error"),
        (418, {}, "upstream_error"),
    ],
)
def test_http_errors(status: int, body: Any, code: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    error = http_error(status, raw, {}, model="m")
    assert error.code == code


def test_only_safe_upstream_messages_are_shown() -> None:
    shown = http_error(400, b'{"error": {"message": "top_p must be <= 1"}}', {}, model="m")
    assert shown.message.endswith(": top_p must be <= 1")
    for hidden in [
        "Traceback (most recent call last): boom",
        "failed in /opt/vllm/engine.py",
        "line one\nline two",
        "key sk-abc123 is invalid",
        "x" * 400,
    ]:
        body = json.dumps({"error": {"message": hidden}}).encode()
        message = http_error(400, body, {}, model="m").message
        assert message == "The model provider rejected the request."


def test_retry_after() -> None:
    assert http_error(429, b"{}", {"retry-after": "12"}, model="m").retry_after == 12.0
    assert http_error(429, b"{}", {}, model="m").retry_after is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") == 0.0


def test_stream_errors() -> None:
    assert (
        stream_error({"error": {"message": "context length exceeded"}}).code
        == "context_length_exceeded"
    )
    assert stream_error({"error": {"code": "rate_limit_exceeded"}}).code == "rate_limit_exceeded"
    assert stream_error({"error": "boom at /srv/x.py"}).code == "upstream_error"
    assert "boom" not in stream_error({"error": "boom"}).message


# -- routing ----------------------------------------------------------------------------------


def test_default_routes_without_upstream() -> None:
    router = ModelRouter.build({}, ["echo", "synthetic"])
    assert router.resolve("echo") == "echo"
    assert router.resolve("gpt-4o") is None
    assert router.models() == ["echo", "synthetic"]


def test_default_routes_with_upstream() -> None:
    router = ModelRouter.build(
        {}, ["echo", "synthetic", "upstream"], upstream="upstream", model_map={"fast": "llama3"}
    )
    assert router.resolve("echo") == "echo"
    assert router.resolve("anything") == "upstream"
    assert router.resolve("upstream") == "upstream"
    assert router.models() == ["echo", "synthetic", "fast"]


def test_a_table_routes_in_order_and_alone() -> None:
    table = {"gpt-4o-mini": "echo", "gpt-*": "upstream", "echo": "echo"}
    router = ModelRouter.build(
        table, ["echo", "synthetic", "upstream"], upstream="upstream", model_map={"gpt-x": "y"}
    )
    assert router.resolve("gpt-4o-mini") == "echo"  # the first match wins
    assert router.resolve("gpt-4o") == "upstream"
    assert router.resolve("synthetic") is None  # not in the table
    assert router.models() == ["gpt-4o-mini", "gpt-x", "echo"]


def test_a_table_naming_a_missing_producer_is_refused() -> None:
    with pytest.raises(ValueError, match="upstream"):
        ModelRouter.build({"gpt-*": "upstream"}, ["echo", "synthetic"])
