"""API keys over real sockets: authentication comes before everything else.

A request without a valid key gets 401 whatever else is wrong with it (an unknown model, a
body that is not JSON, too large or of another media type, a route that does not exist),
and the answer says nothing about the service beyond that a key is needed. ``/healthz``
never needs a key; metrics and the docs need one unless ``SCOPESTREAM_PUBLIC_OPS`` is on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ._server import Server, run_server

pytestmark = pytest.mark.e2e

KEYS = {"SCOPESTREAM_API_KEYS": "key-alice", "SCOPESTREAM_MAX_BODY_BYTES": "4096"}
ALICE = {"Authorization": "Bearer key-alice"}
UI_MESSAGE = {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "x"}]}

# (method, path, body) for every route family, each with a body that would be refused for
# another reason (unknown producer or model, invalid fields) if the key were not checked
# first.
ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/runs", {"producer": "nope", "input": {"evnets": 1}}),
    ("GET", "/v1/runs?limit=0", None),
    ("GET", "/v1/runs/run_0123456789abcdef0123456789abcdef", None),
    ("GET", "/v1/runs/run_0123456789abcdef0123456789abcdef/events?after=x", None),
    ("POST", "/v1/runs/some-client-id/cancel?wait=maybe", None),
    ("POST", "/v1/runs/run_x/interactions/int_x", {"wrong": 1}),
    ("POST", "/v1/chat/completions", {"model": "nope", "messages": []}),
    ("POST", "/v1/responses", {"model": "nope", "input": 5}),
    ("GET", "/v1/responses/resp_x?stream=true&starting_after=-1", None),
    ("POST", "/v1/responses/resp_x/cancel", None),
    ("GET", "/v1/models", None),
    ("POST", "/api/chat", {"id": "run_0123456789abcdef0123456789abcdef", "producer": "nope"}),
    ("GET", "/api/chat/some-chat/stream", None),
    ("GET", "/no/such/route", None),
    ("DELETE", "/v1/runs", None),
]
OPENAI_ROUTES = {"/v1/chat/completions", "/v1/responses", "/v1/models"}
OPS = ["/metrics", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(tmp_path_factory.mktemp("keyed"), KEYS) as server:
        yield server


def assert_unauthorized(response: httpx.Response, path: str) -> None:
    assert response.status_code == 401, (path, response.text)
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert "API key" in error["message"]
    # Nothing beyond "a key is needed": no producer names, no fields, no routes.
    assert set(error) <= {"code", "message", "type", "param"}, error
    for leak in ("synthetic", "echo", "nope", "field"):
        assert leak not in response.text, (path, response.text)
    if path.split("?")[0].removesuffix("/cancel").rstrip("/") in OPENAI_ROUTES or path.startswith(
        "/v1/responses"
    ):
        # The OpenAI routes answer in the OpenAI error shape.
        assert error == {
            "message": error["message"],
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    else:
        assert error["code"] == "unauthorized"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", "key-alice", "Basic a2V5LWFsaWNl", "Bearer  key-alice x"],
)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_a_request_without_a_valid_key_is_a_401_before_anything_else(
    keyed: Server, method: str, path: str, body: Any, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    with keyed.client() as client:
        response = client.request(method, path, json=body, headers=headers)
    assert_unauthorized(response, path)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"producer": "echo"}', "text/plain"),
        (b"\xff\xfe", "application/json"),
        (b'{"producer": "echo", "input": {"text": "' + b"x" * 10_000 + b'"}}', "application/json"),
    ],
    ids=["not-json", "not-json-typed", "not-utf8", "too-large"],
)
@pytest.mark.parametrize("path", ["/v1/runs", "/v1/chat/completions", "/api/chat"])
def test_the_body_is_not_read_without_a_key(
    keyed: Server, path: str, content: bytes, content_type: str
) -> None:
    # One connection per request: a keep-alive connection after an answer given before the
    # body was read is the transport's concern, not this test's.
    with keyed.client() as client:
        response = client.post(path, content=content, headers={"content-type": content_type})
    assert_unauthorized(response, path)
    # With the key, the same request is refused for what it is.
    with keyed.client() as client:
        response = client.post(
            path, content=content, headers={"content-type": content_type, **ALICE}
        )
    assert response.status_code in (400, 413, 415), response.text


def test_with_the_key_the_routes_answer_as_usual(keyed: Server) -> None:
    with keyed.client(headers=ALICE) as client:
        unknown = client.post("/v1/chat/completions", json={"model": "nope", "messages": [{}]})
        assert unknown.status_code in (400, 404)
        view = client.post("/v1/runs", json={"producer": "echo", "input": {"text": "hi"}})
        assert view.status_code == 200 and view.json()["status"] == "completed"
        assert client.get("/no/such/route").status_code == 404
    sdk = openai.OpenAI(base_url=keyed.url + "/v1", api_key="key-alice", max_retries=0)
    with sdk:
        assert [m.id for m in sdk.models.list()] == ["echo", "synthetic"]
    stranger = openai.OpenAI(base_url=keyed.url + "/v1", api_key="key-mallory", max_retries=0)
    with stranger, pytest.raises(openai.AuthenticationError) as caught:
        stranger.chat.completions.create(model="nope", messages=[])
    assert caught.value.code == "invalid_api_key"


def test_health_is_open_and_operations_need_the_key_by_default(keyed: Server) -> None:
    with keyed.client() as client:
        assert client.get("/healthz").status_code == 200
        # The playground's files hold no data: its page asks for the key itself.
        assert client.get("/").status_code in (301, 302)
        assert client.get("/playground/").status_code == 200
        for path in OPS:
            assert_unauthorized(client.get(path), path)
            assert client.get(path, headers=ALICE).status_code == 200, path


def test_public_ops_opens_metrics_and_docs_only(tmp_path: Path) -> None:
    with run_server(tmp_path, {**KEYS, "SCOPESTREAM_PUBLIC_OPS": "true"}) as server:
        with server.client() as client:
            assert client.get("/healthz").status_code == 200
            for path in OPS:
                assert client.get(path).status_code == 200, path
        for method, path, body in ROUTES:
            with server.client() as client:  # one connection each, as above
                assert_unauthorized(client.request(method, path, json=body), path)
