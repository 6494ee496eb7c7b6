"""Run data through the real service: whole answers from a trimmed log, any text framed,
lone surrogates refused at input, byte budgets, and the demo producers switched off."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ._http import RawStream
from ._server import Server, run_server
from ._sse import parse_sse

pytestmark = pytest.mark.e2e

TRIMMED = {
    # The reproduction: a log that keeps 129 events, runs of 200 deltas.
    "SCOPESTREAM_MAX_LOG_EVENTS": "129",
    "SCOPESTREAM_CONNECTION_BUFFER": "128",
    "SCOPESTREAM_PRODUCERS": "lone_surrogates=tests.fixtures.producers:lone_surrogates",
}
SMALL_BUDGETS = {
    "SCOPESTREAM_MAX_EVENT_BYTES": "2048",
    "SCOPESTREAM_MAX_OUTPUT_BYTES": "8192",
}
TWO_HUNDRED = {"events": 200, "event_bytes": 1}
GO = [{"role": "user", "content": "go"}]


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("trimmed"), TRIMMED) as server:
        yield server


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("small"), SMALL_BUDGETS) as server:
        yield server


def post_raw(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    """POST ``body`` as ASCII JSON: a lone surrogate goes as a ``\\ud800`` escape, exactly as a
    client in another language would send it."""
    return client.post(
        path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


# -- 1. whole answers never come from the trimmed log -----------------------------------


def test_chat_non_streaming_answer_is_whole_after_the_log_was_trimmed(trimmed: Server) -> None:
    body = {
        "model": "synthetic",
        "messages": [{"role": "user", "content": "go"}],
        "metadata": {"events": "200", "event_bytes": "1"},
    }
    with trimmed.client() as client:
        answer = client.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200
        choice = answer.json()["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert choice["message"]["content"] == "x" * 200
        assert answer.json()["usage"]["completion_tokens"] == 200
        run = client.get(f"/v1/runs/{answer.headers['x-run-id']}").json()
    assert run["last_seq"] == 203  # started, 200 deltas, usage, completed: 74 were trimmed
    assert run["output"] == {"text": "x" * 200, "reasoning": "", "tool_calls": []}


def test_responses_answers_are_whole_after_the_log_was_trimmed(trimmed: Server) -> None:
    body = {"model": "synthetic", "input": "go", "metadata": {"events": "200", "event_bytes": "1"}}
    with trimmed.client() as client:
        answer = client.post("/v1/responses", json=body)
        assert answer.status_code == 200
        response = answer.json()
        assert response["status"] == "completed"
        assert response["output"][0]["content"][0]["text"] == "x" * 200
        stored = client.get(f"/v1/responses/{response['id']}").json()
        assert stored == response

        started = client.post("/v1/responses", json={**body, "background": True}).json()
        deadline = time.monotonic() + 20
        stored = client.get(f"/v1/responses/{started['id']}").json()
        while stored["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.02)
            stored = client.get(f"/v1/responses/{started['id']}").json()
        assert stored["output"][0]["content"][0]["text"] == "x" * 200


def test_native_non_streaming_answer_carries_the_whole_output(trimmed: Server) -> None:
    with trimmed.client() as client:
        view = client.post("/v1/runs", json={"producer": "synthetic", "input": TWO_HUNDRED})
    assert view.status_code == 200
    assert view.json()["output"]["text"] == "x" * 200


def test_starting_after_is_checked_on_a_trimmed_log_without_a_replay(trimmed: Server) -> None:
    body = {"model": "synthetic", "input": "go", "metadata": {"events": "200", "event_bytes": "1"}}
    with trimmed.client() as client:
        response_id = client.post("/v1/responses", json=body).json()["id"]
        # created, in_progress, item added, part added, 200 deltas, text done, part done,
        # item done, completed: numbered 0..207.
        past = client.get(f"/v1/responses/{response_id}?stream=true&starting_after=208")
        assert past.status_code == 400
        assert past.json()["error"]["last_sequence_number"] == 207
        at_end = client.get(f"/v1/responses/{response_id}?stream=true&starting_after=207")
        assert at_end.status_code == 200


# -- 2. text that is not Unicode --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/runs",
            {"producer": "echo", "input": {"text": "\ud800 x"}, "stream": True},
            "input.text",
        ),
        (
            "/v1/chat/completions",
            {"model": "echo", "messages": [{"role": "user", "content": "a\udfffb"}]},
            "messages.0.content",
        ),
        ("/v1/responses", {"model": "echo", "input": "\ud800", "stream": True}, "input"),
        (
            "/api/chat",
            {
                "id": "chat-1",
                "messages": [
                    {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "\ud800"}]}
                ],
            },
            "messages.0.parts.0.text",
        ),
        ("/v1/runs", {"producer": "echo", "input": {"\udc00": "x"}}, "input"),
    ],
)
def test_a_lone_surrogate_in_a_request_is_a_400_naming_the_field(
    trimmed: Server, path: str, body: dict[str, Any], field: str
) -> None:
    with trimmed.client() as client:
        answer = post_raw(client, path, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["fields"][0]["field"] == field
    assert "surrogate" in error["message"]


def test_a_lone_surrogate_answer_to_a_question_is_a_400_and_the_run_goes_on(
    trimmed: Server,
) -> None:
    body = {"producer": "synthetic", "input": {"events": 2, "ask_at": 1}, "background": True}
    with trimmed.client() as client:
        run_id = client.post("/v1/runs", json=body).json()["id"]
        deadline = time.monotonic() + 20
        view = client.get(f"/v1/runs/{run_id}").json()
        while view["pending_interaction"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
            view = client.get(f"/v1/runs/{run_id}").json()
        url = view["pending_interaction"]["response_url"]
        refused = post_raw(client, url, {"response": "\ud800"})
        assert refused.status_code == 400
        assert refused.json()["error"]["fields"][0]["field"] == "response"
        assert client.post(url, json={"response": "yes"}).status_code == 200
        stream = RawStream(trimmed.port, "GET", f"/v1/runs/{run_id}/events")
        events = [f.json() for f in parse_sse(stream.read_to_end()) if f.id]
        stream.close()
    assert events[-1]["type"] == "run.completed"


def assert_utf8_frames(raw: bytes) -> list[Any]:
    payloads = []
    for frame in parse_sse(raw):
        if frame.data and frame.data != "[DONE]":
            payloads.append(frame.json())
    raw.decode("utf-8")
    return payloads


@pytest.mark.parametrize(
    ("path", "body", "last"),
    [
        ("/v1/runs", {"producer": "lone_surrogates", "stream": True}, "run.completed"),
        (
            "/v1/chat/completions",
            {
                "model": "lone_surrogates",
                "messages": [{"role": "user", "content": "go"}],
                "stream": True,
            },
            "[DONE]",
        ),
        ("/v1/responses", {"model": "lone_surrogates", "input": "", "stream": True}, None),
        (
            "/api/chat",
            {
                "id": "c-surrogates",
                "messages": [],
                "producer": "lone_surrogates",
            },
            "[DONE]",
        ),
    ],
)
def test_a_producers_lone_surrogates_reach_every_client_as_replacement_characters(
    trimmed: Server, path: str, body: dict[str, Any], last: str | None
) -> None:
    stream = RawStream(trimmed.port, "POST", path, body)
    assert stream.status == 200
    raw = stream.read_to_end()
    stream.close()
    payloads = assert_utf8_frames(raw)
    assert "\ufffd" in raw.decode("utf-8")
    frames = parse_sse(raw)
    if last == "run.completed":
        assert payloads[-1]["type"] == last
    elif last == "[DONE]":
        assert frames[-1].data == "[DONE]"
    else:
        assert payloads[-1]["type"] == "response.completed"
    with httpx.Client(base_url=trimmed.url, timeout=20) as client:
        if path == "/v1/responses":
            stored = client.get(f"/v1/responses/{payloads[-1]['response']['id']}")
            assert stored.status_code == 200
            assert "\ufffd" in stored.text


def test_a_producers_lone_surrogates_in_non_streaming_answers(trimmed: Server) -> None:
    with trimmed.client() as client:
        chat = client.post(
            "/v1/chat/completions", json={"model": "lone_surrogates", "messages": GO}
        )
        assert chat.status_code == 200
        message = chat.json()["choices"][0]["message"]
        assert message["content"] == "before \ufffd after"
        assert message["tool_calls"][0]["function"]["name"] == "look\ufffdup"
        view = client.post("/v1/runs", json={"producer": "lone_surrogates"})
        assert view.status_code == 200
        assert view.json()["output"]["reasoning"] == "\ufffd"


# -- 3. byte budgets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/chat/completions",
            {
                "model": "synthetic",
                "messages": [{"role": "user", "content": "go"}],
                "metadata": {"events": "2000", "event_bytes": "1048576"},
            },
            "metadata.events",
        ),
        (
            "/v1/runs",
            {"producer": "synthetic", "input": {"events": 9, "event_bytes": 1024}},
            "input.events",
        ),
    ],
)
def test_synthetic_output_beyond_the_budget_is_a_400(
    small: Server, path: str, body: dict[str, Any], field: str
) -> None:
    with small.client() as client:
        answer = client.post(path, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"][0]["field"] == field
    assert "output budget" in answer.json()["error"]["fields"][0]["message"]


def test_output_beyond_the_budget_fails_the_run_with_its_code(small: Server) -> None:
    words = "ab " * 3000  # 9,000 characters in 2-3 character deltas: over 8,192
    with small.client() as client:
        native = client.post("/v1/runs", json={"producer": "echo", "input": {"text": words}})
        assert native.status_code == 500
        assert native.json()["error"]["code"] == "output_too_large"
        assert native.json()["error"]["run"]["status"] == "failed"
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": words}]},
        )
        assert chat.status_code == 500
        assert chat.json()["error"]["code"] == "output_too_large"
    stream = RawStream(
        small.port, "POST", "/v1/responses", {"model": "echo", "input": words, "stream": True}
    )
    events = [f.json() for f in parse_sse(stream.read_to_end())]
    stream.close()
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"  # the spec's enum
    assert "output exceeded" in events[-1]["response"]["error"]["message"]


def test_an_event_beyond_the_limit_fails_the_run_with_its_code(small: Server) -> None:
    with small.client() as client:
        answer = client.post("/v1/runs", json={"producer": "echo", "input": {"text": "w" * 3000}})
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "event_too_large"


def test_the_demo_producers_can_be_switched_off(tmp_path: Any) -> None:
    with run_server(tmp_path, {"SCOPESTREAM_DEMO_PRODUCERS": "false"}) as server:
        with server.client() as client:
            models = [m["id"] for m in client.get("/v1/models").json()["data"]]
            refused = client.post("/v1/runs", json={"producer": "synthetic"})
    assert "synthetic" not in models and "echo" not in models
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unknown_producer"
