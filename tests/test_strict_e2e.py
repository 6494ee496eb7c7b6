"""Strict parsing over real sockets: what is not exactly right is refused, never converted.

Cursors are ASCII digits; bodies are UTF-8; numbers are JSON numbers (on the OpenAI routes,
whose ``metadata`` values are strings by definition, numerals in JSON's grammar); client
ids use a documented character set; and every error message is the project's own, never
repeating a huge value.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ._server import Server, run_server

pytestmark = pytest.mark.e2e

BAD_CURSORS = ["", "+3", " 3", "3 ", "1_0", "\u0663", "\uff13", "3.0", "0x3", "-1", "4" * 4000]
IDS = ["empty", "plus", "space", "trailing-space", "underscore", "arabic-digit", "fullwidth-digit",
       "decimal", "hex", "negative", "4000-digits"]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("strict")) as server:
        yield server


@pytest.fixture(scope="module")
def finished(server: Server) -> dict[str, Any]:
    """A finished run (started, 3 deltas, usage, completed), and its Responses twin."""
    with server.client() as client:
        view = client.post("/v1/runs", json={"producer": "synthetic", "input": {"events": 3}})
        response = client.post(
            "/v1/responses",
            json={"model": "synthetic", "input": "x", "metadata": {"events": "3"}},
        )
    assert view.status_code == 200 and response.status_code == 200
    return {"run": view.json()["id"], "response": response.json()["id"]}


def assert_refused(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert field in [f["field"] for f in error["fields"]], error
    assert len(response.content) < 1000, "an error never repeats a huge value"
    return error


# -- cursors ---------------------------------------------------------------------------


@pytest.mark.parametrize("cursor", BAD_CURSORS, ids=IDS)
def test_a_cursor_is_ascii_digits_only(
    server: Server, finished: dict[str, Any], cursor: str
) -> None:
    run_id, response_id = finished["run"], finished["response"]
    with server.client() as client:
        for path, params in (
            (f"/v1/runs/{run_id}/events", {}),
            (f"/v1/responses/{response_id}", {"stream": "true"}),
        ):
            field = "starting_after" if params else "after"
            response = client.get(path, params={**params, field: cursor})
            error = assert_refused(response, 400, field)
            assert "0-9" in error["message"]
        if cursor != cursor.strip():
            return  # HTTP strips the spaces around a header value: " 3" arrives as "3"
        # The header can carry only Latin-1: a non-ASCII digit arrives as its UTF-8 bytes.
        header = cursor.encode() if not cursor.isascii() else cursor
        response = client.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": header})
        assert_refused(response, 400, "Last-Event-ID")


def test_a_cursor_of_digits_still_resumes(server: Server, finished: dict[str, Any]) -> None:
    with server.client() as client:
        response = client.get(f"/v1/runs/{finished['run']}/events", params={"after": "003"})
        assert response.status_code == 200
        assert [line for line in response.text.splitlines() if line.startswith("id:")] == [
            "id: 4",
            "id: 5",
            "id: 6",
        ]


# -- bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "utf-16", "windows-1252"])
def test_a_body_in_another_charset_is_refused(server: Server, charset: str) -> None:
    body = json.dumps({"producer": "echo", "input": {"text": "café"}}, ensure_ascii=False)
    with server.client() as client:
        response = client.post(
            "/v1/runs",
            content=body.encode("latin-1"),
            headers={"content-type": f"application/json; charset={charset}"},
        )
    error = assert_refused(response, 415, "Content-Type")
    assert error["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "(line 1, column 1)"),
        (b'{"producer": "echo",}', "(line 1, column 21)"),
        (b'{\n  "producer": echo\n}', "(line 2, column 15)"),
        (b'{"producer": "echo", "input": {"events": ' + b"9" * 5000 + b"}}", "too many digits"),
    ],
    ids=["empty", "trailing-comma", "bare-word", "huge-number"],
)
def test_json_errors_are_in_the_projects_words(server: Server, content: bytes, says: str) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/runs", content=content, headers={"content-type": "application/json"}
        )
    error = assert_refused(response, 400, "body")
    assert says in error["message"]
    for python_text in ("Expecting", "char ", "Exceeds the limit", "sys.set_int_max"):
        assert python_text not in error["message"]


# -- numbers are numbers ---------------------------------------------------------------


def ui_message() -> dict[str, Any]:
    return {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "x"}]}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/runs", {"producer": "synthetic", "input": {"events": "3"}}, "input.events"),
        ("/v1/runs", {"producer": "synthetic", "input": {"events": True}}, "input.events"),
        ("/v1/runs", {"producer": "synthetic", "input": {"events": 3.0}}, "input.events"),
        ("/v1/runs", {"producer": "synthetic", "input": {"stamp": 1}}, "input.stamp"),
        ("/v1/runs", {"producer": "echo", "input": {"interval_ms": "5"}}, "input.interval_ms"),
        ("/v1/runs", {"producer": "echo", "input": {"text": 5}}, "input.text"),
        ("/v1/runs", {"producer": "echo", "stream": "true"}, "stream"),
        ("/v1/runs", {"producer": "echo", "background": 1}, "background"),
        ("/v1/runs", {"producer": "echo", "on_disconnect": {"grace": "5"}}, "on_disconnect.grace"),
        (
            "/v1/chat/completions",
            {"model": "echo", "messages": [{"role": "user", "content": "x"}], "stream": "true"},
            "stream",
        ),
        ("/v1/responses", {"model": "echo", "input": "x", "background": "false"}, "background"),
        (
            "/api/chat",
            {"id": "c1", "messages": [ui_message()], "producer": "synthetic", "metadata": {"events": "3"}},
            "metadata.events",
        ),
        (
            "/api/chat",
            {"id": "c1", "messages": [ui_message()], "producer": "synthetic", "metadata": {"events": True}},
            "metadata.events",
        ),
    ],
)  # fmt: skip
def test_numbers_and_booleans_are_not_converted(
    server: Server, path: str, body: Any, field: str
) -> None:
    with server.client() as client:
        response = client.post(path, json=body)
    assert assert_refused(response, 400, field)["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"events": "+3"}, "metadata.events"),
        ({"events": " 3"}, "metadata.events"),
        ({"events": "1_0"}, "metadata.events"),
        ({"events": "\u0663"}, "metadata.events"),
        ({"events": "3.0"}, "metadata.events"),
        ({"events": "three"}, "metadata.events"),
        ({"interval_ms": "1e"}, "metadata.interval_ms"),
        ({"stamp": "yes"}, "metadata.stamp"),
        ({"stamp": "True"}, "metadata.stamp"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
def test_openai_metadata_numerals_follow_the_json_grammar(
    server: Server, path: str, metadata: dict[str, str], field: str
) -> None:
    body: dict[str, Any] = {"model": "synthetic", "metadata": metadata}
    body.update(
        {"messages": [{"role": "user", "content": "x"}]} if "chat" in path else {"input": "x"}
    )
    with server.client() as client:
        response = client.post(path, json=body)
    assert_refused(response, 400, field)


def test_openai_metadata_numerals_become_numbers(server: Server) -> None:
    metadata = {"events": "4", "event_bytes": "2", "interval_ms": "0.5", "stamp": "false"}
    with server.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": "synthetic",
                "messages": [{"role": "user", "content": "x"}],
                "metadata": {**metadata, "finish_reason": "length"},
            },
        )
        assert response.status_code == 200, response.text
        choice = response.json()["choices"][0]
        assert choice["message"]["content"] == "xx" * 4
        assert choice["finish_reason"] == "length"


# -- ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a/b", "a b", "a?b", "a%2Fb", "caf\u00e9", "", "x" * 201])
def test_client_ids_use_the_documented_characters(server: Server, bad: str) -> None:
    with server.client() as client:
        response = client.post("/v1/runs", json={"producer": "echo", "client_run_id": bad})
        assert_refused(response, 400, "client_run_id")
        response = client.post("/api/chat", json={"id": bad, "messages": [ui_message()]})
        assert_refused(response, 400, "id")


def test_a_client_id_of_the_documented_characters_is_reachable(server: Server) -> None:
    client_id = "Chat-1_a.b:C"
    with server.client() as client:
        view = client.post("/v1/runs", json={"producer": "echo", "client_run_id": client_id})
        assert view.status_code == 200 and view.json()["client_run_id"] == client_id
        assert client.get(f"/v1/runs/{client_id}").json()["id"] == view.json()["id"]


def test_a_huge_name_is_not_repeated_back(server: Server) -> None:
    with server.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "m" * 50_000, "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 404
        assert "50000 characters" in response.json()["error"]["message"]
        assert len(response.content) < 1000
        response = client.get("/v1/runs/" + "r" * 8000)
        assert response.status_code == 404 and len(response.content) < 1000


# -- what hypercorn answers itself ---------------------------------------------------------


def raw_exchange(server: Server, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT HTTP\r\n\r\n",
        "GET /v1/runs/\u00fc HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",
    ],
    ids=["request-line", "non-ascii-target", "content-length", "no-host"],
)
def test_requests_hypercorn_refuses_are_answered_as_documented(
    server: Server, request_bytes: bytes
) -> None:
    # docs/deployment.md, "Limits": these never reach the application; hypercorn answers
    # 400 with an empty body and closes the connection.
    head = raw_exchange(server, request_bytes).split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 400"), head
    assert b"content-length: 0" in head and b"connection: close" in head


def test_an_oversized_request_head_is_a_431(server: Server) -> None:
    # Sent in pieces, as a slow client would: the head is refused once 16 KiB are buffered.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        data = b""
        try:
            for _ in range(40):
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass  # the server may close before the last piece
        while chunk := sock.recv(65536):
            data += chunk
    assert data.lower().startswith(b"http/1.1 431"), data[:200]
