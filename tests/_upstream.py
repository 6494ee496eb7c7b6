"""A fake OpenAI-compatible upstream: a real HTTP/1.1 server on a loopback port.

It runs in its own thread (with its own ``trio.run``), so synchronous tests and their
blocking clients (the ``openai`` SDK, Node) never stall it. Each request's ``model`` picks
a script (:meth:`FakeUpstream.script`): chunks, raw bytes, ``[DONE]``, pauses, an HTTP
error status, a connection reset. The shapes below are those OpenAI, vLLM and Ollama send
(recorded from their servers' documentation and source: field order, the role chunk, the
usage chunk with ``choices: []``, vLLM's ``reasoning_content`` and flat error body,
Ollama's ``reasoning`` and whole tool calls in one chunk, llama.cpp's context error).

Every exchange is recorded: the request's body and headers, and ``time.monotonic()`` when
the response started, when the client went away (EOF or reset on the socket while the
script was still running) and when the script's next step would have run then.

Each response says ``connection: close``: one request per connection, so a closed
connection always means that request's client went away.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

__all__ = [
    "ERROR_ROWS",
    "MID_STREAM_ROWS",
    "Chunk",
    "Done",
    "Exchange",
    "FakeUpstream",
    "Raw",
    "Reset",
    "Sleep",
    "Status",
    "fake_upstream",
    "ollama_text",
    "ollama_tool_call",
    "openai_text",
    "openai_tool_calls",
    "started",
    "vllm_reasoning",
]


@dataclass(frozen=True)
class Chunk:
    data: Any  # one ``data:`` frame, JSON-encoded


@dataclass(frozen=True)
class Raw:
    data: bytes


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Status:
    """An HTTP error answer instead of a stream (must be the first step)."""

    status: int
    body: Any
    headers: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class Reset:
    """Abort the connection (TCP RST), wherever the script is."""


Step = Chunk | Raw | Done | Sleep | Status | Reset


@dataclass
class Exchange:
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    started_at: float
    #: When the client went away before the answer was complete (``[DONE]`` sent).
    disconnected_at: float | None = None
    #: When the step that was waiting at the disconnect would have run.
    pending_step_at: float | None = None
    completed: bool = False


@dataclass
class FakeUpstream:
    port: int = 0
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, steps: Sequence[Step]) -> str:
        with self._lock:
            self.scripts[model] = list(steps)
        return model

    def exchanges_for(self, model: str) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.model == model]

    def wait_for_stall(self, model: str, timeout: float = 10) -> Exchange:
        """The last exchange for ``model`` once its script waits in a :class:`Sleep`, so a
        disconnect from now on finds a step pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.exchanges_for(model)
            if found and found[-1].pending_step_at is not None:
                return found[-1]
            time.sleep(0.005)
        raise AssertionError(f"the upstream's script for {model!r} never reached a pause")

    def wait_for_disconnect(self, model: str, timeout: float = 10) -> Exchange:
        """The last exchange for ``model`` once its client went away (polls: a test
        thread waiting on the server's thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.exchanges_for(model)
            if found and found[-1].disconnected_at is not None:
                return found[-1]
            time.sleep(0.005)
        raise AssertionError(f"the upstream never saw its client for {model!r} go away")

    # -- the server ------------------------------------------------------------------

    async def serve(self, ready: threading.Event, stop: trio.Event) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._connection, listeners)
            ready.set()
            await stop.wait()
            nursery.cancel_scope.cancel()

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        body = bytearray()
        request: h11.Request | None = None
        with trio.move_on_after(10):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return
        if request is None:
            return
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        model = str(parsed.get("model", "")) if isinstance(parsed, dict) else ""
        exchange = Exchange(
            model=model,
            body=parsed,
            headers={k.decode().lower(): v.decode() for k, v in request.headers},
            started_at=time.monotonic(),
        )
        with self._lock:
            self.exchanges.append(exchange)
            steps = list(self.scripts.get(model, []))
        if not steps:
            steps = [Status(404, {"error": {"message": f"model {model!r} not found"}})]
        await self._play(stream, conn, steps, exchange)

    async def _play(
        self, stream: trio.SocketStream, conn: h11.Connection, steps: list[Step], ex: Exchange
    ) -> None:
        first = steps[0]
        if isinstance(first, Status):
            payload = json.dumps(first.body).encode()
            headers = [
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
                ("connection", "close"),
                *first.headers,
            ]
            await stream.send_all(
                conn.send(h11.Response(status_code=first.status, headers=headers))
            )
            await stream.send_all(conn.send(h11.Data(data=payload)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            ex.completed = True
            await stream.aclose()
            return
        if isinstance(first, Reset):
            _reset(stream)
            return
        head = h11.Response(
            status_code=200,
            headers=[("content-type", "text/event-stream"), ("connection", "close")],
        )
        await stream.send_all(conn.send(head))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, stream, ex, nursery.cancel_scope)
            for step in steps:
                if isinstance(step, Sleep):
                    ex.pending_step_at = time.monotonic() + step.seconds
                    await trio.sleep(step.seconds)
                    continue
                ex.pending_step_at = None
                if isinstance(step, Reset):
                    nursery.cancel_scope.cancel()
                    _reset(stream)
                    return
                if isinstance(step, Chunk):
                    data = b"data: " + json.dumps(step.data).encode() + b"\n\n"
                elif isinstance(step, Done):
                    data = b"data: [DONE]\n\n"
                    ex.completed = True  # the client may go now: it has the whole answer
                elif isinstance(step, Raw):
                    data = step.data
                else:
                    continue
                try:
                    await stream.send_all(conn.send(h11.Data(data=data)))
                except trio.BrokenResourceError:
                    return
            ex.completed = True
            try:
                await stream.send_all(conn.send(h11.EndOfMessage()))
            except trio.BrokenResourceError:
                pass
            nursery.cancel_scope.cancel()
        await stream.aclose()

    async def _watch(
        self, stream: trio.SocketStream, ex: Exchange, scope: trio.CancelScope
    ) -> None:
        """Record the moment the client goes away: its side of the socket reads EOF (or a
        reset), since it sends nothing more after its request."""
        try:
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if not ex.completed:
            ex.disconnected_at = time.monotonic()
        scope.cancel()


def _reset(stream: trio.SocketStream) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


@contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    ready = threading.Event()
    token: list[trio.lowlevel.TrioToken] = []
    stop_box: list[trio.Event] = []

    async def main() -> None:
        token.append(trio.lowlevel.current_trio_token())
        stop = trio.Event()
        stop_box.append(stop)
        await upstream.serve(ready, stop)

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10), "the fake upstream did not start"
    try:
        yield upstream
    finally:
        # Not trio.from_thread: a Trio test may use this too, from its own Trio thread.
        token[0].run_sync_soon(stop_box[0].set)
        thread.join(10)


# -- recorded stream shapes --------------------------------------------------------------

_CREATED = 1_764_000_000


def _openai_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> Chunk:
    return Chunk(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None,
        }
    )


def _openai_usage(model: str, prompt: int, completion: int) -> Chunk:
    return Chunk(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            },
        }
    )


def openai_text(model: str, pieces: Sequence[str], finish: str = "stop") -> list[Step]:
    """OpenAI: a role chunk with empty content, content chunks, a finish chunk with an
    empty delta, the usage chunk, ``[DONE]``."""
    return [
        _openai_chunk(model, {"role": "assistant", "content": "", "refusal": None}),
        *(_openai_chunk(model, {"content": piece}) for piece in pieces),
        _openai_chunk(model, {}, finish),
        _openai_usage(model, 9, len(pieces)),
        Done(),
    ]


def openai_tool_calls(model: str, calls: Sequence[tuple[str, str, Sequence[str]]]) -> list[Step]:
    """OpenAI: each call opens with its id, name and empty arguments, then its arguments in
    fragments (``index`` only); ``finish_reason: tool_calls``."""
    steps: list[Step] = [_openai_chunk(model, {"role": "assistant", "content": None})]
    for index, (call_id, name, fragments) in enumerate(calls):
        opening = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        steps.append(_openai_chunk(model, {"tool_calls": [opening]}))
        for fragment in fragments:
            delta = {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
            steps.append(_openai_chunk(model, delta))
    steps += [_openai_chunk(model, {}, "tool_calls"), _openai_usage(model, 20, 12), Done()]
    return steps


def _vllm_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> Chunk:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None}
    choice["finish_reason"] = finish
    if finish is not None:
        choice["stop_reason"] = None
    return Chunk(
        {
            "id": "chatcmpl-vllm",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "choices": [choice],
        }
    )


def vllm_reasoning(model: str, thinking: Sequence[str], answer: Sequence[str]) -> list[Step]:
    """vLLM with a reasoning parser: ``reasoning_content`` deltas, then content; usage as
    a chunk with ``choices: []``."""
    return [
        _vllm_chunk(model, {"role": "assistant", "content": ""}),
        *(_vllm_chunk(model, {"reasoning_content": piece}) for piece in thinking),
        *(_vllm_chunk(model, {"content": piece}) for piece in answer),
        _vllm_chunk(model, {"content": ""}, "stop"),
        Chunk(
            {
                "id": "chatcmpl-vllm",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "choices": [],
                "usage": {"prompt_tokens": 7, "total_tokens": 19, "completion_tokens": 12},
            }
        ),
        Done(),
    ]


def _ollama_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> Chunk:
    return Chunk(
        {
            "id": "chatcmpl-417",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def ollama_text(model: str, thinking: Sequence[str], pieces: Sequence[str]) -> list[Step]:
    """Ollama's /v1: ``reasoning`` deltas for a thinking model, then content; the finish
    chunk carries empty content; usage in its own chunk."""
    return [
        *(
            _ollama_chunk(model, {"role": "assistant", "content": "", "reasoning": t})
            for t in thinking
        ),
        *(_ollama_chunk(model, {"role": "assistant", "content": p}) for p in pieces),
        _ollama_chunk(model, {"role": "assistant", "content": ""}, "stop"),
        Chunk(
            {
                "id": "chatcmpl-417",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "system_fingerprint": "fp_ollama",
                "choices": [],
                "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
            }
        ),
        Done(),
    ]


def ollama_tool_call(model: str, name: str, arguments: dict[str, Any]) -> list[Step]:
    """Ollama: a whole tool call (id, name, all arguments) in one chunk."""
    call = {
        "id": "call_ollama1",
        "index": 0,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return [
        _ollama_chunk(model, {"role": "assistant", "content": "", "tool_calls": [call]}),
        _ollama_chunk(model, {"role": "assistant", "content": ""}, "tool_calls"),
        Done(),
    ]


# -- the error rows: (name, what the upstream does, engine code[, HTTP status]) ----------

_CONTEXT_OPENAI = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your "
        "messages resulted in 9000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
_CONTEXT_VLLM = {
    "object": "error",
    "message": "This model's maximum context length is 4096 tokens. However, you requested "
    "5000 tokens (4000 in the messages, 1000 in the completion).",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}
_CONTEXT_LLAMACPP = {
    "error": {
        "code": 400,
        "message": "the request exceeds the available context size, try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 5000,
        "n_ctx": 4096,
    }
}
_CONTEXT_ANTHROPIC_STYLE = {"error": {"message": "prompt is too long: 210000 tokens > 200000"}}
_INTERNAL_400 = {
    "error": {
        "message": 'Traceback (most recent call last):\n  File "/srv/app/main.py", line 3',
        "type": "BadRequestError",
    }
}

#: (name, upstream answer, engine code, HTTP status scopestream answers with)
ERROR_ROWS: list[tuple[str, Status, str, int]] = [
    ("ctx-openai", Status(400, _CONTEXT_OPENAI), "context_length_exceeded", 400),
    ("ctx-vllm", Status(400, _CONTEXT_VLLM), "context_length_exceeded", 400),
    ("ctx-llamacpp", Status(400, _CONTEXT_LLAMACPP), "context_length_exceeded", 400),
    ("ctx-prompt", Status(400, _CONTEXT_ANTHROPIC_STYLE), "context_length_exceeded", 400),
    (
        "bad-400",
        Status(400, {"error": {"message": "temperature too high"}}),
        "invalid_request",
        400,
    ),
    ("internal-400", Status(400, _INTERNAL_400), "invalid_request", 400),
    ("bad-422", Status(422, {"detail": [{"loc": ["body"], "msg": "bad"}]}), "invalid_request", 400),
    (
        "auth-401",
        Status(401, {"error": {"message": "Incorrect API key provided: sk-op***"}}),
        "upstream_error",
        502,
    ),
    (
        "auth-403",
        Status(403, {"error": {"message": "forbidden for org-123"}}),
        "upstream_error",
        502,
    ),
    (
        "missing-404",
        Status(404, {"error": {"message": 'model "x" not found, try pulling it first'}}),
        "model_not_found",
        404,
    ),
    (
        "limit-429",
        Status(429, {"error": {"message": "Rate limit reached"}}, [("retry-after", "7")]),
        "rate_limit_exceeded",
        429,
    ),
    (
        "down-500",
        Status(500, {"error": {"message": "CUDA out of memory at 0x7f3a"}}),
        "upstream_error",
        502,
    ),
    ("down-503", Status(503, "Service Unavailable"), "upstream_error", 502),
]


def started(model: str) -> list[Any]:
    """A stream that has begun: the role chunk and the text ``partial ``."""
    return openai_text(model, ["partial "])[:2]


MID_STREAM_ROWS: list[tuple[str, list[Any], str]] = [
    (
        "mid-ctx",
        [Chunk({"error": {"message": "maximum context length exceeded"}})],
        "context_length_exceeded",
    ),
    (
        "mid-limit",
        [Chunk({"error": {"message": "slow down", "code": "rate_limit_exceeded"}})],
        "rate_limit_exceeded",
    ),
    ("mid-error", [Chunk({"error": {"message": "engine crashed", "code": 500}})], "upstream_error"),
    ("mid-json", [Raw(b"data: {not json\n\n")], "upstream_error"),
    ("mid-eof", [], "upstream_error"),
    ("mid-eof-done", [Done()], "upstream_error"),
    ("mid-reset", [Reset()], "upstream_error"),
    (
        "mid-abort",
        [Chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "abort"}]}), Done()],
        "upstream_error",
    ),
]
