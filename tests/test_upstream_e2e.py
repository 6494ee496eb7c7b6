"""scopestream in front of a fake OpenAI-compatible upstream, read by the official ``openai``
package: text, reasoning, tool calls, every error row, cancel, resume.

The fake upstream (``tests/_upstream.py``) is a real HTTP server on a loopback port that
replays OpenAI's, vLLM's and Ollama's stream shapes and records when its client went away.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from engine.protocols import RESPONSES_ERROR_CODES

from ._server import Server, run_server
from ._upstream import (
    ERROR_ROWS,
    MID_STREAM_ROWS,
    Done,
    FakeUpstream,
    Reset,
    Sleep,
    Status,
    fake_upstream,
    ollama_text,
    ollama_tool_call,
    openai_text,
    openai_tool_calls,
    started,
    vllm_reasoning,
)

pytestmark = pytest.mark.e2e

#: Far beyond any test's run time: a step waiting this long is "never" (a stall).
NEVER = 3600.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "SCOPESTREAM_UPSTREAM_BASE_URL": upstream.url,
        "SCOPESTREAM_UPSTREAM_API_KEY": "sk-operator-secret",
        "SCOPESTREAM_UPSTREAM_MODEL_MAP": "friendly=upstream-name",
        "SCOPESTREAM_UPSTREAM_HEADERS": '{"X-Team": "blue"}',
    }
    with run_server(tmp_path_factory.mktemp("upstream"), env) as server:
        yield server


@pytest.fixture(scope="module")
def impatient(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Short upstream timeouts, and a routing table: only ``slow-*`` and ``echo`` exist."""
    env = {
        "SCOPESTREAM_UPSTREAM_BASE_URL": upstream.url,
        "SCOPESTREAM_UPSTREAM_FIRST_TOKEN_TIMEOUT": "0.5",
        "SCOPESTREAM_UPSTREAM_TOKEN_TIMEOUT": "0.5",
        "SCOPESTREAM_MODELS": "slow-*=upstream,echo=echo",
    }
    with run_server(tmp_path_factory.mktemp("impatient"), env) as server:
        yield server


def sdk(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with sdk(server) as client:
        yield client


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


_names = iter(range(1_000_000))


def unique(prefix: str) -> str:
    """A model name no other test scripts."""
    return f"{prefix}-{next(_names)}"


# -- request pass-through and routing ---------------------------------------------------


def test_chat_text_and_what_the_upstream_received(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = upstream.script("upstream-name", openai_text("upstream-name", ["Hel", "lo", "!"]))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    stream = client.chat.completions.create(
        model="friendly",
        messages=[
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
        ],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.2,
        max_completion_tokens=50,
        stop=["END"],
        seed=7,
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
        metadata={"trace": "abc"},
        extra_body={"top_k": 40},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 3)

    sent = upstream.exchanges_for(model)[-1]
    assert sent.body["model"] == "upstream-name"  # the model map applied
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/a.png"},
    }
    for name, value in [
        ("temperature", 0.2),
        ("max_completion_tokens", 50),
        ("stop", ["END"]),
        ("seed", 7),
        ("tools", tools),
        ("tool_choice", "auto"),
        ("top_k", 40),  # unknown to OpenAI, known to vLLM: passed through
    ]:
        assert sent.body[name] == value, name
    assert "metadata" not in sent.body  # scopestream's own parameters stay here
    assert sent.headers["authorization"] == "Bearer sk-operator-secret"
    assert sent.headers["x-team"] == "blue"


def test_models_lists_routes_and_mapped_models(client: openai.OpenAI, impatient: Server) -> None:
    assert [m.id for m in client.models.list()] == ["echo", "synthetic", "friendly"]
    with sdk(impatient) as other:
        assert [m.id for m in other.models.list()] == ["echo"]


def test_unrouted_model_is_a_404_model_not_found(impatient: Server) -> None:
    with sdk(impatient) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="synthetic", messages=user("x"))
        assert caught.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError) as caught:
            client.responses.create(model="gpt-none", input="x")
        assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"temperature": 3}, "temperature"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages.0.content"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools.0.function.name"),
        ({"tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ],
)
def test_bad_chat_requests_name_the_field(
    server: Server, upstream: FakeUpstream, body: dict[str, Any], field: str
) -> None:
    model = unique("never-called")
    request = {"model": model, "messages": user("x"), **body}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=request, timeout=20)
    assert response.status_code == 400, response.text
    fields = [f["field"] for f in response.json()["error"]["fields"]]
    assert any(f.startswith(field) for f in fields), fields
    assert upstream.exchanges_for(model) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input.0.type"),
    ],
)
def test_responses_fields_a_chat_upstream_cannot_take_are_400(
    server: Server, upstream: FakeUpstream, body: dict[str, Any], field: str
) -> None:
    model = unique("never-called")
    response = httpx.post(
        f"{server.url}/v1/responses", json={"model": model, "input": "x", **body}, timeout=20
    )
    assert response.status_code == 400, response.text
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field]
    assert upstream.exchanges_for(model) == []


