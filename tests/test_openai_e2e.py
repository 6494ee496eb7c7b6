"""The official ``openai`` package against a real hypercorn -k trio server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from engine.protocols import RESPONSES_ERROR_CODES

from ._server import Server, run_server
from ._sse import parse_sse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("openai")) as server:
        yield server


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_stream_assembles_the_text(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo",
        messages=user("the quick brown fox"),  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "the quick brown fox"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_chat_non_streaming(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="synthetic",
        messages=user("x"),  # type: ignore[arg-type]
        metadata={"events": "3", "event_bytes": "2", "finish_reason": "length"},
    )
    assert completion.choices[0].message.content == "xxxxxx"
    assert completion.choices[0].finish_reason == "length"


def test_failing_chat_stream_raises_and_sends_no_done(
    client: openai.OpenAI, server: Server
) -> None:
    metadata = {"events": "5", "fail_at": "3", "fail_code": "upstream_error"}
    stream = client.chat.completions.create(
        model="synthetic",
        messages=user("x"),  # type: ignore[arg-type]
        stream=True,
        metadata=metadata,
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert caught.value.message == "Synthetic failure at event 3."
    assert all(c.choices[0].finish_reason is None for c in received if c.choices)
    # The same stream on the wire: an error frame, and no [DONE], no finish_reason.
    raw = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "synthetic", "messages": user("x"), "stream": True, "metadata": metadata},
        timeout=20,
    ).text
    assert "[DONE]" not in raw
    assert '"finish_reason":"stop"' not in raw
    assert parse_sse(raw.encode())[-1].json()["error"]["code"] == "upstream_error"


def test_cancelled_chat_stream_is_an_error_not_success(
    client: openai.OpenAI, server: Server
) -> None:
    stream = client.chat.completions.create(
        model="synthetic",
        messages=user("x"),  # type: ignore[arg-type]
        stream=True,
        metadata={"events": "1000", "interval_ms": "20"},
    )
    run_id = stream.response.headers["x-run-id"]
    iterator = iter(stream)
    next(iterator)
    httpx.post(f"{server.url}/v1/runs/{run_id}/cancel", timeout=20)
    with pytest.raises(openai.APIError) as caught:
        for _ in iterator:
            pass
    assert "cancel" in caught.value.message


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=user("x"))  # type: ignore[arg-type]


def test_responses_stream_completed(client: openai.OpenAI) -> None:
    with client.responses.stream(model="echo", input="hello typed events") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert final.status == "completed"
    assert final.output_text == "hello typed events"


def test_responses_stream_incomplete_for_length(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="synthetic",
            input="x",
            stream=True,
            metadata={"events": "2", "finish_reason": "length"},
        )
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]


def test_responses_stream_failed_uses_a_spec_code(client: openai.OpenAI) -> None:
    for engine_code in ("upstream_error", "rate_limit_exceeded", "stalled"):
        events = list(
            client.responses.create(
                model="synthetic",
                input="x",
                stream=True,
                metadata={"events": "3", "fail_at": "2", "fail_code": engine_code},
            )
        )
        last = events[-1]
        assert last.type == "response.failed"
        error = last.response.error  # type: ignore[union-attr]
        assert error is not None and error.code in RESPONSES_ERROR_CODES
        assert error.code == (
            "rate_limit_exceeded" if engine_code == "rate_limit_exceeded" else "server_error"
        )


def test_responses_stream_cancelled_is_not_success(client: openai.OpenAI, server: Server) -> None:
    with client.responses.stream(
        model="synthetic", input="x", metadata={"events": "1000", "interval_ms": "20"}
    ) as stream:
        run_id = stream._response.headers["x-run-id"]  # type: ignore[attr-defined]
        iterator = iter(stream)
        next(iterator)
        httpx.post(f"{server.url}/v1/runs/{run_id}/cancel", timeout=20)
        events = list(iterator)
        assert events[-1].type == "response.failed"
        assert events[-1].response.status == "cancelled"  # type: ignore[union-attr]
        with pytest.raises(Exception):  # noqa: B017 - any error: just never a success
            stream.get_final_response()
    response_id = events[-1].response.id  # type: ignore[union-attr]
    assert client.responses.retrieve(response_id).status == "cancelled"


def test_background_response_retrieve_cancel_and_resume(
    client: openai.OpenAI, server: Server
) -> None:
    # The run stops halfway to ask a question, so it is in progress when retrieved however
    # slow the machine is; answering it lets it finish.
    created = client.responses.create(
        model="synthetic",
        input="x",
        background=True,
        metadata={"events": "400", "ask_at": "200"},
    )
    assert created.status in ("queued", "in_progress") and created.background
    run_url = f"{server.url}/v1/runs/run_{created.id.removeprefix('resp_')}"
    deadline = time.monotonic() + 20
    while (view := httpx.get(run_url).json())["pending_interaction"] is None:
        assert time.monotonic() < deadline and view["status"] in ("queued", "running"), view
        time.sleep(0.02)
    assert client.responses.retrieve(created.id).status == "in_progress"
    answered = httpx.post(
        server.url + view["pending_interaction"]["response_url"], json={"response": "yes"}
    )
    assert answered.status_code == 200
    # Follow it with the SDK's own resume, twice from different cursors.
    full = list(client.responses.retrieve(created.id, stream=True))
    numbers = [e.sequence_number for e in full]
    assert numbers == list(range(len(numbers)))
    assert full[-1].type == "response.completed"
    for cursor in (0, 5, len(full) // 2, len(full) - 2):
        resumed = list(client.responses.retrieve(created.id, stream=True, starting_after=cursor))
        assert [e.sequence_number for e in resumed] == numbers[cursor + 1 :]
        assert [e.model_dump() for e in resumed] == [e.model_dump() for e in full[cursor + 1 :]]
    # Cancelling a finished response changes nothing; cancelling a live one ends it.
    assert client.responses.cancel(created.id).status == "completed"
    live = client.responses.create(
        model="synthetic",
        input="x",
        background=True,
        metadata={"events": "1000", "interval_ms": "20"},
    )
    cancelled = client.responses.cancel(live.id)
    assert cancelled.status == "cancelled"
    assert client.responses.cancel(live.id).status == "cancelled"
    assert client.responses.retrieve(live.id).status == "cancelled"


def test_models_lists_the_producers(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} >= {"echo", "synthetic"}


def test_paused_non_streaming_calls_answer_202(server: Server) -> None:
    for path, body in (
        ("/v1/chat/completions", {"model": "synthetic", "messages": user("x")}),
        ("/v1/responses", {"model": "synthetic", "input": "x"}),
    ):
        body["metadata"] = {"events": "2", "ask_at": "1"}
        response = httpx.post(server.url + path, json=body, timeout=20)
        assert response.status_code == 202, path
        accepted = response.json()
        assert accepted["status"] == "awaiting_input"
        assert response.headers["location"] == accepted["status_url"]
        answer = httpx.post(server.url + accepted["response_url"], json={"response": "ok"})
        assert answer.status_code == 200


def test_openapi_lists_202_only_when_interactive(server: Server, tmp_path: object) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/responses"):
        assert "202" in spec["paths"][path]["post"]["responses"]


def test_openapi_without_interactive_mode(tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_server(tmp_path_factory.mktemp("off"), {"SCOPESTREAM_INTERACTIVE": "0"}) as off:
        spec = httpx.get(off.url + "/openapi.json").json()
        for path in ("/v1/chat/completions", "/v1/responses"):
            assert "202" not in spec["paths"][path]["post"]["responses"]
        response = httpx.post(
            off.url + "/v1/chat/completions",
            json={"model": "synthetic", "messages": user("x"), "metadata": {"ask_at": "1"}},
        )
        assert response.status_code == 501
        assert response.json()["error"]["code"] == "interaction_not_supported"


def test_null_metadata_is_no_metadata(server: Server) -> None:
    for path, body in (
        ("/v1/chat/completions", {"model": "echo", "messages": user("null is fine")}),
        ("/v1/responses", {"model": "echo", "input": "null is fine"}),
    ):
        response = httpx.post(server.url + path, json={**body, "metadata": None}, timeout=20)
        assert response.status_code == 200, (path, response.text)
        assert "null is fine" in response.text


def test_unknown_response_ids_speak_of_a_response(client: openai.OpenAI, server: Server) -> None:
    for response_id in ("resp_0123456789abcdef0123456789abcdef", "resp_nope", "run_nope"):
        for method, path in (
            ("GET", f"/v1/responses/{response_id}"),
            ("GET", f"/v1/responses/{response_id}?stream=true"),
            ("POST", f"/v1/responses/{response_id}/cancel"),
        ):
            response = httpx.request(method, server.url + path, timeout=20)
            assert response.status_code == 404, path
            error = response.json()["error"]
            assert error["code"] == "not_found"
            assert error["message"] == f"No response {response_id!r}.", path
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_0123456789abcdef0123456789abcdef")


def test_starting_after_past_the_end_is_a_400(client: openai.OpenAI, server: Server) -> None:
    finished = client.responses.create(model="synthetic", input="x", metadata={"events": "2"})
    events = list(client.responses.retrieve(finished.id, stream=True))
    last = events[-1].sequence_number
    for cursor in (last + 1, 100):
        response = httpx.get(
            f"{server.url}/v1/responses/{finished.id}?stream=true&starting_after={cursor}",
            timeout=20,
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert [f["field"] for f in error["fields"]] == ["starting_after"]
        assert error["last_sequence_number"] == last
    # At the end exactly: nothing more, and not an error.
    assert list(client.responses.retrieve(finished.id, stream=True, starting_after=last)) == []
    # A live response: up to the last event so far is fine, beyond it is not.
    live = client.responses.create(
        model="synthetic", input="x", background=True, metadata={"events": "2", "ask_at": "1"}
    )
    run_id = "run_" + live.id.removeprefix("resp_")
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/v1/runs/{run_id}").json()["status"] != "awaiting_input":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    so_far = httpx.get(f"{server.url}/v1/responses/{live.id}?stream=true&starting_after=100")
    assert so_far.status_code == 400
    live_last = so_far.json()["error"]["last_sequence_number"]
    assert live_last >= 1  # response.created, response.in_progress at least
    with httpx.stream(
        "GET", f"{server.url}/v1/responses/{live.id}?stream=true&starting_after={live_last}"
    ) as stream:
        assert stream.status_code == 200
    httpx.post(f"{server.url}/v1/runs/{run_id}/cancel", timeout=20)


def test_api_keys_scope_responses_and_chats(tmp_path_factory: pytest.TempPathFactory) -> None:
    env = {"SCOPESTREAM_API_KEYS": "key-alice,key-bob"}
    with run_server(tmp_path_factory.mktemp("keys"), env) as keyed:
        alice = openai.OpenAI(base_url=keyed.url + "/v1", api_key="key-alice", max_retries=0)
        bob = openai.OpenAI(base_url=keyed.url + "/v1", api_key="key-bob", max_retries=0)
        with alice, bob:
            created = alice.responses.create(
                model="synthetic",
                input="x",
                background=True,
                metadata={"events": "2", "ask_at": "1"},
            )
            for call in (
                lambda: bob.responses.retrieve(created.id),
                lambda: bob.responses.retrieve(created.id, stream=True),
                lambda: bob.responses.cancel(created.id),
            ):
                with pytest.raises(openai.NotFoundError) as caught:
                    call()
                assert caught.value.status_code == 404
                assert caught.value.body["code"] == "not_found"  # type: ignore[index]
            assert alice.responses.retrieve(created.id).status != "cancelled"
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(
                    base_url=keyed.url + "/v1", api_key="key-mallory", max_retries=0
                ).responses.retrieve(created.id)
            assert alice.responses.cancel(created.id).status == "cancelled"
        # A chat belongs to its key too: another key's same chat id is another chat.
        alice_h = {"Authorization": "Bearer key-alice"}
        bob_h = {"Authorization": "Bearer key-bob"}
        chat = {
            "id": "shared-chat-id",
            "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "x"}]}],
            "producer": "synthetic",
            "metadata": {"events": 2, "ask_at": 1},
            "on_disconnect": "continue",
        }
        with httpx.Client(base_url=keyed.url, timeout=20) as http:
            with http.stream("POST", "/api/chat", json=chat, headers=alice_h) as first:
                assert first.status_code == 200
                alice_run = first.headers["x-run-id"]
            assert http.get("/api/chat/shared-chat-id/stream", headers=bob_h).status_code == 204
            assert http.get(f"/v1/runs/{alice_run}", headers=bob_h).status_code == 404
            with http.stream("POST", "/api/chat", json=chat, headers=bob_h) as second:
                assert second.status_code == 200
                assert second.headers["x-run-id"] != alice_run
            view = http.get(f"/v1/runs/{alice_run}", headers=alice_h).json()
            assert view["status"] == "awaiting_input"  # bob's message did not cancel it
            # Answered before its body is read: on its own connection, so the next request
            # does not depend on how the transport recycles that one.
            assert httpx.post(keyed.url + "/api/chat", json=chat, timeout=20).status_code == 401
            http.post(f"/v1/runs/{alice_run}/cancel", headers=alice_h)
