"""Every 4xx/5xx is JSON ``{"error": {"code", "message", ...}}``: never HTML, never a
traceback. Route code raises :class:`ApiError`; everything else is mapped here."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from engine import Failed
from engine.backends import StoreUnavailable
from engine.protocols.native import error_body

__all__ = [
    "MAX_ECHO",
    "RETRY_AFTER_SECONDS",
    "ApiError",
    "ErrorAnswer",
    "error_answer",
    "failure_headers",
    "install_error_handlers",
    "json_error",
    "quoted",
    "validation_fields",
]

logger = logging.getLogger("scopestream.app")

_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def failure_headers(outcome: object) -> dict[str, str]:
    """Headers of an HTTP error answering a failed run: ``Retry-After`` when the failure
    says when to retry (an upstream's rate limit), in whole seconds as HTTP wants."""
    if isinstance(outcome, Failed) and (value := outcome.error.retry_after_header) is not None:
        return {"Retry-After": value}
    return {}


#: The most characters of a client's value (a name, an id) an error message repeats: the
#: value may be as long as a body or a URL.
MAX_ECHO = 64


def quoted(value: str) -> str:
    """A client's value as an error message shows it: quoted, with unprintable characters
    escaped (so a lone surrogate cannot break the JSON encoding), and cut after
    :data:`MAX_ECHO` characters."""
    if len(value) <= MAX_ECHO:
        return repr(value)
    return f"{value[:MAX_ECHO]!r}... ({len(value)} characters)"


#: Seconds a 503 (starting or shutting down) asks a client to wait before retrying.
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """A JSON error as it goes on the wire, whoever sends it: Quart (:meth:`response`) or
    the entry point's direct routes (``app._hot``)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, status: int, code: str, message: str, **extra: Any) -> ErrorAnswer:
        # A 503 is temporary: the service is starting, or stopping while another instance
        # (or this one, restarted) takes over.
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}
        return cls(status, error_body(code, message, **extra), headers)

    def response(self) -> Response:
        return Response(
            self.body, status=self.status, content_type="application/json", headers=self.headers
        )


def json_error(status: int, code: str, message: str, **extra: Any) -> Response:
    return ErrorAnswer.of(status, code, message, **extra).response()


#: The names pydantic gives union members of these types in an error's location.
_SCALAR_TAGS = frozenset(
    {
        "any",
        "bool",
        "bytes",
        "complex",
        "date",
        "datetime",
        "decimal",
        "float",
        "int",
        "none",
        "str",
        "time",
        "timedelta",
        "uuid",
    }
)
#: Errors whose location ends with a key the client sent, whatever it looks like.
_KEY_ERRORS = frozenset({"extra_forbidden", "missing"})


def _union_tag(part: str) -> bool:
    """Whether a location step is pydantic's name for a union member rather than a field:
    a type (``str``, ``list[dict[str,any]]``, ``function-after[...]``, ``literal['a','b']``)
    or a model or enum class (``GracePolicy``)."""
    return part in _SCALAR_TAGS or "[" in part or part[:1].isupper()


def validation_fields(
    exc: ValidationError, prefix: tuple[str | int, ...] = ()
) -> list[dict[str, str]]:
    """The fields a pydantic error names, as ``{"field": "input.events", "message": ...}``.

    Pydantic adds a step per union member tried (``input.str``, ``on_disconnect.GracePolicy``);
    those are not fields, so they are dropped and the messages merged per field. The last
    step of an unknown or missing field is the client's own key and always kept.
    """
    merged: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = err["loc"]
        keep_last = err["type"] in _KEY_ERRORS
        path = [str(part) for part in prefix]
        for i, part in enumerate(loc):
            if isinstance(part, int) or (keep_last and i == len(loc) - 1) or not _union_tag(part):
                path.append(str(part))
        merged.setdefault(".".join(path) or "body", []).append(err["msg"])
    return [{"field": field, "message": "; ".join(msgs)} for field, msgs in merged.items()]


def error_answer(exc: BaseException) -> ErrorAnswer:
    """The answer to an exception a request raised; the one mapping for every path."""
    if isinstance(exc, ApiError):
        return ErrorAnswer.of(exc.status, exc.code, exc.message, **exc.extra)
    if isinstance(exc, StoreUnavailable):
        # The shared store (Redis) is down: this worker still answers, and a retry soon may
        # succeed. The message names the setting, never the store's address or credentials.
        logger.warning("store unavailable: %s", exc, extra={"event": "store.unavailable"})
        return ErrorAnswer.of(
            503, "store_unavailable", "The run store is unreachable; retry shortly."
        )
    if isinstance(exc, RequestSchemaValidationError):
        inner = exc.validation_error
        if isinstance(inner, ValidationError):
            fields = validation_fields(inner)
            names = ", ".join(f["field"] for f in fields)
            return ErrorAnswer.of(
                400, "invalid_request", f"Invalid fields: {names}.", fields=fields
            )
        return ErrorAnswer.of(400, "invalid_request", "The request body is not valid.")
    if isinstance(exc, HTTPException):
        return _http_answer(exc)
    correlation_id = "err_" + secrets.token_hex(16)
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"event": "http.error", "correlation_id": correlation_id},
    )
    return ErrorAnswer.of(
        500, "server_error", "Internal server error.", correlation_id=correlation_id
    )


def _http_answer(exc: HTTPException) -> ErrorAnswer:
    status = exc.code or 500
    if status == 400:
        message = "The request body is not valid JSON."
    elif status == 404:
        message = "No such route."
    elif status == 405:
        message = "Method not allowed on this route."
    elif status == 413:
        message = "The request body is too large."
    else:
        message = exc.name
    answer = ErrorAnswer.of(status, _CODES.get(status, "http_error"), message)
    if status == 405:
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                answer.headers["Allow"] = value
    return answer


def install_error_handlers(app: Quart) -> None:
    async def _answer(exc: Exception) -> Response:
        return error_answer(exc).response()

    for kind in (ApiError, StoreUnavailable, RequestSchemaValidationError, HTTPException):
        app.register_error_handler(kind, _answer)
    app.register_error_handler(Exception, _answer)
