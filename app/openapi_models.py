"""What ``/openapi.json`` says beyond the request models: documentation-only response
models, and the provider that renders them.

quart-schema documents every response as ``application/json``. The provider here adds:

* :class:`EventStream` models, documented as ``text/event-stream`` (with, for a route that
  answers JSON unless the request asked for a stream, the JSON model beside it);
* :class:`NoContent`, a response without a body (204);
* the errors every route of a kind can answer, so no route can forget them: 400, 413 and
  415 on each route with a JSON body, and 401 on each route that needs an API key when
  keys are configured;
* an HTTP status phrase as the description of a response that has none.

Responses a route answers for its own reasons (its 200, 202, 404, 409, a bad cursor's 400)
stay in that route's ``@document_response`` block.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field, WithJsonSchema
from quart_schema import OpenAPIProvider, document_response
from werkzeug.routing.rules import Rule

from engine import ErrorCode, http_status_for

from .routes._params import CURSOR_PATTERN
from .schemas import ErrorBody, RunView
from .service import current_service

_Route = TypeVar("_Route", bound=Callable[..., Any])

#: How many runs ``GET /v1/runs`` lists by default, and at most.
DEFAULT_RUN_LIST = 20
MAX_RUN_LIST = 100

__all__ = [
    "DEFAULT_RUN_LIST",
    "MAX_RUN_LIST",
    "RUN_FAILURE_STATUSES",
    "ChatCompletion",
    "ChatCompletionAnswer",
    "EventStream",
    "Health",
    "InvalidParameter",
    "LastEventIdHeader",
    "LocationHeader",
    "NativeEventStream",
    "NoContent",
    "OpenAIErrorBody",
    "OpenAIRunFailed",
    "ResponseAnswer",
    "ResponseObject",
    "ResponseStreamQuery",
    "RetryAfterHeader",
    "RunAnswer",
    "RunEventsQuery",
    "RunFailed",
    "RunIdHeader",
    "RunListQuery",
    "ScopestreamOpenAPIProvider",
    "StoredResponseAnswer",
    "StreamedRunHeaders",
    "UIMessageStream",
    "WaitQuery",
    "run_failures",
]


# -- markers the provider renders ------------------------------------------------------


class EventStream(BaseModel):
    """Base of the models of a ``text/event-stream`` response.

    A subclass's docstring is the response's description, ``frames`` describes the frames,
    ``example`` shows a few, and ``json_body`` (if set) is the model of the JSON answer the
    same status has when the request did not ask for a stream.
    """

    frames: ClassVar[str] = ""
    example: ClassVar[str] = ""
    json_body: ClassVar[type[BaseModel] | None] = None


class NoContent(BaseModel):
    """No body."""


# -- bodies ----------------------------------------------------------------------------


class Health(BaseModel):
    """The engine is open."""

    status: Literal["ok"] = "ok"
    live_runs: int = Field(..., ge=0, description="Runs not yet finished.")


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = Field(..., description="None when the answer is only tool calls.")
    refusal: None = None
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description='Present when the run called tools: {"id", "type", "function"}.'
    )


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    logprobs: None = None
    finish_reason: str = Field(..., description="stop, length, content_filter or tool_calls.")


class ChatUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """A completed run as an OpenAI ``chat.completion``."""

    id: str = Field(..., description="chatcmpl-<hex> for run run_<hex>.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(..., description="cancelled, invalid_request_error, rate_limit_error, ...")
    code: str = Field(..., description="The engine's error code, or cancelled.")
    param: None = None
    correlation_id: str | None = Field(None, description="On a failure: finds the traceback.")


class OpenAIErrorBody(BaseModel):
    """The run was cancelled (409) or failed: an OpenAI-style error."""

    error: OpenAIErrorDetail


class ResponseError(BaseModel):
    code: str
    message: str


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseObject(BaseModel):
    """An OpenAI Responses ``response`` object, in any state of its run."""

    id: str = Field(..., description="resp_<hex> for run run_<hex>.")
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]
    background: bool
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    model: str
    output: list[dict[str, Any]] = Field(
        ..., description="Output items: message, reasoning and function_call items."
    )
    parallel_tool_calls: bool = True
    tool_choice: str = "auto"
    tools: list[Any] = Field(default_factory=list)
    usage: dict[str, Any] | None = Field(
        ..., description="input_tokens, output_tokens, total_tokens and their details."
    )


# -- streams ---------------------------------------------------------------------------

_KEEPALIVE = "A `: keepalive` comment is written whenever no frame was for a while."


class NativeEventStream(EventStream):
    """The run's events (SSE), ending after its terminal event."""

    frames: ClassVar[str] = (
        "One frame per event: `id: <seq>`, `event: <type>`, `data: {seq, type, run_id, data}`. "
        "Types: run.started, text.delta, reasoning.delta, tool_call.started, "
        "tool_call.delta, tool_call.ready, tool.result, step.started, step.finished, usage, "
        "interaction.required, interaction.resolved, data, and exactly one terminal: "
        "run.completed, run.failed or run.cancelled. `event: gap` ({from, to}) marks events "
        "no longer retained; `event: slow_consumer` ({resume_after}) ends a stream the "
        f"client did not keep up with. {_KEEPALIVE}"
    )
    example: ClassVar[str] = (
        'id: 2\nevent: text.delta\ndata: {"seq":2,"type":"text.delta","run_id":"run_…",'
        '"data":{"text":"hello"}}\n\n'
    )


