"""The engine's exceptions.

::

    ScopestreamError
    ├── EngineError          raised by producers: a stable code and a user-safe message
    ├── RunNotFound          no run with that id (or it belongs to another owner)
    ├── RunConflict          a live run already uses that client_run_id
    ├── EngineClosed         the engine is shutting down and takes no new runs
    └── InteractionError
        ├── InteractionNotFound    no such interaction on this run
        └── InteractionNotPending  answered, timed out or cleared by a cancel
"""

from __future__ import annotations

from ._events import ErrorCode

__all__ = [
    "EngineClosed",
    "EngineError",
    "InteractionError",
    "InteractionNotFound",
    "InteractionNotPending",
    "RunConflict",
    "RunNotFound",
    "ScopestreamError",
    "http_status_for",
]


class ScopestreamError(Exception):
    pass


class EngineError(ScopestreamError):
    """Raise from a producer to fail its run with ``code`` and a message safe to show a user.

    Any other exception from a producer fails the run with ``server_error`` and a generic
    message; its traceback goes to the log under the run's correlation id.
    """

    def __init__(
        self, code: ErrorCode | str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        #: Seconds before a retry may succeed (a rate limit's ``Retry-After``), if known.
        self.retry_after = retry_after


class RunNotFound(ScopestreamError):
    pass


class RunConflict(ScopestreamError):
    pass


class EngineClosed(ScopestreamError):
    pass


class InteractionError(ScopestreamError):
    pass


class InteractionNotFound(InteractionError):
    pass


class InteractionNotPending(InteractionError):
    pass


_HTTP_STATUS = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.RATE_LIMIT_EXCEEDED: 429,
    ErrorCode.UPSTREAM_ERROR: 502,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.STALLED: 504,
    ErrorCode.INTERACTION_TIMEOUT: 504,
    ErrorCode.INTERACTION_NOT_SUPPORTED: 501,
    ErrorCode.CONTENT_FILTER: 400,
    ErrorCode.WORKER_LOST: 503,
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: 400,
    ErrorCode.MODEL_NOT_FOUND: 404,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.SERVER_ERROR: 500,
    # The answer could not be held whole within the server's budgets: the server's limit,
    # not a malformed request, and a retry would meet the same limit.
    ErrorCode.EVENT_TOO_LARGE: 500,
    ErrorCode.OUTPUT_TOO_LARGE: 500,
}


def http_status_for(code: ErrorCode | str) -> int:
    """The HTTP status that answers a run that failed with ``code`` before streaming."""
    try:
        return _HTTP_STATUS[ErrorCode(code)]
    except ValueError:
        return 500
