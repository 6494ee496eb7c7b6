"""The native runs API (``/v1/runs``)."""

from __future__ import annotations

from typing import Any

from pydantic import RootModel
from quart import Blueprint, Response, request
from quart_schema import (
    document_headers,
    document_querystring,
    document_response,
    validate_request,
)

from engine import (
    Connection,
    Failed,
    InteractionNotFound,
    InteractionNotPending,
    RunHandle,
    RunNotFound,
    http_status_for,
)
from engine.protocols.native import NativeProjection, error_body

from ..errors import ApiError, quoted
from ..openapi_models import (
    DEFAULT_RUN_LIST,
    MAX_RUN_LIST,
    InvalidParameter,
    LastEventIdHeader,
    LocationHeader,
    NativeEventStream,
    RunAnswer,
    RunEventsQuery,
    RunFailed,
    RunIdHeader,
    RunListQuery,
    StreamedRunHeaders,
    WaitQuery,
    run_failures,
)
from ..schemas import (
    CancelAnswer,
    CreateRun,
    ErrorBody,
    ExecutionAccepted,
    InteractionAnswer,
    RunList,
    RunView,
)
from ..service import Service, current_service, run_path, run_summary, run_view
from ..settings import Settings
from ..streaming import stream_response
from ._common import execution_accepted, json_response
from ._params import (
    bool_param,
    check_client_run_id,
    check_cursor_within,
    cursor_param,
    is_server_run_id,
)

__all__ = ["cancel", "run_stream", "runs_blueprint", "start_run"]


class RunOrExecution(RootModel[RunView | ExecutionAccepted]):
    """202: a background run was accepted, or the run paused for human input."""


def finished_run(run: RunHandle) -> Response:
    """A settled run: 200 with the run, or the failure's HTTP status with its error."""
    outcome = run.outcome
    if isinstance(outcome, Failed):
        return Response(
            error_body(**outcome.error.as_dict(), run=run_view(run).model_dump(mode="json")),
            status=http_status_for(outcome.error.code),
            content_type="application/json",
        )
    return json_response(run_view(run))


# -- the route logic that the entry point's direct routes (app._hot) share -----------------


async def start_run(service: Service, owner: str | None, data: CreateRun) -> RunHandle:
    """``POST /v1/runs``: the run a valid request asks for, started."""
    check_client_run_id("client_run_id", data.client_run_id)
    spec = service.producer(data.producer)
    return await service.start(
        spec,
        service.validate_input(spec, data.input),
        owner=owner,
        client_run_id=data.client_run_id,
        policy=data.policy(),
    )


def run_stream(run: RunHandle) -> tuple[Connection, list[tuple[str, str]]]:
    """A streamed run's answer: its native stream, and the headers that name the run."""
    return Connection(run, NativeProjection()), [
        ("x-run-id", run.id),
        ("Location", run_path(run.id)),
    ]


async def cancel(
    service: Service, owner: str | None, run_id: str, *, wait: bool
) -> tuple[CancelAnswer, int]:
    """``POST /v1/runs/{run_id}/cancel``: the answer and its status."""
    if is_server_run_id(run_id):
        # Only the server makes ids of this form, so an unknown one is not a run that is
        # about to exist: 404, as for any other route (and for another key's run).
        await service.find(run_id, owner)
    result = await service.cancel(run_id, owner)
    run = result.run
    if run is None:
        return CancelAnswer(id=run_id, result=result.result), 202
    if wait:
        run = await service.when_done(run, owner)
    answer = CancelAnswer(
        id=run.id, result=result.result, status=run.status.value, run=run_view(run)
    )
    return answer, 200