class RunAnswer(NativeEventStream):
    """The finished run (JSON); with ``stream: true`` its events (SSE) instead. A run that
    failed answers with the failure's HTTP status and error."""

    json_body: ClassVar[type[BaseModel] | None] = RunView


class ChatCompletionAnswer(EventStream):
    """``stream: false``: the ``chat.completion`` (JSON). ``stream: true``: its
    ``chat.completion.chunk`` frames (SSE)."""

    json_body: ClassVar[type[BaseModel] | None] = ChatCompletion
    frames: ClassVar[str] = (
        "`data: <chat.completion.chunk>` frames; the last chunk of a completed run carries "
        "finish_reason, then (with stream_options.include_usage) one chunk with `choices: []` "
        "and usage, then `data: [DONE]`. A failed or cancelled run ends with "
        '`data: {"error": {"message", "type", "code", "param"}}` and no [DONE]. A run '
        "awaiting input writes the comment `: interaction_required {...}`. "
        f"{_KEEPALIVE}"
    )
    example: ClassVar[str] = (
        'data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":0,'
        '"model":"echo","choices":[{"index":0,"delta":{"content":"hello"},'
        '"finish_reason":null}]}\n\ndata: [DONE]\n\n'
    )


class ResponseAnswer(EventStream):
    """``stream: false``: the response object (JSON; ``background: true`` answers at once,
    queued or in progress). ``stream: true``: its events (SSE)."""

    json_body: ClassVar[type[BaseModel] | None] = ResponseObject
    frames: ClassVar[str] = (
        "`event: <type>` + `data: {type, ..., sequence_number}` frames: response.created, "
        "response.in_progress, response.output_item.added, response.content_part.added, "
        "response.output_text.delta, ..., and one terminal: response.completed, "
        "response.incomplete or response.failed (status failed or cancelled). `event: error` "
        "(code gap or slow_consumer) ends a stream that cannot go on. A run awaiting input "
        f"writes the comment `: interaction_required {{...}}`. {_KEEPALIVE}"
    )
    example: ClassVar[str] = (
        "event: response.output_text.delta\n"
        'data: {"type":"response.output_text.delta","item_id":"msg_…","output_index":0,'
        '"content_index":0,"delta":"hello","logprobs":[],"sequence_number":4}\n\n'
    )


class StoredResponseAnswer(ResponseAnswer):
    """The stored response object (JSON), in any state; with ``?stream=true`` its events
    numbered above ``starting_after`` (SSE): replay, then live."""


class UIMessageStream(EventStream):
    """The reply as a Vercel AI SDK UI message stream (SSE, header
    ``x-vercel-ai-ui-message-stream: v1``)."""

    frames: ClassVar[str] = (
        "`data: <UI message chunk>` frames: start, start-step, text-start, text-delta, "
        "text-end, reasoning-*, tool-input-*, tool-output-available, data-*, finish-step, "
        "then finish (completed), error {errorText} (failed) or abort (cancelled), then "
        "`data: [DONE]`. A question to the user is a data-interaction part. "
        f"{_KEEPALIVE}"
    )
    example: ClassVar[str] = (
        'data: {"type":"start","messageId":"msg_…"}\n\n'
        'data: {"type":"text-delta","id":"text-1","delta":"hello"}\n\n'
        'data: {"type":"finish"}\n\ndata: [DONE]\n\n'
    )


