"""What an upstream failure becomes: an :class:`~engine.EngineError` with the engine's code
and a message safe to show a user.

=========================================================  ============================
upstream                                                   engine code
=========================================================  ============================
400 saying the context is too long (``context_length_      ``context_length_exceeded``
exceeded``, "maximum context length", "prompt is too
long", llama.cpp's "exceeds the available context size")
other 400 / 422                                            ``invalid_request``
401 / 403                                                  ``upstream_error`` (the client
                                                           learns nothing about the key)
404                                                        ``model_not_found``
408                                                        ``timeout``
429                                                        ``rate_limit_exceeded``, with
                                                           ``Retry-After`` kept
5xx, anything else                                         ``upstream_error``
=========================================================  ============================

The same rules read an ``{"error": ...}`` payload inside a stream. The upstream's own
message reaches the client only for a request it rejected (400/422), and only when it
looks like a sentence meant for a user: short, one line, no paths, no tracebacks.
Everything the upstream said is logged server-side.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from engine import EngineError, ErrorCode

__all__ = ["http_error", "retry_after_seconds", "stream_error"]

_CONTEXT = re.compile(
    r"context_length_exceeded|exceed_context_size|maximum context length|context length"
    r"|prompt is too long|exceeds the available context size|context window",
    re.IGNORECASE,
)
#: Signs that a message carries internals rather than words for a user.
_INTERNALS = re.compile(
    r"traceback|exception|stack|\.py\b|/[a-z_]+/|\\[a-z_]+\\|0x[0-9a-f]{4,}|sk-|bearer",
    re.IGNORECASE,
)
_MAX_SAFE = 300


def _error_fields(payload: Any) -> tuple[str, str]:
    """``(code, message)`` of an OpenAI-style error body (``{"error": {...}}``, vLLM's flat
    ``{"object": "error", "message"}``, ``{"error": "text"}``), as text."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, str):
        return "", error
    if not isinstance(error, dict):
        return "", ""
    code = error.get("code") or error.get("type") or ""
    message = error.get("message") or ""
    return str(code), message if isinstance(message, str) else json.dumps(message)


def _safe(message: str) -> str | None:
    message = message.strip()
    if not message or len(message) > _MAX_SAFE or "\n" in message:
        return None
    if _INTERNALS.search(message) or not message.isprintable():
        return None
    return message


def _is_context_length(code: str, message: str) -> bool:
    return bool(_CONTEXT.search(code) or _CONTEXT.search(message))


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


def http_error(status: int, body: bytes, headers: Mapping[str, str], *, model: str) -> EngineError:
    """The error for an upstream that answered ``status`` instead of a stream."""
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = body.decode("utf-8", "replace")
    code, message = _error_fields(payload)
    if status in (400, 413, 422) and _is_context_length(code, message):
        return EngineError(
            ErrorCode.CONTEXT_LENGTH_EXCEEDED,
            "The conversation is longer than the model's context window.",
        )
    if status in (400, 422):
        safe = _safe(message)
        return EngineError(
            ErrorCode.INVALID_REQUEST,
            "The model provider rejected the request" + (f": {safe}" if safe else "."),
        )
    if status == 404:
        return EngineError(
            ErrorCode.MODEL_NOT_FOUND, f"The model provider has no model {model[:200]!r}."
        )
    if status == 408:
        return EngineError(ErrorCode.TIMEOUT, "The model provider timed out.")
    if status == 429:
        return EngineError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            "The model provider's rate limit was reached; retry later.",
            retry_after=retry_after_seconds(headers.get("retry-after")),
        )
    # 401/403 say the operator's key is wrong: the client is told only that the
    # provider failed (the log has the details).
    return EngineError(ErrorCode.UPSTREAM_ERROR, f"The model provider failed (HTTP {status}).")


def stream_error(payload: Any) -> EngineError:
    """The error for an ``{"error": ...}`` payload in the middle of a stream."""
    code, message = _error_fields(payload)
    if _is_context_length(code, message):
        return EngineError(
            ErrorCode.CONTEXT_LENGTH_EXCEEDED,
            "The conversation is longer than the model's context window.",
        )
    if "rate_limit" in code or code == "429":
        return EngineError(
            ErrorCode.RATE_LIMIT_EXCEEDED,
            "The model provider's rate limit was reached; retry later.",
        )
    return EngineError(ErrorCode.UPSTREAM_ERROR, "The model provider failed mid-answer.")
