"""Response helpers shared by the route modules."""

from __future__ import annotations

from typing import Any

from quart import Response

from engine import RunHandle
from engine.protocols._sse import dumps

from ..schemas import ExecutionAccepted
from ..service import interaction_path, run_path

__all__ = ["execution_accepted", "json_bytes", "json_response", "no_content"]


def json_bytes(model: Any) -> bytes:
    """A pydantic model, or any JSON-able value, as a JSON body. Always through
    :func:`dumps`, which makes any text valid UTF-8 (pydantic's own JSON encoder raises on a
    lone surrogate, and a producer's prompt or output may hold one)."""
    return dumps(model.model_dump(mode="json") if hasattr(model, "model_dump") else model).encode()


def json_response(model: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A pydantic model, or any JSON-able value, as a JSON response."""
    return Response(
        json_bytes(model), status=status, content_type="application/json", headers=headers
    )


def no_content(headers: dict[str, str] | None = None) -> Response:
    """204: no body, so neither a Content-Length nor a Content-Type (Quart would say
    text/html)."""
    response = Response(b"", status=204, headers=headers)
    del response.headers["Content-Type"]
    del response.headers["Content-Length"]
    return response


def execution_accepted(run: RunHandle) -> Response:
    """202 for a run paused on a question: where to answer, where to look.

    The same answer on every protocol's non-streaming route, so a client that knows one
    knows them all."""
    pending = run.pending_interaction
    assert pending is not None
    status_url = run_path(run.id)
    body = ExecutionAccepted(
        execution_id=run.id,
        interaction={"id": pending.id, "prompt": pending.prompt},
        status_url=status_url,
        response_url=interaction_path(run.id, pending.id),
    )
    return json_response(body, 202, {"Location": status_url})