# -- parameters ------------------------------------------------------------------------


class InvalidParameter(ErrorBody):
    """A query parameter or header is invalid; ``fields`` names it."""


def _without_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent, not null: a string parameter has no null value


#: A resume cursor as it travels: ASCII digits (see app.routes._params.cursor_param).
Cursor = Annotated[
    int | None,
    WithJsonSchema({"type": "string", "pattern": CURSOR_PATTERN}),
    Field(json_schema_extra=_without_default),
]


class RunEventsQuery(BaseModel):
    after: Cursor = Field(
        None, description="Resume: only events with a seq above this (400 if invalid)."
    )


class LastEventIdHeader(BaseModel):
    last_event_id: Cursor = Field(
        None,
        alias="Last-Event-ID",
        description="The SSE resume header: only events with a seq above it, if ?after is absent.",
    )


class RunListQuery(BaseModel):
    limit: int = Field(
        DEFAULT_RUN_LIST,
        ge=1,
        le=MAX_RUN_LIST,
        description="How many runs, newest first (400 if invalid).",
    )


class WaitQuery(BaseModel):
    wait: bool = Field(False, description="Answer once the run's terminal event is written.")


class ResponseStreamQuery(BaseModel):
    stream: bool = Field(False, description="Stream the response's events (SSE).")
    starting_after: Cursor = Field(
        None, description="With stream=true: only events numbered above this."
    )


# -- headers ---------------------------------------------------------------------------


class RunIdHeader(BaseModel):
    x_run_id: str = Field(
        ..., alias="x-run-id", description="The run behind the response: /v1/runs/{id} works on it."
    )


class StreamedRunHeaders(BaseModel):
    x_run_id: str | None = Field(None, alias="x-run-id", description="With stream: the run's id.")
    location: str | None = Field(
        None, alias="Location", description="With stream: the run's URL (/v1/runs/{id})."
    )


class LocationHeader(BaseModel):
    location: str = Field(..., alias="Location", description="The run's URL (/v1/runs/{id}).")


class RetryAfterHeader(BaseModel):
    retry_after: int = Field(..., alias="Retry-After", description="Seconds to wait.")


class RunFailureHeaders(BaseModel):
    retry_after: int | None = Field(
        None,
        alias="Retry-After",
        description="Seconds to wait, when the failure says (an upstream's rate limit).",
    )


# -- runs that fail before their first event ------------------------------------------

#: The statuses a run that fails before its first event answers with (400 is documented
#: on every route with a body already).
RUN_FAILURE_STATUSES = sorted({http_status_for(code) for code in ErrorCode} - {400})


class RunFailed(ErrorBody):
    """The run failed before its first event (or, not streaming, at all): its error code,
    message and correlation id, with the run."""

    run: RunView | None = None


class OpenAIRunFailed(OpenAIErrorBody):
    """The run failed before its first event (or, not streaming, at all): an OpenAI-style
    error with the engine's code and the correlation id."""


def run_failures(body: type[BaseModel]) -> Callable[[_Route], _Route]:
    """Document :data:`RUN_FAILURE_STATUSES` on a route that starts a run, with ``body``."""

    def decorate(route: _Route) -> _Route:
        for status in RUN_FAILURE_STATUSES:
            route = document_response(body, status, RunFailureHeaders)(route)
        return route

    return decorate


# -- the provider ----------------------------------------------------------------------

_COMMON_ERRORS = {
    400: "The body is not JSON, or not a valid request (`fields` names what is wrong).",
    401: "A valid API key is required (Authorization: Bearer <key>).",
    413: "The body is larger than the service's max_body_bytes.",
    415: "The body is not application/json in UTF-8.",
    503: "The service is starting or shutting down.",
}

#: One event of a text/event-stream response, as an SSE parser hands it over.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "description": "The event type (absent: message)."},
        "data": {"type": "string", "description": "The frame's data lines, joined."},
        "id": {"type": "string", "description": "The resume cursor (native streams)."},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}


