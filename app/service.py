"""The service object: one per app, owning the engine for the app's lifetime, the producer
registry, auth and metrics. Routes reach it through :func:`current_service`."""

from __future__ import annotations

import contextvars
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Literal

import trio
from pydantic import ValidationError
from quart import current_app, request

from engine import (
    Backend,
    CancelResult,
    Completed,
    Connection,
    DisconnectPolicy,
    EngineClosed,
    Failed,
    MemoryBackend,
    RunConflict,
    RunHandle,
    RunNotFound,
    open_engine,
)
from engine.protocols.native import NativeProjection

from ._asgi import request_extension
from .auth import Auth
from .compat_schemas import ChatCompletionRequest, normalize_messages
from .errors import ApiError, quoted, validation_fields
from .metrics import Metrics
from .producers import ProducerRegistry, ProducerSpec, echo, synthetic
from .producers.upstream import Upstream, UpstreamConfig
from .routing import ModelRouter
from .schemas import (
    ErrorDetail,
    InteractionRef,
    RunLinks,
    RunOutcome,
    RunOutputView,
    RunSummary,
    RunView,
    ToolCallView,
)
from .settings import ENV_PREFIX, Settings, SettingsError

__all__ = ["Service", "check_store", "current_service"]

_EXTENSION = "scopestream"
logger = logging.getLogger("scopestream.app")

#: The upstream producer's name (a producer only when an upstream is configured).
UPSTREAM = "upstream"


