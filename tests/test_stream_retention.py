"""What an idle stream keeps alive, checked in-process on the service's ASGI entry point.

An idle stream (one event, then only keepalives) may last hours, and a worker holds
thousands: whatever the request that started it leaves reachable is paid for the whole
time, per stream. Once the stream is handed to the transport core, nothing of the request
(its parsed body and model, Quart's request and contexts, the entry point's copy of the
scope) or of the producer's validated input should be left, whichever way the request
was served. (The wire behaviour of streams is tested against a real server elsewhere;
this is about references, which only the process itself can see.)
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
import trio
from quart.ctx import AppContext, RequestContext
from quart.wrappers import Request

import app._factory as factory
from app import Settings, create_app, create_asgi
from app._asgi import ScopestreamASGI
from app.producers import SyntheticInput
from app.schemas import CreateRun

# What a stream is started with: a request whose body is a synthetic run that sends one
# event and then nothing but keepalives for an hour.
_BODY = json.dumps(
    {"producer": "synthetic", "input": {"events": 2, "interval_ms": 3_600_000}, "stream": True}
).encode()


@pytest.fixture(autouse=True)
def _no_log_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "configure_logging", lambda level: None)


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/runs",
        "raw_path": b"/v1/runs",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }


def _is_scope_copy(o: object) -> bool:
    """The entry point's copy of the scope: the one that carries its request extension."""
    return (
        isinstance(o, dict)
        and isinstance(o.get("extensions"), dict)
        and "scopestream" in o["extensions"]
    )


def _is_parsed_body(o: object) -> bool:
    return isinstance(o, dict) and o.get("producer") == "synthetic" and "stream" in o


_KEPT: dict[str, Callable[[object], bool]] = {
    "request's parsed body": _is_parsed_body,
    "request's validated model": lambda o: isinstance(o, CreateRun),
    "Quart request": lambda o: isinstance(o, Request),
    "Quart request context": lambda o: isinstance(o, RequestContext),
    "Quart app context": lambda o: isinstance(o, AppContext),
    "entry point's scope copy": _is_scope_copy,
    "synthetic input model": lambda o: isinstance(o, SyntheticInput),
}


def _census() -> dict[str, int]:
    gc.collect()
    objects = gc.get_objects()
    return {name: sum(1 for o in objects if kept(o)) for name, kept in _KEPT.items()}


@pytest.mark.parametrize("path", ["direct", "quart"])
async def test_an_idle_stream_keeps_nothing_of_the_request_that_started_it(path: str) -> None:
    # The entry point starts such a stream itself (app._hot); without its direct routes,
    # Quart's route does.
    asgi = create_asgi(Settings()) if path == "direct" else ScopestreamASGI(create_app(Settings()))
    quart_app = asgi.app
    first_event = trio.Event()
    client_gone = trio.Event()
    sent: list[MutableMapping[str, Any]] = []
    request = [{"type": "http.request", "body": _BODY, "more_body": False}]

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if b"text.delta" in message.get("body", b""):
            first_event.set()

    async def receive() -> MutableMapping[str, Any]:
        if request:
            return request.pop()
        await client_gone.wait()
        return {"type": "http.disconnect"}

    async def request_task() -> None:
        # As under hypercorn, the app is called from the request task's own coroutine (the
        # transport core looks through that task's frames for the connection's socket).
        await asgi(_scope(), receive, send)

    with trio.fail_after(20):
        async with quart_app.test_app(), trio.open_nursery() as nursery:
            before = _census()
            nursery.start_soon(request_task)
            await first_event.wait()
            during = _census()
            client_gone.set()
    assert sent[0]["status"] == 200  # a stream, idle now, is being served
    assert during == before