def runs_blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("runs", __name__)
    # 202 is documented only where it can happen: a paused run answers 202 only when
    # interactive mode is on; a background run always can.
    accepted: Any = RunOrExecution if settings.interactive else RunView

    @bp.post("/v1/runs")
    @validate_request(CreateRun)
    @document_response(RunAnswer, 200, StreamedRunHeaders)
    @document_response(accepted, 202, LocationHeader)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 409)
    @run_failures(RunFailed)
    async def create_run(data: CreateRun) -> Response:
        """Create a run: stream it (SSE), wait for it, or start it in the background."""
        service = current_service()
        run = await start_run(service, service.auth.owner(), data)
        if data.stream:
            connection, headers = run_stream(run)
            return stream_response(connection, headers=headers)
        location = run_path(run.id)
        if data.background:
            return json_response(run_view(run), 202, {"Location": location})
        if await service.settle(run) == "awaiting_input":
            return execution_accepted(run)
        return finished_run(run)

    @bp.get("/v1/runs")
    @document_querystring(RunListQuery)
    @document_response(RunList, 200)
    @document_response(InvalidParameter, 400)
    async def list_runs() -> Response:
        """The caller's most recent runs, newest first: only runs created with the caller's
        API key (when keys are on), live and finished (until their retention runs out)."""
        service = current_service()
        owner = service.auth.owner()
        limit = cursor_param("limit", request.args.get("limit"))
        if limit is not None and not 1 <= limit <= MAX_RUN_LIST:
            raise ApiError(
                400,
                "invalid_request",
                f"limit must be between 1 and {MAX_RUN_LIST}.",
                fields=[{"field": "limit", "message": f"must be between 1 and {MAX_RUN_LIST}"}],
            )
        runs = await service.recent_runs(owner, DEFAULT_RUN_LIST if limit is None else limit)
        return json_response(RunList(data=[run_summary(run) for run in runs]))

    @bp.get("/v1/runs/<run_id>")
    @document_response(RunView, 200)
    @document_response(ErrorBody, 404)
    async def get_run(run_id: str) -> Response:
        """The run: status, timestamps, last seq, outcome, pending interaction, links."""
        service = current_service()
        return json_response(run_view(await service.find(run_id, service.auth.owner())))

    @bp.get("/v1/runs/<run_id>/events")
    @document_querystring(RunEventsQuery)
    @document_headers(LastEventIdHeader)
    @document_response(NativeEventStream, 200, RunIdHeader)
    @document_response(InvalidParameter, 400)
    @document_response(ErrorBody, 404)
    async def run_events(run_id: str) -> Response:
        """SSE of the run's events after ``Last-Event-ID`` or ``?after=N``: replay, then live,
        ending after the terminal."""
        service = current_service()
        run = await service.find(run_id, service.auth.owner())
        # Both are checked, whichever is used: a bad cursor is a 400, never ignored.
        query = cursor_param("after", request.args.get("after"))
        header = cursor_param("Last-Event-ID", request.headers.get("Last-Event-ID"))
        name, after = ("after", query) if query is not None else ("Last-Event-ID", header)
        check_cursor_within(name, after, run.last_seq, last_field="last_seq")
        return stream_response(
            Connection(run, NativeProjection(), cursor=after or 0),
            headers=[("x-run-id", run.id)],
            early_failure=False,
        )

    @bp.post("/v1/runs/<run_id>/cancel")
    @document_querystring(WaitQuery)
    @document_response(CancelAnswer, 200)
    @document_response(CancelAnswer, 202)
    @document_response(InvalidParameter, 400)
    @document_response(ErrorBody, 404)
    async def cancel_run(run_id: str) -> Response:
        """Cancel a run (idempotent). ``?wait=true`` answers once the terminal is written.
        An unknown ``client_run_id`` is remembered for a while (202), so a run created with it
        soon after starts cancelled; an unknown server run id is a 404."""
        service = current_service()
        wait = bool_param("wait")
        return json_response(*await cancel(service, service.auth.owner(), run_id, wait=wait))

    @bp.post("/v1/runs/<run_id>/interactions/<interaction_id>")
    @validate_request(InteractionAnswer)
    @document_response(RunView, 200)
    @document_response(ErrorBody, 404)
    @document_response(ErrorBody, 409)
    async def answer_interaction(
        run_id: str, interaction_id: str, data: InteractionAnswer
    ) -> Response:
        """Answer a pending question; the run resumes."""
        service = current_service()
        owner = service.auth.owner()
        await service.find(run_id, owner)  # 404 for an unknown run before the interaction
        try:
            run = await service.backend.answer(run_id, interaction_id, data.response, owner=owner)
        except RunNotFound:
            raise ApiError(404, "not_found", f"No run {run_id!r}.") from None
        except InteractionNotFound:
            raise ApiError(
                404, "not_found", f"No interaction {quoted(interaction_id)} on this run."
            ) from None
        except InteractionNotPending as exc:
            raise ApiError(409, "interaction_not_pending", str(exc)) from None
        return json_response(run_view(run))

    return bp