def _upstream(settings: Settings) -> Upstream | None:
    if settings.upstream_base_url is None:
        for name in ("upstream_api_key", "upstream_model_map", "upstream_headers"):
            if getattr(settings, name):
                variable = ENV_PREFIX + name.upper()
                raise SettingsError(
                    f"Invalid setting {variable}: it needs {ENV_PREFIX}UPSTREAM_BASE_URL."
                )
        return None
    return Upstream(
        UpstreamConfig(
            base_url=settings.upstream_base_url,
            api_key=settings.upstream_api_key,
            connect_timeout=settings.upstream_connect_timeout,
            first_token_timeout=settings.upstream_first_token_timeout,
            token_timeout=settings.upstream_token_timeout,
            model_map=dict(settings.upstream_model_map),
            headers=dict(settings.upstream_headers),
        )
    )


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.engine_config()  # a SettingsError now rather than when the engine opens
        self.upstream = _upstream(settings)
        builtins = [echo, synthetic] if settings.demo_producers else []
        if self.upstream is not None:
            builtins.append(
                ProducerSpec(
                    UPSTREAM,
                    self.upstream,
                    ChatCompletionRequest,
                    "An OpenAI-compatible Chat Completions endpoint, streamed.",
                    chat_request=True,
                )
            )
        if settings.backend == "redis":
            settings.redis_config()
        try:
            self.registry = ProducerRegistry.from_paths(builtins, settings.producers)
        except ValueError as exc:
            raise SettingsError(f"Invalid setting {ENV_PREFIX}PRODUCERS: {exc}.") from None
        try:
            self.router = ModelRouter.build(
                settings.models,
                self.registry.names(),
                upstream=UPSTREAM if self.upstream is not None else None,
                model_map=settings.upstream_model_map,
            )
        except ValueError as exc:
            raise SettingsError(f"Invalid setting {ENV_PREFIX}MODELS: {exc}.") from None
        self.auth = Auth(settings.api_keys, public_ops=settings.public_ops)
        self.metrics = Metrics()
        self._backend: Backend | None = None
        self._engine_closed = False
        self._stop = trio.Event()
        self._stopped = trio.Event()

    # -- lifetime -----------------------------------------------------------------------

    async def open(self, nursery: trio.Nursery) -> None:
        if self.upstream is not None:
            # Opened before the engine and closed after it (when _stopped is set, once
            # every run has ended): no run ever finds the client closed.
            await nursery.start(self.upstream.hold, self._stopped)
        self._backend = await nursery.start(self._hold_engine)
        if threading.current_thread() is threading.main_thread():
            nursery.start_soon(self._watch_sigterm)

    async def _watch_sigterm(self) -> None:
        """SIGTERM reaching this worker process (a process-group kill from systemd or a
        container runtime, or ``hypercorn -w 0``): end every run with ``shutdown`` and get
        the terminals onto the wire first, then let the signal do what it would have done.

        When hypercorn's parent process got the signal too, it stops this worker
        gracefully meanwhile; the re-raised signal only matters when nobody else will.
        """
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                break
        logger.info("SIGTERM: shutting down runs", extra={"event": "service.sigterm"})
        await self.close()
        await trio.sleep(self.settings.shutdown_grace + 1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    async def _hold_engine(self, *, task_status: trio.TaskStatus[Backend]) -> None:
        try:
            async with open_engine(
                self.settings.engine_config(),
                observer=self.metrics,
                interaction_url=interaction_path,
                # Taken here, outside any request: a run outlives the request that starts
                # it, and must not keep Quart's request context (the request, its headers
                # and body) alive for as long as it lasts.
                run_context=contextvars.copy_context(),
            ) as engine:
                if self.settings.backend == "redis":
                    # Imported only here: the memory backend needs no coredis.
                    from engine.backends._redis_backend import open_redis_backend

                    async with open_redis_backend(
                        engine,
                        self.settings.redis_url,
                        self.settings.redis_config(),
                        unreachable_after=self.settings.store_unavailable_timeout,
                        drain_grace=self.settings.shutdown_grace,
                    ) as backend:
                        task_status.started(backend)
                        await self._stop.wait()
                else:
                    task_status.started(MemoryBackend(engine))
                    await self._stop.wait()
        finally:
            self._stopped.set()

    async def close(self) -> None:
        """Cancel every live run (``shutdown``) and let their terminals reach the clients,
        within the configured grace period."""
        if self._backend is not None:
            await self._backend.engine.aclose()
            self._engine_closed = True
        self._stop.set()
        with trio.move_on_after(self.settings.shutdown_grace + 1, shield=True):
            await self._stopped.wait()

    @property
    def backend(self) -> Backend:
        if self._backend is None or self._engine_closed:
            raise ApiError(503, "unavailable", "The service is starting or stopping.")
        return self._backend

    # -- runs ---------------------------------------------------------------------------

    def producer(self, name: str, *, field: str = "producer", status: int = 400) -> ProducerSpec:
        spec = self.registry.get(name)
        if spec is None:
            raise ApiError(
                status,
                "unknown_producer" if status == 400 else "model_not_found",
                f"Unknown producer {quoted(name)}; known: {', '.join(self.registry.names())}.",
                fields=[{"field": field, "message": "unknown producer"}],
            )
        return spec

    def model(self, name: str) -> ProducerSpec:
        """The producer a request's ``model`` is routed to; 404 ``model_not_found``."""
        producer = self.router.resolve(name)
        spec = self.registry.get(producer) if producer is not None else None
        if spec is None:
            raise ApiError(
                404,
                "model_not_found",
                f"The model {quoted(name)} does not exist; GET /v1/models lists them.",
                type="invalid_request_error",
                param="model",
                fields=[{"field": "model", "message": "no route for this model"}],
            )
        return spec

    def validate_input(
        self, spec: ProducerSpec, data: dict[str, Any], *, prefix: tuple[str, ...] = ("input",)
    ) -> dict[str, Any]:
        if spec.input_model is None:
            return data
        # Input models may bound what they ask for by the run's output budget (synthetic's
        # events x event_bytes): a request for more is a 400 now, not a failed run later.
        context = {"max_output_bytes": self.settings.max_output_bytes}
        try:
            return spec.input_model.model_validate(data, context=context).model_dump(mode="json")
        except ValidationError as exc:
            fields = validation_fields(exc, prefix)
            names = ", ".join(f["field"] for f in fields)
            raise ApiError(
                400, "invalid_request", f"Invalid fields: {names}.", fields=fields
            ) from None

    def chat_input(
        self,
        spec: ProducerSpec,
        params: dict[str, Any],
        messages: Any,
        request: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """A chat route's run input; the one place that decides what a producer is given.

        A producer that takes a chat request (the upstream) gets ``request()``, the route's
        request as a Chat Completions request, checked by its schema (a 400 naming the
        field). Any other gets its parameters (the request's ``metadata``, checked by its
        input model) plus the conversation ``messages`` as ``{role, content}`` text,
        unless its input model refuses that field (``synthetic``).
        """
        if spec.chat_request:
            try:
                chat = ChatCompletionRequest.model_validate(request())
            except ValidationError as exc:
                fields = validation_fields(exc)
                names = ", ".join(f["field"] for f in fields)
                raise ApiError(
                    400, "invalid_request", f"Invalid fields: {names}.", fields=fields
                ) from None
            return chat.model_dump(mode="json", exclude_none=True)
        params = self.validate_input(spec, dict(params), prefix=("metadata",))
        model = spec.input_model
        if model is not None and "messages" not in model.model_fields:
            if model.model_config.get("extra") == "forbid":
                return params
        return {**params, "messages": normalize_messages(messages)}

    async def start(
        self,
        spec: ProducerSpec,
        input: dict[str, Any],
        *,
        owner: str | None,
        client_run_id: str | None,
        policy: DisconnectPolicy,
        metadata: dict[str, Any] | None = None,
    ) -> RunHandle:
        try:
            return await self.backend.start(
                spec.producer,
                input=input,
                producer_name=spec.name,
                owner=owner,
                client_run_id=client_run_id,
                on_disconnect=policy,
                metadata=metadata,
            )
        except RunConflict as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        except EngineClosed:
            raise ApiError(503, "unavailable", "The service is shutting down.") from None

    async def find(self, run_id: str, owner: str | None) -> RunHandle:
        try:
            return await self.backend.find(run_id, owner=owner)
        except RunNotFound:
            raise ApiError(404, "not_found", f"No run {quoted(run_id)}.") from None

    async def recent_runs(self, owner: str | None, limit: int) -> list[RunHandle]:
        """The owner's ``limit`` most recently created runs, newest first. Runs of other
        owners are never listed, as they are never found."""
        return await self.backend.recent_runs(owner, limit)

    async def find_or_none(self, run_id: str, owner: str | None) -> RunHandle | None:
        try:
            return await self.backend.find(run_id, owner=owner)
        except RunNotFound:
            return None

    async def cancel(self, run_id: str, owner: str | None) -> CancelResult:
        return await self.backend.cancel(run_id, owner=owner)

    async def when_done(self, run: RunHandle, owner: str | None) -> RunHandle:
        """The run once its terminal is recorded, read afresh: a handle to another worker's
        run is a snapshot (its output and timestamps as they were when it was found)."""
        await run.wait_done()
        return await self.find(run.id, owner)

    async def settle(self, run: RunHandle) -> Literal["done", "awaiting_input"]:
        """Wait, for a non-streaming request, until the run ends or asks for input.

        The request counts as a connection: if the client leaves, the run's disconnect
        policy applies.
        """
        ext = request_extension(request.scope)
        log = run.log
        with Connection(run, NativeProjection()) as connection:
            try:
                while True:
                    if run.status.terminal:
                        connection.close_reason = "finished"
                        return "done"
                    if run.pending_interaction is not None and self.settings.interactive:
                        connection.close_reason = "finished"
                        return "awaiting_input"
                    await log.wait_beyond(log.last_seq)
            except trio.Cancelled:
                if ext is not None and ext.disconnected.is_set():
                    connection.disconnected()
                raise


async def check_store(settings: Settings) -> None:
    """Raise :class:`~engine.backends.StoreUnavailable` if the configured store does not
    answer (nothing to check for the memory backend)."""
    if settings.backend == "redis":
        from engine.backends._redis_store import probe_redis

        await probe_redis(settings.redis_url)


def current_service() -> Service:
    return service_of(current_app)


def service_of(app: Any) -> Service:
    service = app.extensions[_EXTENSION]
    assert isinstance(service, Service)
    return service


def install_service(app: Any, service: Service) -> None:
    app.extensions[_EXTENSION] = service


def run_path(run_id: str) -> str:
    return f"/v1/runs/{run_id}"


def interaction_path(run_id: str, interaction_id: str) -> str:
    return f"/v1/runs/{run_id}/interactions/{interaction_id}"


def run_view(run: RunHandle) -> RunView:
    return RunView(**_summary_fields(run), output=output_view(run))


def run_summary(run: RunHandle) -> RunSummary:
    return RunSummary(**_summary_fields(run))


def _summary_fields(run: RunHandle) -> dict[str, Any]:
    outcome = run.outcome
    view_outcome: RunOutcome | None = None
    if isinstance(outcome, Completed):
        view_outcome = RunOutcome(
            status="completed",
            finish_reason=outcome.finish_reason,
            usage=outcome.usage.as_dict() if outcome.usage else None,
        )
    elif isinstance(outcome, Failed):
        view_outcome = RunOutcome(status="failed", error=ErrorDetail(**outcome.error.as_dict()))
    elif outcome is not None:
        view_outcome = RunOutcome(status="cancelled", reason=outcome.reason.value)
    pending = run.pending_interaction
    path = run_path(run.id)
    return dict(
        id=run.id,
        producer=run.producer_name,
        status=run.status.value,
        client_run_id=run.client_run_id,
        created_at=run.created_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
        last_seq=run.last_seq,
        outcome=view_outcome,
        pending_interaction=InteractionRef(
            id=pending.id, prompt=pending.prompt, response_url=interaction_path(run.id, pending.id)
        )
        if pending
        else None,
        links=RunLinks(self=path, events=path + "/events", cancel=path + "/cancel"),
    )


def output_view(run: RunHandle) -> RunOutputView:
    """The run's answer so far, from its accumulated output (never from its trimmed log):
    whole for a completed run, since a run whose output outgrows its budget fails."""
    output = run.output
    return RunOutputView(
        text=output.text(),
        reasoning=output.reasoning(),
        tool_calls=[
            ToolCallView(id=item.call_id, name=item.name, arguments=item.text())
            for item in output.function_calls()
        ],
    )