def _document_unavailable(responses: dict[Any, Any], error: dict[str, Any]) -> None:
    """503 on every route: the service is starting or stopping (``Retry-After`` always).
    On a route whose run can also fail with a 503 (``worker_lost``), either body, and
    ``Retry-After`` only sometimes."""
    unavailable = responses.get(503)
    if unavailable is None:
        responses[503] = {
            **error,
            "description": _COMMON_ERRORS[503],
            "headers": _headers(RetryAfterHeader),
        }
        return
    media = unavailable["content"]["application/json"]
    media["schema"] = {"anyOf": [media["schema"], error["content"]["application/json"]["schema"]]}
    unavailable["description"] = f"{unavailable['description']} Or: {_COMMON_ERRORS[503]}"
    unavailable["headers"] = _headers(RunFailureHeaders)


def _headers(model: type[BaseModel]) -> dict[str, Any]:
    """A headers model as an OpenAPI ``headers`` object: one entry per field, named by its
    alias, required when the field has no default."""
    headers: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        schema: dict[str, Any] = {"type": "string"}
        if field.annotation in (int, int | None):
            schema = {"type": "integer", "minimum": 0}
        headers[field.alias or name] = {
            "description": field.description or "",
            "required": field.is_required(),
            "schema": schema,
        }
    return headers


#: The field of each request body that names a registered producer: documented as their
#: names. (A ``model`` is not listed: the routing table may send any name upstream.)
_PRODUCER_FIELDS = {
    "CreateRun": "producer",
    "UIChatRequest": "producer",
}


class ScopestreamOpenAPIProvider(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        """The document, with the producer names this service has registered as the values
        of every field that names one."""
        document: dict[str, Any] = super().schema()
        names: list[Any] = current_service().registry.names()
        for item in document["paths"].values():
            for operation in item.values():
                body = operation.get("requestBody", {}).get("content", {})
                schema = body.get("application/json", {}).get("schema", {})
                field = _PRODUCER_FIELDS.get(schema.get("title", ""))
                if field is not None:
                    prop = schema["properties"][field]
                    prop["enum"] = [*names, None] if "anyOf" in prop else names
        return document

    def build_response_object(
        self, model: type[Any], headers_model: type[Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if isinstance(model, type) and issubclass(model, NoContent):
            return {"description": inspect.getdoc(model) or ""}, {}
        # quart-schema would put the headers inside `content` (not where OpenAPI reads
        # them): every branch here documents them itself, as the response's `headers`.
        if not (isinstance(model, type) and issubclass(model, EventStream)):
            response: dict[str, Any]
            response, components = super().build_response_object(model, None)
            if headers_model is not None:
                response["headers"] = _headers(headers_model)
            return response, components
        response, components = {"content": {}}, {}
        if model.json_body is not None:
            response, components = super().build_response_object(model.json_body, None)
        response["description"] = inspect.getdoc(model) or ""
        # OpenAPI 3.1 has no item schema for a stream (3.2's itemSchema), so `schema`
        # describes each event, as SSE parsers (and schemathesis) read it: an object of
        # the frame's fields.
        event = {**_SSE_EVENT, "description": model.frames}
        stream: dict[str, Any] = {"schema": event}
        if model.example:
            stream["example"] = model.example
        response["content"]["text/event-stream"] = stream
        if headers_model is not None:
            response["headers"] = _headers(headers_model)
        return response, components

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths: dict[str, Any]
        paths, components = super().build_paths(rule)
        error, error_components = super().build_response_object(ErrorBody, None)
        keys_required = bool(self._extension.security)
        for operations in paths.values():
            for operation in operations.values():
                responses: dict[Any, Any] = operation["responses"]
                _document_unavailable(responses, error)
                common: list[int] = []
                if "requestBody" in operation:
                    # Every body route reads a JSON body: an absent one is a 415, not a
                    # default.
                    operation["requestBody"]["required"] = True
                    common += [400, 413, 415]
                if keys_required and operation.get("security") != []:
                    common.append(401)
                for status in common:
                    documented = responses.setdefault(status, dict(error))
                    if not documented.get("description"):
                        documented["description"] = _COMMON_ERRORS[status]
                components.update(error_components)
                for status, response in responses.items():
                    if not response.get("description"):
                        response["description"] = HTTPStatus(int(status)).phrase
        return paths, components
