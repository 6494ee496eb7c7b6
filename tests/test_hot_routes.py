"""Which requests the entry point serves without Quart (``app._hot``), in process.

The answers themselves are compared with Quart's over a real server in
``test_hot_routes_e2e.py``; here the point is that the hot requests never reach Quart's
app, and that everything else still does, with its body intact.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
import trio

from app import create_asgi
from app._asgi import ScopestreamASGI
from app.settings import Settings

Message = MutableMapping[str, Any]


class QuartSpy:
    """Stands between the entry point and Quart's app, noting the paths Quart serves."""

    def __init__(self, asgi: ScopestreamASGI) -> None:
        self.app = asgi.app
        self.paths: list[str] = []
        asgi.app = self

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"] + ("?" + scope["query_string"].decode()))
        await self.app(scope, receive, send)


@pytest.fixture
async def asgi(nursery: trio.Nursery) -> AsyncIterator[ScopestreamASGI]:
    asgi = create_asgi(Settings(api_keys=["k1"]))
    to_app, from_test = trio.open_memory_channel[Message](1)
    to_test, from_app = trio.open_memory_channel[Message](1)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    nursery.start_soon(asgi.app, scope, from_test.receive, to_test.send)
    await to_app.send({"type": "lifespan.startup"})
    assert (await from_app.receive())["type"] == "lifespan.startup.complete"
    yield asgi
    await to_app.send({"type": "lifespan.shutdown"})
    assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


async def call(
    asgi: ScopestreamASGI, path: str, body: bytes = b"", *, query: bytes = b""
) -> tuple[int, bytes]:
    """One POST through the entry point: the answer's status and whole body."""
    headers = [
        (b"host", b"test"),
        (b"authorization", b"Bearer k1"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    with trio.fail_after(10):
        await asgi(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_a_streamed_start_and_a_cancel_never_reach_quart(
    asgi: ScopestreamASGI, autojump_clock: trio.abc.Clock
) -> None:
    spy = QuartSpy(asgi)
    run = {"producer": "echo", "input": {"text": "a b"}, "stream": True}
    status, body = await call(asgi, "/v1/runs", json.dumps(run).encode())
    assert status == 200
    assert b"event: run.completed" in body
    status, body = await call(asgi, "/v1/runs/mine/cancel")
    assert (status, json.loads(body)["result"]) == (202, "remembered")
    status, body = await call(asgi, "/v1/runs", b'{"producer": "nope", "stream": true}')
    assert (status, json.loads(body)["error"]["code"]) == (400, "unknown_producer")
    assert spy.paths == []


async def test_other_requests_reach_quart_with_their_body(
    asgi: ScopestreamASGI, autojump_clock: trio.abc.Clock
) -> None:
    spy = QuartSpy(asgi)
    run = {"producer": "echo", "input": {"text": "a b"}}
    status, body = await call(asgi, "/v1/runs", json.dumps(run).encode())
    assert (status, json.loads(body)["output"]["text"]) == (200, "a b")
    status, body = await call(asgi, "/v1/runs/mine/cancel", query=b"wait=true")
    assert status == 202
    status, body = await call(asgi, "/v1/runs/mine/cancel", b'{"a": 1}')
    assert status == 202
    assert spy.paths == ["/v1/runs?", "/v1/runs/mine/cancel?wait=true", "/v1/runs/mine/cancel?"]
