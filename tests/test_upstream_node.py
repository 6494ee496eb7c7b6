"""The Vercel ``ai`` package under Node reading ``/api/chat`` with scopestream in front of
the fake upstream: text, reasoning, tool calls and their results, every error row, and a
client that leaves (the upstream sees the close)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ._server import Server, run_server
from ._upstream import (
    ERROR_ROWS,
    MID_STREAM_ROWS,
    Done,
    FakeUpstream,
    Sleep,
    Status,
    fake_upstream,
    ollama_text,
    openai_text,
    openai_tool_calls,
    started,
)
from .test_proto_ai_sdk_node import _node_installed, run_validator  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.node]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"SCOPESTREAM_UPSTREAM_BASE_URL": upstream.url}
    with run_server(tmp_path_factory.mktemp("upstream-node"), env) as server:
        yield server


_chats = iter(range(1_000_000))


def chat(server: Server, model: str, *options: str, **extra: Any) -> dict[str, Any]:
    body = {
        "id": f"chat-{next(_chats)}",
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
        "trigger": "submit-message",
        "model": model,
        **extra,
    }
    return run_validator(
        server.url + "/api/chat", "--method", "POST", "--body", json.dumps(body), *options
    )


def every_release(summary: dict[str, Any]) -> list[dict[str, Any]]:
    assert summary["ok"], json.dumps(summary, indent=1)[:4000]
    for alias, result in summary["versions"].items():
        assert result["valid"], (alias, result["invalid"])
        assert result["readerError"] is None, (alias, result["readerError"])
    return list(summary["versions"].values())


def test_text_and_reasoning(server: Server, upstream: FakeUpstream) -> None:
    model = upstream.script("node-qwen", ollama_text("node-qwen", ["so", "..."], ["Hi", "!"]))
    for result in every_release(chat(server, model)):
        assert (result["reasoning"], result["text"]) == ("so...", "Hi!")
        assert (result["finished"], result["aborted"], result["errors"]) == (True, False, [])


def test_tool_calls_and_their_results_sent_back(server: Server, upstream: FakeUpstream) -> None:
    model = upstream.script(
        "node-tools",
        openai_tool_calls("node-tools", [("call_w", "weather", ['{"city"', ': "Rome"}'])]),
    )
    tools = [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    ]
    for result in every_release(chat(server, model, tools=tools)):
        kinds = result["chunkTypes"]
        assert kinds.index("tool-input-start") < kinds.index("tool-input-delta")
        assert kinds.index("tool-input-delta") < kinds.index("tool-input-available")
        [part] = [p for p in result["message"]["parts"] if p["type"].startswith("tool-")]
        assert (part["type"], part["toolCallId"], part["state"]) == (
            "tool-weather",
            "call_w",
            "input-available",
        )
        assert part["input"] == {"city": "Rome"}
    assert upstream.exchanges_for(model)[-1].body["tools"] == tools

    # The next request carries the call with its output, as useChat sends it back.
    answer = upstream.script("node-tools-2", openai_text("node-tools-2", ["Sunny in Rome."]))
    history = [
        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "weather?"}]},
        {
            "id": "m2",
            "role": "assistant",
            "parts": [
                {"type": "step-start"},
                {"type": "text", "text": "Checking.", "state": "done"},
                {
                    "type": "tool-weather",
                    "toolCallId": "call_w",
                    "state": "output-available",
                    "input": {"city": "Rome"},
                    "output": {"sky": "clear"},
                },
            ],
        },
    ]
    for result in every_release(chat(server, answer, messages=history)):
        assert result["text"] == "Sunny in Rome."
    assert upstream.exchanges_for(answer)[-1].body["messages"] == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": '{"sky": "clear"}'},
    ]


@pytest.mark.parametrize(
    ("name", "answer", "code", "status"), ERROR_ROWS, ids=[r[0] for r in ERROR_ROWS]
)
def test_errors_before_the_first_chunk(
    server: Server, upstream: FakeUpstream, name: str, answer: Status, code: str, status: int
) -> None:
    # The UI stream reports even an early failure in-band (an error chunk, see
    # UIMessageStreamProjection.early_failure): onError gets the safe message.
    model = upstream.script(f"node-{name}", [answer])
    for result in every_release(chat(server, model)):
        [message] = result["errors"]
        assert (result["text"], result["finished"]) == ("", False)
        for secret in ("sk-op", "org-123", "Traceback", "main.py", "0x7f3a", "CUDA"):
            assert secret not in message


@pytest.mark.parametrize(
    ("name", "tail", "code"), MID_STREAM_ROWS, ids=[r[0] for r in MID_STREAM_ROWS]
)
def test_errors_mid_stream(
    server: Server, upstream: FakeUpstream, name: str, tail: list[Any], code: str
) -> None:
    model = f"node-{name}"
    upstream.script(model, [*started(model), *tail])
    for result in every_release(chat(server, model)):
        assert result["text"] == "partial "
        assert len(result["errors"]) == 1  # the error chunk, reported through onError
        assert (result["finished"], result["aborted"]) == (False, False)


def test_a_client_that_leaves_closes_the_upstream(server: Server, upstream: FakeUpstream) -> None:
    model = "node-leaves"
    upstream.script(model, [*started(model), Sleep(3600), Done()])
    body = {
        "id": "chat-leaves",
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
        "model": model,
    }
    with httpx.Client(base_url=server.url, timeout=20) as http:
        with http.stream("POST", "/api/chat", json=body) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            while "partial" not in next(lines):
                pass
            upstream.wait_for_stall(model)
            left_at = time.monotonic()
    exchange = upstream.wait_for_disconnect(model)
    assert exchange.disconnected_at is not None and exchange.pending_step_at is not None
    assert left_at <= exchange.disconnected_at < exchange.pending_step_at


def test_the_upstream_is_asked_for_by_model(server: Server) -> None:
    body = {
        "id": "chat-by-producer",
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
        "producer": "upstream",
    }
    response = httpx.post(server.url + "/api/chat", json=body, timeout=20)
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["model"]
    both = httpx.post(server.url + "/api/chat", json={**body, "model": "m"}, timeout=20)
    assert both.status_code == 400
    assert [f["field"] for f in both.json()["error"]["fields"]] == ["producer"]
