"""The Vercel ``ai`` package, under Node, reading UI message streams from the real server:
every chunk valid for every installed release, and the message each release assembles."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ._http import RawStream
from ._server import Server, run_server
from .test_proto_ai_sdk_node import _node_installed, run_validator  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.node]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("ai")) as server:
        yield server


def ui_message(text: str) -> dict[str, Any]:
    return {"id": "m1", "role": "user", "parts": [{"type": "text", "text": text}]}


def post_chat(server: Server, chat_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "id": chat_id,
        "messages": [ui_message("hello from the ai sdk")],
        "trigger": "submit-message",
    }
    body.update(extra)
    return run_validator(server.url + "/api/chat", "--method", "POST", "--body", json.dumps(body))


def every_release(summary: dict[str, Any]) -> list[dict[str, Any]]:
    assert summary["versions"], summary
    for alias, result in summary["versions"].items():
        assert result["valid"], (alias, result["invalid"])
        assert result["readerError"] is None, (alias, result["readerError"])
    return list(summary["versions"].values())


def test_completed(server: Server) -> None:
    for result in every_release(post_chat(server, "chat-completed")):
        assert result["text"] == "hello from the ai sdk"
        assert (result["finished"], result["aborted"], result["errors"]) == (True, False, [])


def test_failed(server: Server) -> None:
    summary = post_chat(
        server,
        "chat-failed",
        producer="synthetic",
        metadata={"events": 4, "event_bytes": 3, "fail_at": 3, "fail_code": "upstream_error"},
    )
    for result in every_release(summary):
        assert result["text"] == "xxxxxx"
        assert result["errors"] == ["Synthetic failure at event 3."]
        assert (result["finished"], result["aborted"]) == (False, False)


def test_cancelled(server: Server) -> None:
    def cancel_soon() -> None:
        time.sleep(0.5)
        httpx.post(f"{server.url}/v1/runs/chat-cancelled/cancel", timeout=10)

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    summary = post_chat(
        server,
        "chat-cancelled",
        producer="synthetic",
        metadata={"events": 1000, "event_bytes": 1, "interval_ms": 20},
    )
    canceller.join()
    for result in every_release(summary):
        assert 0 < len(result["text"]) < 1000
        assert (result["finished"], result["aborted"], result["errors"]) == (False, True, [])
        assert result["chunkTypes"][-1] == "abort"


def test_response_headers(server: Server) -> None:
    body = {"id": "chat-headers", "messages": [ui_message("hi")]}
    response = httpx.post(server.url + "/api/chat", json=body, timeout=10)
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")


def open_connections(server: Server) -> float:
    for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("scopestream_connections "):
            return float(line.split()[1])
    raise AssertionError("no scopestream_connections gauge")


def test_resume_streams_the_active_message_from_its_start(server: Server) -> None:
    assert httpx.get(server.url + "/api/chat/chat-idle/stream").status_code == 204
    # The run stops halfway to ask a question and goes on only once the resumed stream is
    # attached, so the resume finds it active however slowly Node starts.
    body = {
        "id": "chat-resume",
        "messages": [ui_message("x")],
        "producer": "synthetic",
        "metadata": {"events": 30, "event_bytes": 1, "ask_at": 16},
    }
    original = RawStream(server.port, "POST", "/api/chat", body)
    original.read_until(lambda frame: "data-interaction" in frame.data)
    run_url = f"{server.url}/v1/runs/{original.headers['x-run-id']}"
    attached = open_connections(server) + 1
    summaries: list[dict[str, Any]] = []
    resumer = threading.Thread(
        target=lambda: summaries.append(
            run_validator(server.url + "/api/chat/chat-resume/stream", "--method", "GET")
        )
    )
    resumer.start()
    deadline = time.monotonic() + 60
    while open_connections(server) < attached:
        assert resumer.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    pending = httpx.get(run_url, timeout=10).json()["pending_interaction"]
    answer = httpx.post(server.url + pending["response_url"], json={"response": "yes"})
    assert answer.status_code == 200
    resumer.join(timeout=120)
    assert not resumer.is_alive() and len(summaries) == 1
    for result in every_release(summaries[0]):
        assert result["text"] == "x" * 30
        assert result["finished"]
    original.read_to_end()
    assert original.raw.endswith(b"data: [DONE]\n\n")
    # Once the message is finished, nothing is active any more.
    assert httpx.get(server.url + "/api/chat/chat-resume/stream").status_code == 204


def test_the_messages_each_release_assembled_are_accepted_back(server: Server) -> None:
    # useChat sends the conversation so far with every new message: the assistant messages
    # in it are what readUIMessageStream assembled from this server's streams.
    summaries = [
        post_chat(server, "chat-history-1"),
        post_chat(
            server,
            "chat-history-2",
            producer="synthetic",
            metadata={"events": 2, "event_bytes": 3, "fail_at": 2, "fail_code": "upstream_error"},
        ),
    ]
    for summary in summaries:
        for alias, result in summary["versions"].items():
            assistant = result["message"]
            assert assistant["role"] == "assistant" and assistant["parts"], alias
            body = {
                "id": f"chat-history-{alias}",
                "messages": [
                    ui_message("hello from the ai sdk"),
                    assistant,
                    {**ui_message("and again"), "id": "m2"},
                ],
                "trigger": "submit-message",
                "messageId": None,
            }
            response = httpx.post(server.url + "/api/chat", json=body, timeout=20)
            assert response.status_code == 200, (alias, response.text)
            assert response.text.endswith("data: [DONE]\n\n")