# -- text and reasoning, three servers' shapes ------------------------------------------


def test_vllm_reasoning_reaches_responses_and_chat_gets_the_text(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = upstream.script("vllm-r1", vllm_reasoning("vllm-r1", ["Let me ", "think."], ["42"]))
    with client.responses.stream(model=model, input="question") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert "response.reasoning_text.delta" in kinds
    assert final.output_text == "42" and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 12
    reasoning = [e.delta for e in events if e.type == "response.reasoning_text.delta"]
    assert "".join(reasoning) == "Let me think."
    chat = client.chat.completions.create(model=model, messages=user("q"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chat if c.choices) == "42"


def test_ollama_thinking_and_text(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    model = upstream.script("qwen3:8b", ollama_text("qwen3:8b", ["hm", "m"], ["Hi", " there"]))
    completion = client.chat.completions.create(model=model, messages=user("hello"))
    assert completion.choices[0].message.content == "Hi there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11


# -- tool calls --------------------------------------------------------------------------


def test_chat_tool_calls_with_split_arguments(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = upstream.script(
        "gpt-tools",
        openai_tool_calls(
            "gpt-tools",
            [
                ("call_a", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']),
                ("call_b", "get_time", ["{", '"tz": "CET"}']),
            ],
        ),
    )
    stream = client.chat.completions.create(model=model, messages=user("weather?"), stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for call in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = call.id or entry["id"]
            if call.function is not None:
                entry["name"] = call.function.name or entry["name"]
                entry["arguments"] += call.function.arguments or ""
    assert finish == "tool_calls"
    assert calls == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_b", "name": "get_time", "arguments": '{"tz": "CET"}'},
    }


def test_responses_function_calls_and_results_sent_back(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = upstream.script(
        "llama3.2", ollama_tool_call("llama3.2", "get_weather", {"city": "Oslo"})
    )
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    with client.responses.stream(model=model, input="weather?", tools=tools) as stream:
        events = list(stream)
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_ollama1", "get_weather", {"city": "Oslo"})
    ]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [{"city": "Oslo"}]
    assert upstream.exchanges_for(model)[-1].body["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]

    # The next turn carries the call and its result back, as the Responses API has them.
    answer = upstream.script("llama3.2-turn2", openai_text("llama3.2-turn2", ["It is sunny."]))
    second = client.responses.create(
        model=answer,
        instructions="Answer in one sentence.",
        input=[
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": "call_ollama1",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {
                "type": "function_call_output",
                "call_id": "call_ollama1",
                "output": '{"sky": "clear"}',
            },
        ],
        tools=tools,
        max_output_tokens=30,
    )
    assert second.output_text == "It is sunny."
    sent = upstream.exchanges_for(answer)[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_ollama1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_ollama1", "content": '{"sky": "clear"}'},
    ]
    assert sent["max_tokens"] == 30


def test_chat_tool_results_are_passed_through(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = upstream.script("gpt-turn2", openai_text("gpt-turn2", ["Done."]))
    history: Any = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
    ]
    completion = client.chat.completions.create(model=model, messages=history)
    assert completion.choices[0].message.content == "Done."
    sent = upstream.exchanges_for(model)[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_a"
    assert "content" not in sent[1]  # null fields are not forwarded
    assert sent[2] == {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}


# -- errors before the first chunk -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "answer", "code", "status"), ERROR_ROWS, ids=[r[0] for r in ERROR_ROWS]
)
def test_errors_before_the_first_chunk(
    client: openai.OpenAI,
    upstream: FakeUpstream,
    server: Server,
    name: str,
    answer: Status,
    code: str,
    status: int,
) -> None:
    model = upstream.script(unique(name), [answer])
    # Chat, streaming: the SDK raises the HTTP error; never a stream.
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=user("x"), stream=True)
    error = caught.value
    assert (error.status_code, error.code) == (status, code)
    if status == 429:
        assert error.response.headers["retry-after"] == "7"
    message = error.message
    for secret in ("sk-op", "org-123", "Traceback", "main.py", "0x7f3a", "CUDA"):
        assert secret not in message  # the upstream's internals never reach the client
    if name == "bad-400":
        assert "temperature too high" in message  # a safe message does
    # Chat, non-streaming, and Responses, streaming and not: the same status and code.
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=user("x"))
    assert (caught.value.status_code, caught.value.code) == (status, code)
    for stream in (True, False):
        with pytest.raises(openai.APIStatusError) as caught:
            client.responses.create(model=model, input="x", stream=stream)
        assert (caught.value.status_code, caught.value.code) == (status, code)
    # The server's log has the upstream's status and body under the run's id.
    assert f'"status": {answer.status}' in server.log()


def test_connection_reset_before_any_answer(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    model = upstream.script(unique("reset-early"), [Reset()])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=user("x"), stream=True)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")


# -- errors after the first chunk --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tail", "code"), MID_STREAM_ROWS, ids=[r[0] for r in MID_STREAM_ROWS]
)
def test_errors_mid_stream_are_failures_never_success(
    client: openai.OpenAI, upstream: FakeUpstream, name: str, tail: list[Any], code: str
) -> None:
    model = unique(name)
    upstream.script(model, [*started(model), *tail])
    # Chat: the text so far, then the SDK raises; no finish_reason was ever sent.
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model=model, messages=user("x"), stream=True):
            received.append(chunk)
    assert caught.value.code == code
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "partial "
    assert all(c.choices[0].finish_reason is None for c in received if c.choices)
    # Responses: response.failed with a code from the spec's enum, never completed.
    events = list(client.responses.create(model=model, input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert "response.completed" not in [e.type for e in events]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.error is not None and failed.error.code in RESPONSES_ERROR_CODES
    expected = {
        "context_length_exceeded": "invalid_prompt",
        "rate_limit_exceeded": "rate_limit_exceeded",
    }
    assert failed.error.code == expected.get(code, "server_error")


# -- timeouts ------------------------------------------------------------------------------


def test_no_first_chunk_in_time_is_a_timeout(impatient: Server, upstream: FakeUpstream) -> None:
    model = upstream.script(unique("slow-first"), [Sleep(NEVER), *openai_text("x", ["late"])])
    with sdk(impatient) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=model, messages=user("x"), stream=True)
    assert (caught.value.status_code, caught.value.code) == (504, "timeout")
    assert upstream.wait_for_disconnect(model).pending_step_at is not None


def test_a_stall_between_chunks_is_a_timeout(impatient: Server, upstream: FakeUpstream) -> None:
    model = unique("slow-next")
    upstream.script(model, [*started(model), Sleep(NEVER), Done()])
    with sdk(impatient) as client:
        with pytest.raises(openai.APIError) as caught:
            list(client.chat.completions.create(model=model, messages=user("x"), stream=True))
    assert caught.value.code == "timeout"
    exchange = upstream.wait_for_disconnect(model)
    assert exchange.pending_step_at is not None
    assert exchange.disconnected_at is not None
    assert exchange.disconnected_at < exchange.pending_step_at


# -- cancel reaches the upstream -------------------------------------------------------------


def _stalled(model: str) -> list[Any]:
    return [*started(model), Sleep(NEVER), Done()]


def _assert_closed_at_once(upstream: FakeUpstream, model: str, cancelled_at: float) -> None:
    """The upstream saw its client go after the cancel, while its next chunk was still far in
    the future: the cancel closed the connection, not the arrival of a chunk."""
    exchange = upstream.wait_for_disconnect(model)
    assert exchange.disconnected_at is not None and exchange.pending_step_at is not None
    assert cancelled_at <= exchange.disconnected_at < exchange.pending_step_at
    assert not exchange.completed


def test_chat_client_disconnect_closes_the_upstream(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = unique("gone")
    upstream.script(model, _stalled(model))
    stream = client.chat.completions.create(model=model, messages=user("x"), stream=True)
    chunks = iter(stream)
    assert next(chunks).choices[0].delta.role == "assistant"
    assert next(chunks).choices[0].delta.content == "partial "
    upstream.wait_for_stall(model)
    cancelled_at = time.monotonic()
    stream.close()
    _assert_closed_at_once(upstream, model, cancelled_at)


def test_responses_cancel_closes_the_upstream(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = upstream.script(unique("bg-cancel"), _stalled("bg"))
    created = client.responses.create(model=model, input="x", background=True)
    upstream.wait_for_stall(model)
    cancelled_at = time.monotonic()
    assert client.responses.cancel(created.id).status == "cancelled"
    _assert_closed_at_once(upstream, model, cancelled_at)
    assert client.responses.retrieve(created.id).status == "cancelled"


def test_native_cancel_closes_the_upstream(server: Server, upstream: FakeUpstream) -> None:
    model = upstream.script(unique("native-cancel"), _stalled("n"))
    with server.client() as http:
        run = http.post(
            "/v1/runs",
            json={
                "producer": "upstream",
                "input": {"model": model, "messages": user("x")},
                "background": True,
            },
        ).json()
        upstream.wait_for_stall(model)
        cancelled_at = time.monotonic()
        answer = http.post(f"/v1/runs/{run['id']}/cancel?wait=true").json()
    assert answer["result"] == "cancelled"
    _assert_closed_at_once(upstream, model, cancelled_at)


# -- resume -----------------------------------------------------------------------------------


def test_background_response_resumes_from_a_cursor(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    model = unique("bg-resume")
    pieces = ["one ", "two ", "three ", "four"]
    steps: list[Any] = []
    for step in openai_text(model, pieces):
        steps += [step, Sleep(0.05)]
    upstream.script(model, steps)
    stream = client.responses.create(model=model, input="count", background=True, stream=True)
    first = []
    for event in stream:
        first.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()  # the client leaves; a background run goes on
    cursor = first[-1].sequence_number
    rest = list(client.responses.retrieve(first[0].response.id, stream=True, starting_after=cursor))  # type: ignore[union-attr]
    assert rest[0].sequence_number == cursor + 1
    assert rest[-1].type == "response.completed"
    deltas = [e.delta for e in [*first, *rest] if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "one two three four"
    # One upstream request, streamed to its end although the first client left.
    [exchange] = upstream.exchanges_for(model)
    assert exchange.completed and exchange.disconnected_at is None


def test_an_answer_that_is_not_a_stream_is_an_upstream_error(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    # A server that ignores "stream": true and answers with one JSON completion.
    completion = {"id": "x", "object": "chat.completion", "choices": []}
    model = upstream.script(unique("not-a-stream"), [Status(200, completion)])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=user("x"), stream=True)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
    assert caught.value.message.endswith("The model provider did not answer with a stream.")
