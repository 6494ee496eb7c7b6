"""OpenAI-compatible routes: Chat Completions, Responses, models.

``model`` is routed to a producer (``app.routing``): an unknown model is a 404
``model_not_found``. A producer that takes a chat request (the upstream) gets the whole
request, the Responses one translated (``app.conversation``); the built-ins get their
parameters from ``metadata`` and the conversation as text. Ids map onto run ids (``chatcmpl-<hex>``, ``resp_<hex>`` for
``run_<hex>``), so the native API (status, cancel, interactions) works on these runs too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_response, validate_request

from engine import (
    Cancelled,
    Connection,
    DisconnectPolicy,
    Failed,
    RunHandle,
    http_status_for,
)
from engine.protocols import (
    ChatCompletionsProjection,
    ResponsesProjection,
    chat_completion_object,
    openai_error,
    response_object,
    responses_event_count,
)

from ..compat_schemas import (
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    ResponsesRequest,
    normalize_messages,
)
from ..conversation import responses_to_chat
from ..errors import ApiError, failure_headers, quoted
from ..openapi_models import (
    ChatCompletionAnswer,
    InvalidParameter,
    LocationHeader,
    OpenAIErrorBody,
    OpenAIRunFailed,
    ResponseAnswer,
    ResponseObject,
    ResponseStreamQuery,
    RunIdHeader,
    StoredResponseAnswer,
    run_failures,
)
from ..schemas import ErrorBody, ExecutionAccepted
from ..service import Service, current_service
from ..settings import Settings
from ..streaming import stream_response
from ._common import execution_accepted, json_response
from ._params import bool_param, check_cursor_within, cursor_param, metadata_params

__all__ = ["openai_blueprint"]


def _suffix(run: RunHandle) -> str:
    return run.id.removeprefix("run_")


async def _start(
    service: Service,
    model: str,
    messages: Any,
    params: dict[str, str],
    request: Callable[[], dict[str, Any]],
    **kw: Any,
) -> RunHandle:
    """Start the producer ``model`` is routed to (see :meth:`Service.chat_input` for what
    it is given)."""
    owner = service.auth.owner()
    spec = service.model(model)
    return await service.start(
        spec,
        service.chat_input(spec, metadata_params(spec.input_model, params), messages, request),
        owner=owner,
        client_run_id=None,
        **kw,
    )


def _error_response(outcome: Failed | Cancelled, status: int) -> Response:
    return json_response(openai_error(outcome), status, failure_headers(outcome))


def _response_for(run: RunHandle) -> dict[str, Any]:
    return response_object(
        run.output,
        response_id="resp_" + _suffix(run),
        model=run.producer_name,
        created_at=int(run.created_at),
        background=bool(run.metadata.get("background")),
    )


async def _find_response(service: Service, response_id: str) -> RunHandle:
    """The run behind ``resp_<hex>`` (its server id, not a ``client_run_id``), or 404."""
    owner = service.auth.owner()
    run_id = "run_" + response_id.removeprefix("resp_")
    if response_id.startswith("resp_"):
        run = await service.find_or_none(run_id, owner)
        if run is not None and run.id == run_id:
            return run
    raise ApiError(404, "not_found", f"No response {quoted(response_id)}.")


def _responses_projection(
    run: RunHandle, response_id: str, after: int | None
) -> ResponsesProjection:
    return ResponsesProjection(
        response_id=response_id,
        model=run.producer_name,
        created_at=int(run.created_at),
        starting_after=after,
        background=bool(run.metadata.get("background")),
    )


def _check_starting_after(run: RunHandle, after: int | None) -> None:
    """A 400 if ``starting_after`` is past the last event the response's stream has had so
    far. The count comes from the run's output in O(1), with no replay of the log."""
    if after is None:
        return
    last = responses_event_count(run.output) - 1
    check_cursor_within("starting_after", after, last, last_field="last_sequence_number")


