"""The ``upstream`` producer: a run streamed from any OpenAI-compatible Chat Completions
endpoint (OpenAI, vLLM, Ollama, llama.cpp's server, LiteLLM, ...).

One :class:`Upstream` serves every run of a service. It holds one ``httpx.AsyncClient``
for its lifetime (:meth:`Upstream.hold`, a task in the service's nursery), so runs share
the client's connection pool: a run to a nearby model reuses a warm TCP (and TLS)
connection instead of paying a handshake, and the pool is closed once, at shutdown.

Why ``httpx`` with ``httpx-sse`` rather than the ``openai`` package: the reader needs the
raw chunks (vLLM's ``reasoning_content`` and Ollama's ``reasoning`` are not in the SDK's
types), the response status and body before the first chunk (to map errors), and its
timeouts as Trio scopes (first chunk, between chunks) rather than a client's retry and
timeout policy. ``httpx`` runs on anyio, so under Trio.

Cancellation: the run's cancel (the cancel API, a client disconnect, a deadline, shutdown)
raises :class:`trio.Cancelled` wherever the producer waits, which is in the response's
socket read; httpcore closes the connection on the way out (shielded), so the upstream sees
its client go at once and stops generating, not at its next chunk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from httpx_sse import EventSource, SSEError

from engine import EngineError, ErrorCode, FinishReason, RunContext

from ._chunks import ChunkReader, malformed
from ._errors import http_error, stream_error

__all__ = ["Upstream", "UpstreamConfig"]

logger = logging.getLogger("scopestream.upstream")

#: Fields of the client's request that scopestream owns (``stream``) or that are its own
#: (``metadata`` carries a built-in producer's parameters); never sent upstream.
_NOT_FORWARDED = frozenset({"stream", "stream_options", "metadata", "n", "logprobs"})
#: How much of an error body is read (and logged): enough for any error message.
_MAX_ERROR_BODY = 16_384


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    first_token_timeout: float = 120.0
    token_timeout: float = 60.0
    #: The client's model name -> the upstream's (names not listed pass unchanged).
    model_map: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


class Upstream:
    """The producer (call it with a run's context) and the owner of its HTTP client."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None

    async def hold(self, until: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        """Open the client, report started, keep it open until ``until`` is set (or this
        task is cancelled), then close it."""
        config = self.config
        headers = dict(config.headers)
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        # Reads have no httpx timeout: the producer's own scopes time the first chunk and
        # the gaps between chunks. Connections are not capped: a run must never wait for
        # another run's stream to end.
        timeout = httpx.Timeout(None, connect=self.config.connect_timeout)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        async with httpx.AsyncClient(
            base_url=config.base_url + "/", headers=headers, timeout=timeout, limits=limits
        ) as client:
            self._client = client
            try:
                task_status.started()
                await until.wait()
            finally:
                self._client = None

    def request_body(self, input: Mapping[str, Any]) -> dict[str, Any]:
        """The upstream request for a run's input (a Chat Completions request): the model
        name mapped, streaming with usage on, scopestream's own fields left out."""
        body = {k: v for k, v in input.items() if k not in _NOT_FORWARDED and v is not None}
        model = str(input.get("model", ""))
        body["model"] = self.config.model_map.get(model, model)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    async def __call__(self, ctx: RunContext) -> FinishReason:
        """Stream one run's answer from the upstream; returns its finish reason.

        Raises :class:`EngineError` for every upstream failure (see ``_errors`` for the
        table), for a connect, first-chunk or next-chunk timeout (``timeout``) and for a
        stream that ends without a finish reason. If the run is cancelled, the
        :class:`trio.Cancelled` arrives in the socket read and the response is closed on
        the way out, so the upstream sees its client leave at once.
        """
        client = self._client
        if client is None:
            raise EngineError(ErrorCode.UPSTREAM_ERROR, "The model provider is not available.")
        body = self.request_body(ctx.input)
        reader = ChunkReader(ctx)
        config = self.config
        log = {"run_id": ctx.run_id, "model": body["model"]}
        first = True
        with trio.CancelScope(deadline=trio.current_time() + config.first_token_timeout) as wait:
            try:
                async with client.stream("POST", "chat/completions", json=body) as response:
                    if response.status_code != 200:
                        raise await _status_error(response, log, model=str(body["model"]))
                    async for sse in EventSource(response).aiter_sse():
                        first = False
                        wait.deadline = trio.current_time() + config.token_timeout
                        if sse.data.strip() == "[DONE]":
                            break
                        if sse.data:
                            await reader.feed(_chunk(sse.data, sse.event, log))
            except httpx.ConnectTimeout:
                _warn("upstream.connect_timeout", log)
                raise EngineError(
                    ErrorCode.TIMEOUT, "Connecting to the model provider timed out."
                ) from None
            except httpx.ConnectError:
                _warn("upstream.connect_error", log)
                raise EngineError(
                    ErrorCode.UPSTREAM_ERROR, "The model provider could not be reached."
                ) from None
            except SSEError:
                _warn("upstream.not_a_stream", log)
                raise EngineError(
                    ErrorCode.UPSTREAM_ERROR, "The model provider did not answer with a stream."
                ) from None
            except httpx.TransportError as exc:
                _warn("upstream.broken", log, error=type(exc).__name__)
                raise EngineError(
                    ErrorCode.UPSTREAM_ERROR, "The connection to the model provider broke."
                ) from None
        if wait.cancelled_caught:
            which = "first" if first else "next"
            _warn("upstream.timeout", log, waiting_for=which)
            raise EngineError(
                ErrorCode.TIMEOUT, f"The model provider did not send its {which} chunk in time."
            )
        return await reader.finish()


def _warn(event: str, log: Mapping[str, Any], **extra: Any) -> None:
    logger.warning(event, extra={"event": event, **log, **extra})


def _chunk(data: str, event: str, log: Mapping[str, Any]) -> Any:
    """One decoded chunk; an ``{"error": ...}`` payload (or an ``error`` event) raises."""
    try:
        chunk = json.loads(data)
    except ValueError:
        _warn("upstream.invalid_json", log, body=data[:_MAX_ERROR_BODY])
        raise malformed("a chunk is not JSON") from None
    if event == "error" or (isinstance(chunk, dict) and "error" in chunk):
        _warn("upstream.stream_error", log, body=data[:_MAX_ERROR_BODY])
        raise stream_error(chunk)
    return chunk


async def _status_error(
    response: httpx.Response, log: Mapping[str, Any], *, model: str
) -> EngineError:
    raw = bytearray()
    async for part in response.aiter_bytes():
        raw += part
        if len(raw) >= _MAX_ERROR_BODY:
            break
    body = bytes(raw[:_MAX_ERROR_BODY])
    _warn(
        "upstream.http_error",
        log,
        status=response.status_code,
        body=body.decode("utf-8", "replace"),
    )
    return http_error(response.status_code, body, response.headers, model=model)
