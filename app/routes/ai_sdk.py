"""Vercel AI SDK routes: the default chat transport's ``POST /api/chat`` and its resume.

The chat id is the run's ``client_run_id``, so ``GET /api/chat/{id}/stream`` finds the
chat's active run. A new message on a chat whose previous run is still going cancels that
run first: one chat, one active stream. So a chat id may not have the form of a server run
id, which would name (and cancel) that run instead.
"""

from __future__ import annotations

import trio
from quart import Blueprint, Response
from quart_schema import document_response, validate_request

from engine import Connection, DisconnectPolicy
from engine.protocols import UIMessageStreamProjection

from ..compat_schemas import UIChatRequest
from ..conversation import ui_to_chat
from ..errors import ApiError
from ..openapi_models import NoContent, RunIdHeader, UIMessageStream
from ..schemas import ErrorBody
from ..service import current_service
from ..streaming import stream_response
from ._common import no_content
from ._params import check_client_run_id, is_server_run_id

__all__ = ["ai_sdk_blueprint"]

DEFAULT_PRODUCER = "echo"


def ai_sdk_blueprint() -> Blueprint:
    bp = Blueprint("ai_sdk", __name__)

    @bp.post("/api/chat")
    @validate_request(UIChatRequest)
    @document_response(UIMessageStream, 200, RunIdHeader)
    @document_response(ErrorBody, 404)
    @document_response(ErrorBody, 409)
    async def chat(data: UIChatRequest) -> Response:
        """A UI message stream (``x-vercel-ai-ui-message-stream: v1``) for the chat's reply.
        ``model`` (a routed model, as on the OpenAI routes) or ``producer`` (default
        ``echo``), ``metadata`` and, for the upstream, Chat Completions fields such as
        ``tools`` may be added through the transport's ``body`` option."""
        service = current_service()
        owner = service.auth.owner()
        check_client_run_id("id", data.id)
        model = data.model
        if model is not None and data.producer is not None:
            raise ApiError(
                400,
                "invalid_request",
                "Give model or producer, not both.",
                fields=[{"field": "producer", "message": "not with model"}],
            )
        spec = (
            service.model(model) if model else service.producer(data.producer or DEFAULT_PRODUCER)
        )
        if spec.chat_request and model is None:
            raise ApiError(
                400,
                "invalid_request",
                f"The {spec.name} producer answers a model: give model instead of producer.",
                fields=[{"field": "model", "message": "required for this producer"}],
            )
        run_input = service.chat_input(spec, data.metadata, data.messages, lambda: ui_to_chat(data))
        previous = await service.find_or_none(data.id, owner)
        if previous is not None and not previous.status.terminal:
            await service.cancel(previous.id, owner)
            with trio.move_on_after(service.settings.shutdown_grace):
                await previous.wait_done()
        run = await service.start(
            spec,
            run_input,
            owner=owner,
            client_run_id=data.id,
            policy=DisconnectPolicy(data.on_disconnect or "cancel"),
            metadata={"protocol": "ai_sdk"},
        )
        projection = UIMessageStreamProjection(message_id="msg_" + run.id.removeprefix("run_"))
        return stream_response(Connection(run, projection), headers=[("x-run-id", run.id)])

    @bp.get("/api/chat/<chat_id>/stream")
    @document_response(UIMessageStream, 200)
    @document_response(NoContent, 204)
    async def resume(chat_id: str) -> Response:
        """Resume the chat's active stream from its start; 204 when none is active."""
        service = current_service()
        owner = service.auth.owner()
        if is_server_run_id(chat_id):
            return no_content()  # not a chat id: no chat can have it (see above)
        run = await service.find_or_none(chat_id, owner)
        if run is None or run.status.terminal:
            return no_content()
        projection = UIMessageStreamProjection(message_id="msg_" + run.id.removeprefix("run_"))
        return stream_response(Connection(run, projection), early_failure=False)

    return bp