def openai_blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("openai", __name__)
    cancel_on_disconnect = DisconnectPolicy("cancel")

    def paused_202(route: Any) -> Any:
        if not settings.interactive:
            return route
        return document_response(ExecutionAccepted, 202, LocationHeader)(route)

    @bp.post("/v1/chat/completions")
    @validate_request(ChatCompletionRequest)
    @document_response(ChatCompletionAnswer, 200, RunIdHeader)
    @paused_202
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 404)
    @document_response(OpenAIErrorBody, 409)
    @run_failures(OpenAIRunFailed)
    async def chat_completions(data: ChatCompletionRequest) -> Response:
        """OpenAI Chat Completions, streaming (SSE chunks) or not."""
        service = current_service()
        run = await _start(
            service,
            data.model,
            data.messages,
            data.metadata,
            lambda: data.model_dump(mode="json", exclude_none=True),
            policy=cancel_on_disconnect,
            metadata={"protocol": "chat"},
        )
        completion_id = "chatcmpl-" + _suffix(run)
        created = int(run.created_at)
        if data.stream:
            include_usage = bool(data.stream_options and data.stream_options.include_usage)
            projection = ChatCompletionsProjection(
                completion_id=completion_id,
                model=data.model,
                created=created,
                include_usage=include_usage,
            )
            return stream_response(Connection(run, projection), headers=[("x-run-id", run.id)])
        if await service.settle(run) == "awaiting_input":
            return execution_accepted(run)
        outcome = run.outcome
        if isinstance(outcome, Failed):
            return _error_response(outcome, http_status_for(outcome.error.code))
        if isinstance(outcome, Cancelled):
            return _error_response(outcome, 409)
        body = chat_completion_object(
            run.output, completion_id=completion_id, model=data.model, created=created
        )
        return json_response(body, headers={"x-run-id": run.id})

    @bp.post("/v1/responses")
    @validate_request(ResponsesRequest)
    @document_response(ResponseAnswer, 200, RunIdHeader)
    @paused_202
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 404)
    @run_failures(OpenAIRunFailed)
    async def create_response(data: ResponsesRequest) -> Response:
        """OpenAI Responses: streaming, non-streaming, or ``background``."""
        service = current_service()
        messages = normalize_messages(data.input)
        if data.instructions:
            messages.insert(0, {"role": "system", "content": data.instructions})
        run = await _start(
            service,
            data.model,
            messages,
            data.metadata,
            lambda: responses_to_chat(data),
            policy=DisconnectPolicy("continue" if data.background else "cancel"),
            metadata={"protocol": "responses", "background": data.background},
        )
        if data.stream:
            projection = ResponsesProjection(
                response_id="resp_" + _suffix(run),
                model=data.model,
                created_at=int(run.created_at),
                background=data.background,
            )
            return stream_response(Connection(run, projection), headers=[("x-run-id", run.id)])
        if data.background:
            return json_response(_response_for(run), headers={"x-run-id": run.id})
        if await service.settle(run) == "awaiting_input":
            return execution_accepted(run)
        outcome = run.outcome
        if isinstance(outcome, Failed):
            return _error_response(outcome, http_status_for(outcome.error.code))
        return json_response(_response_for(run), headers={"x-run-id": run.id})

    @bp.get("/v1/responses/<response_id>")
    @document_querystring(ResponseStreamQuery)
    @document_response(StoredResponseAnswer, 200)
    @document_response(InvalidParameter, 400)
    @document_response(ErrorBody, 404)
    async def get_response(response_id: str) -> Response:
        """The stored response; with ``stream=true`` its events after ``starting_after``."""
        service = current_service()
        run = await _find_response(service, response_id)
        # Checked with or without stream=true: a bad cursor is a 400, never ignored.
        after = cursor_param("starting_after", request.args.get("starting_after"))
        if not bool_param("stream"):
            return json_response(_response_for(run))
        _check_starting_after(run, after)
        projection = _responses_projection(run, response_id, after)
        return stream_response(Connection(run, projection), early_failure=False)

    @bp.post("/v1/responses/<response_id>/cancel")
    @document_response(ResponseObject, 200)
    @document_response(ErrorBody, 404)
    async def cancel_response(response_id: str) -> Response:
        """Cancel (idempotent); answers with the response once its terminal is recorded."""
        service = current_service()
        owner = service.auth.owner()
        run = await _find_response(service, response_id)
        await service.cancel(run.id, owner)
        return json_response(_response_for(await service.when_done(run, owner)))

    @bp.get("/v1/models")
    @document_response(ModelList, 200)
    async def models() -> Response:
        """The routed models: each exact route, and each mapped upstream model."""
        service = current_service()
        service.auth.owner()
        cards = [ModelCard(id=name) for name in service.router.models()]
        return json_response(ModelList(data=cards))

    return bp
