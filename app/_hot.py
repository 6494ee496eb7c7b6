"""The two requests a client waits on most, served by the ASGI entry point without Quart:
starting a streamed run (``POST /v1/runs`` with ``"stream": true``: time to first event)
and cancelling a run (``POST /v1/runs/{run_id}/cancel``: cancel to terminal).

Quart's machinery around a request (its task, request and app contexts, werkzeug's request
object, the hooks, quart-schema's wrapper) cost about as much CPU as the rest of the
service's own part of these requests together; this path skips it, and nothing else. It
answers exactly as the Quart routes do, with the same code: the route logic
(:mod:`app.routes.runs`), the key check (:meth:`Auth.key_owner`), the body's parsing
(:func:`app._request.json_body`), the same pydantic model, and the same error answers
(:func:`app.errors.error_answer`). The OpenAPI document is Quart's, unchanged.

Whatever is not plainly such a request is left to Quart before any of it is read, and
Quart answers it as before: another method or path, a query string, a root path, a
missing or invalid key (Quart's 401 comes before anything else), a body without
``Content-Length`` or larger than allowed (413), a cancel with a body. A run that is not
streamed is also Quart's: its body, already read, is handed on to it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from quart_schema import RequestSchemaValidationError

from ._asgi import RequestExtension
from ._request import json_body
from .errors import error_answer
from .routes._common import json_bytes
from .routes.runs import cancel, run_stream, start_run
from .schemas import CreateRun
from .service import Service

__all__ = ["HotRoutes"]

Scope = MutableMapping[str, Any]

_RUNS = "/v1/runs"
_RUN_PREFIX = "/v1/runs/"
_CANCEL_SUFFIX = "/cancel"
_HEADERS = frozenset((b"authorization", b"content-type", b"content-length", b"transfer-encoding"))


class HotRoutes:
    """The entry point's direct routes for one service (see the module docstring)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: Scope, ext: RequestExtension) -> bool:
        if scope["method"] != "POST" or scope.get("query_string") or scope.get("root_path"):
            return False
        path: str = scope["path"]
        if path == _RUNS:
            caller = self._caller(scope)
            return caller is not None and await self._create(ext, *caller)
        if path.startswith(_RUN_PREFIX) and path.endswith(_CANCEL_SUFFIX):
            run_id = path[len(_RUN_PREFIX) : -len(_CANCEL_SUFFIX)]
            if run_id and "/" not in run_id:  # else Quart's to route, or to refuse
                caller = self._caller(scope)
                return caller is not None and await self._cancel(ext, *caller, run_id)
        return False

    def _caller(self, scope: Scope) -> tuple[dict[bytes, str], str | None] | None:
        """The request's headers that matter here, and its owner; None without a valid key
        (Quart answers that 401)."""
        headers: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            name = name.lower()
            if name in _HEADERS and name not in headers:  # the first, as werkzeug reads
                headers[name] = value.decode("latin-1")
        auth = self.service.auth
        if not auth.enabled:
            return headers, None
        owner = auth.key_owner(headers.get(b"authorization", ""))
        return None if owner is None else (headers, owner)

    async def _create(
        self, ext: RequestExtension, headers: dict[bytes, str], owner: str | None
    ) -> bool:
        length = headers.get(b"content-length")
        if (
            length is None
            or b"transfer-encoding" in headers
            or not length.isascii()
            or not length.isdigit()
            or int(length) > self.service.settings.max_body_bytes
        ):
            return False
        raw = await ext.read_body()
        if raw is None:
            return True  # the client left: there is no one to answer
        try:
            body = json_body(headers.get(b"content-type", ""), raw)
            try:
                data = CreateRun.model_validate(body)
            except (TypeError, ValueError) as exc:  # what quart-schema answers with a 400
                raise RequestSchemaValidationError(exc) from None
            if not data.stream:
                ext.replay(raw)
                return False
            run = await start_run(self.service, owner, data)
        except Exception as exc:
            answer = error_answer(exc)
            await ext.send_json(answer.status, answer.body, answer.headers)
            return True
        connection, stream_headers = run_stream(run)
        # Served by the entry point once this frame (the body, its model) is gone.
        ext.hand_off(connection, stream_headers)
        return True

    async def _cancel(
        self, ext: RequestExtension, headers: dict[bytes, str], owner: str | None, run_id: str
    ) -> bool:
        length = headers.get(b"content-length")
        empty = length == "0" or (
            length is None and b"transfer-encoding" not in headers and ext.http1
        )
        if not empty:
            return False  # a body: Quart answers once it has arrived
        if await ext.read_body() is None:
            return True
        try:
            answer, status = await cancel(self.service, owner, run_id, wait=False)
            body, extra = json_bytes(answer), {}
        except Exception as exc:
            error = error_answer(exc)
            status, body, extra = error.status, error.body, error.headers
        await ext.send_json(status, body, extra)
        return True
