"""Run: one producer, its watchdog, its terminal latch and its event log.

The run's scope tree (see ``docs/architecture.md``)::

    run scope (a nursery: in the engine's nursery when detached, in the caller's task when
    │          attached)
    ├── producer scope   cancelled by every external cause; the producer sees Cancelled
    ├── watchdog         run deadline and stall detection; decides, then cancels the producer
    └── grace timer      only while disconnected under a ``grace`` policy

The outcome is decided by the first recorded cause and written by :meth:`Run._main` once
the producer's scope has exited (see ``engine/_state.py`` for why).
"""

from __future__ import annotations

import inspect
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import trio

from ._config import DisconnectPolicy, EngineConfig
from ._context import RunContext
from ._errors import EngineError, InteractionNotFound, InteractionNotPending
from ._events import (
    FINISH_REASONS,
    Cancelled,
    CancelReason,
    Completed,
    ErrorCode,
    ErrorInfo,
    EventType,
    Failed,
    FinishReason,
    Outcome,
    RunStatus,
    Usage,
)
from ._log import EventLog
from ._observer import EngineObserver
from ._output import OUTPUT_TYPES, RunOutput, data_bytes
from ._state import RunState

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["Interaction", "Producer", "Run"]

logger = logging.getLogger("scopestream.engine")

#: A producer: an async function taking the run's context and returning ``None`` (finish
#: reason ``stop``) or a finish reason; or an async generator function yielding text deltas.
Producer: TypeAlias = (
    Callable[[RunContext], Awaitable[FinishReason | None]]
    | Callable[[RunContext], AsyncIterator[str]]
)

GENERIC_FAILURE = "The run failed because of an internal error."

_TEXT_DELTA = EventType.TEXT_DELTA  # an enum class attribute lookup is slow; _emit is hot


def new_id(prefix: str) -> str:
    """An unguessable id: 128 random bits."""
    return prefix + secrets.token_hex(16)


class Interaction:
    __slots__ = ("_answered", "id", "prompt", "response", "state")

    def __init__(self, prompt: str) -> None:
        self.id = new_id("int_")
        self.prompt = prompt
        self.state: Literal["pending", "answered", "expired", "cleared"] = "pending"
        self.response: Any = None
        self._answered = trio.Event()


class Run:
    def __init__(
        self,
        *,
        engine: Engine,
        producer: Producer,
        producer_name: str,
        input: Mapping[str, Any],
        owner: str | None,
        client_run_id: str | None,
        on_disconnect: DisconnectPolicy,
        config: EngineConfig,
        observer: EngineObserver,
        interaction_url: Callable[[str, str], str] | None,
    ) -> None:
        self.id = new_id("run_")
        self.producer_name = producer_name
        self.owner = owner
        self.client_run_id = client_run_id
        self.on_disconnect = on_disconnect
        self.input = input
        #: The embedder's own notes about the run; the engine never reads them.
        self.metadata: dict[str, Any] = {}
        self.log = EventLog(self.id, config.max_log_events, config.max_log_bytes)
        #: The whole answer so far, kept apart from the (trimmed) log: see ``_output``.
        self.output = RunOutput()
        # Wall-clock timestamps (time.time()) for people and other processes.
        self.created_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        # Trio-clock timestamps, for latencies (cancel-to-terminal).
        self.cancel_requested_at: float | None = None
        self.terminal_at: float | None = None

        self._engine = engine
        self._producer = _as_function(producer)
        self._config = config
        self._observer = observer
        self._interaction_url = interaction_url
        self._state = RunState()
        self._producer_scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._done = trio.Event()
        self._last_progress = 0.0
        self._interactions: dict[str, Interaction] = {}
        self._pending: Interaction | None = None
        self._connections = 0
        self._remote_connections = 0  # followers on other workers (Redis backend)
        self._grace_scope: trio.CancelScope | None = None

    # -- reading ------------------------------------------------------------------------

    @property
    def usage(self) -> Usage | None:
        """The last usage the producer reported."""
        return self.output.usage

    @property
    def status(self) -> RunStatus:
        return self._state.status

    @property
    def outcome(self) -> Outcome | None:
        """The written outcome; None until the terminal event is in the log."""
        return self._state.cause if self._state.status.terminal else None

    @property
    def pending_interaction(self) -> Interaction | None:
        return self._pending

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    @property
    def connections(self) -> int:
        return self._connections

    async def wait_done(self) -> None:
        """Return once the terminal event is in the log."""
        await self._done.wait()

    # -- controlling --------------------------------------------------------------------

    def cancel(self, reason: CancelReason = CancelReason.REQUESTED) -> bool:
        """Cancel the run. True if this cancel decides its outcome.

        Cancelling a run whose outcome is already decided (or written) changes nothing and
        returns False; cancelling twice is harmless. The producer's scope is cancelled at
        once: the producer sees :class:`trio.Cancelled` at its next checkpoint.
        """
        if self._interrupt(Cancelled(CancelReason(reason))):
            self.cancel_requested_at = trio.current_time()
            return True
        return False

    def answer(self, interaction_id: str, response: Any) -> None:
        """Answer a pending interaction and resume the producer.

        Raises :class:`InteractionNotFound` for an id this run never issued and
        :class:`InteractionNotPending` when it was answered, timed out or cleared.
        """
        interaction = self._interactions.get(interaction_id)
        if interaction is None:
            raise InteractionNotFound(interaction_id)
        if interaction.state != "pending" or self._state.decided:
            raise InteractionNotPending(f"interaction {interaction_id} is {interaction.state}")
        interaction.state = "answered"
        interaction.response = response
        self._pending = None
        self._state.resume()
        self._emit(EventType.INTERACTION_RESOLVED, {"interaction_id": interaction_id})
        interaction._answered.set()

    # -- the run's root scope -----------------------------------------------------------

    async def _main(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._state.start()
        self.started_at = time.time()
        self._last_progress = trio.current_time()
        self._emit(EventType.RUN_STARTED, {})
        self._observer.run_started(self)
        logger.info(
            "run started",
            extra={"event": "run.started", "run_id": self.id, "producer": self.producer_name},
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                nursery.start_soon(self._watchdog)
                await self._run_producer()
                nursery.cancel_scope.cancel(reason="the run's outcome is decided")
        finally:
            self._nursery = None
            # Reached with no cause only when the scope holding the run was cancelled from
            # outside (the engine's or the request's nursery is going away): a shutdown.
            self._state.decide(Cancelled(CancelReason.SHUTDOWN))
            self._write_terminal()

    async def _run_producer(self) -> None:
        outcome: Outcome | None = None  # stays None when the producer's scope absorbed our cancel
        try:
            with self._producer_scope:
                if self._state.decided:  # cancelled before it started
                    return
                result = await self._producer(RunContext(self, self.input))
                reason: FinishReason = "stop"
                if result is not None:
                    if result not in FINISH_REASONS:
                        raise EngineError(
                            ErrorCode.SERVER_ERROR,
                            "The producer returned an unknown finish reason.",
                        )
                    reason = result
                outcome = Completed(reason, self.usage)
        except Exception as exc:
            # Includes an ExceptionGroup left after the scope took out its own Cancelleds.
            outcome = self._failure(exc)
        if trio.current_effective_deadline() == -math.inf:
            # The scope holding the run was cancelled from outside while the producer was
            # unwinding, and its cleanup raised or swallowed the Cancelled: that cause came
            # first, so the run is a shutdown whatever the cleanup did afterwards.
            self._state.decide(Cancelled(CancelReason.SHUTDOWN))
        if outcome is not None:
            self._state.decide(outcome)

    def _failure(self, exc: Exception) -> Failed:
        correlation_id = new_id("err_")
        engine_error = _find_engine_error(exc)
        extra = {"run_id": self.id, "correlation_id": correlation_id}
        if engine_error is not None:
            logger.info(
                "producer failed: %s", engine_error.code, extra={"event": "run.error", **extra}
            )
            return Failed(
                ErrorInfo(
                    engine_error.code,
                    engine_error.message,
                    correlation_id,
                    engine_error.retry_after,
                )
            )
        # The traceback goes to the log under the correlation id, never onto the wire.
        logger.error("producer raised", exc_info=exc, extra={"event": "run.error", **extra})
        return Failed(ErrorInfo(ErrorCode.SERVER_ERROR, GENERIC_FAILURE, correlation_id))

    def _write_terminal(self) -> None:
        outcome = self._state.finish()
        self._clear_interaction()
        data = outcome.as_dict()
        self.log.append(outcome.event_type, data, data_bytes(data))
        self.output.finish(outcome)
        self.ended_at = time.time()
        self.terminal_at = trio.current_time()
        self._done.set()
        self._engine._run_finished(self)
        self._observer.run_finished(self)
        extra: dict[str, Any] = {"event": outcome.event_type.value, "run_id": self.id}
        if isinstance(outcome, Failed):
            extra["correlation_id"] = outcome.error.correlation_id
            extra["code"] = outcome.error.code.value
        elif isinstance(outcome, Cancelled):
            extra["reason"] = outcome.reason.value
        logger.info("run %s", outcome.status.value, extra=extra)

    def _interrupt(self, outcome: Outcome) -> bool:
        """Decide ``outcome`` if nothing is decided yet and stop the producer."""
        if not self._state.decide(outcome):
            return False
        self._producer_scope.cancel(reason=f"run {outcome.status.value}")
        self._clear_interaction()
        return True

    def _fail(self, code: ErrorCode, message: str) -> bool:
        return self._interrupt(Failed(ErrorInfo(code, message, new_id("err_"))))

    async def _watchdog(self) -> None:
        """The run deadline and the stall detector. Keepalives are not progress: only
        producer events (and answered interactions) move ``_last_progress``."""
        timeout, stall = self._config.run_timeout, self._config.stall_timeout
        deadline = self._last_progress + timeout if timeout is not None else math.inf
        if stall is None and timeout is None:
            return
        while True:
            stall_at = self._last_progress + stall if stall is not None else math.inf
            await trio.sleep_until(min(deadline, stall_at))
            now = trio.current_time()
            if now >= deadline:
                self._fail(ErrorCode.TIMEOUT, "The run exceeded its time limit.")
                return
            if stall is not None and now >= self._last_progress + stall:
                if self._state.status is RunStatus.AWAITING_INPUT:
                    self._last_progress = now  # waiting for a human is not a stall
                    continue
                self._fail(ErrorCode.STALLED, "The run stopped making progress.")
                return

    # -- used by RunContext -------------------------------------------------------------

    def _emit(self, type: EventType, data: Mapping[str, Any]) -> bool:
        """Append an event to the log and fold it into the output. False, with nothing
        appended, when it breaks a byte budget: the run has then failed (the producer's
        scope is cancelled, so the producer sees Cancelled at its next checkpoint)."""
        if type is _TEXT_DELTA and (text := data["text"]).__class__ is str:
            size = len(text) if text.isascii() else 4 * len(text)  # the hot path, inline
        else:
            size = data_bytes(data)
        config = self._config
        if size > config.max_event_bytes:
            self._fail(
                ErrorCode.EVENT_TOO_LARGE,
                f"The run produced an event of about {size} bytes; the limit is "
                f"{config.max_event_bytes}.",
            )
            return False
        # Set membership last: hashing an enum member is a Python-level call.
        if self.output.bytes + size > config.max_output_bytes and type in OUTPUT_TYPES:
            self._fail(
                ErrorCode.OUTPUT_TOO_LARGE,
                f"The run's output exceeded {config.max_output_bytes} bytes, the most the "
                "server keeps for one answer.",
            )
            return False
        self.log.append(type, data, size)
        self.output.add(type, data, size)
        self._last_progress = trio.current_time()
        return True

    async def _ask(self, prompt: str, answer_within: float | None) -> Any:
        if not self._config.interactive:
            self._fail(
                ErrorCode.INTERACTION_NOT_SUPPORTED,
                "The run asked for human input, but interactive mode is off.",
            )
            await trio.sleep_forever()  # the producer's scope is cancelled: raises Cancelled
        interaction = Interaction(prompt)
        self._interactions[interaction.id] = interaction
        self._pending = interaction
        self._state.pause()
        url = self._interaction_url(self.id, interaction.id) if self._interaction_url else None
        self._emit(
            EventType.INTERACTION_REQUIRED,
            {"interaction_id": interaction.id, "prompt": prompt, "response_url": url},
        )
        logger.info(
            "run awaiting input",
            extra={
                "event": "run.awaiting_input",
                "run_id": self.id,
                "interaction_id": interaction.id,
            },
        )
        with trio.move_on_after(
            answer_within if answer_within is not None else self._config.interaction_timeout
        ):
            await interaction._answered.wait()
        if interaction.state == "pending":
            await self._referee_timeout(interaction)
        # An answer accepted in the same tick as the deadline wins: answer() already told
        # its caller yes and emitted interaction.resolved, so the run must go on with it.
        if interaction.state == "answered":
            return interaction.response
        interaction.state = "expired"
        self._fail(ErrorCode.INTERACTION_TIMEOUT, "Nobody answered the run's question in time.")
        await trio.sleep_forever()  # raises Cancelled, as above

    async def _referee_timeout(self, interaction: Interaction) -> None:
        """With a shared store, an answer may have been taken on another worker and still
        be on its way here: the store decides between it and this timeout (one
        compare-and-set), and an answer that won is taken now, so a client told yes is
        never failed with ``interaction_timeout``. Without a referee (memory backend),
        every answer is already here."""
        referee = self._engine._interaction_referee
        if referee is None:
            return
        verdict, response = await referee(self.id, interaction.id)
        if verdict == "answered" and interaction.state == "pending":
            self.answer(interaction.id, response)

    def _clear_interaction(self) -> None:
        """A decided run answers no more questions: a late answer gets InteractionNotPending."""
        if self._pending is not None:
            if self._pending.state == "pending":
                self._pending.state = "cleared"
            self._pending = None
            if self._state.status is RunStatus.AWAITING_INPUT:
                self._state.resume()

    # -- used by connections ------------------------------------------------------------

    def _attach(self, *, remote: bool = False) -> None:
        """A follower arrived: here, or (``remote``) on another worker, as signalled
        through the store. Remote followers count only for the disconnect policy: their
        own worker observes and drains them."""
        if remote:
            self._remote_connections += 1
        else:
            self._connections += 1
            self._observer.connection_opened(self)
        if self._grace_scope is not None:
            self._grace_scope.cancel(reason="a client came back")
            self._grace_scope = None

    def _detach(self, *, client_gone: bool, remote: bool = False) -> None:
        if remote:
            self._remote_connections -= 1
        else:
            self._connections -= 1
            self._engine._connection_closed()
        if not client_gone or self._connections or self._remote_connections or self._state.decided:
            return
        policy = self.on_disconnect
        if policy.action == "cancel" or (policy.action == "grace" and self._nursery is None):
            self.cancel(CancelReason.CLIENT_DISCONNECTED)
        elif policy.action == "grace" and self._nursery is not None:
            self._grace_scope = trio.CancelScope()
            self._nursery.start_soon(self._grace_timer, self._grace_scope, policy.grace)

    async def _grace_timer(self, scope: trio.CancelScope, grace: float) -> None:
        with scope:
            await trio.sleep(grace)
            self.cancel(CancelReason.CLIENT_DISCONNECTED)


def _find_engine_error(exc: BaseException) -> EngineError | None:
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_engine_error(inner)
            if found is not None:
                return found
    return None


def _as_function(producer: Producer) -> Callable[[RunContext], Awaitable[FinishReason | None]]:
    """Async-generator producers run through :func:`trio.as_safe_channel`, so that no
    ``yield`` ever happens inside a nursery or cancel scope opened by the generator."""
    if not inspect.isasyncgenfunction(producer):
        return producer  # type: ignore[return-value]
    safe = trio.as_safe_channel(producer)

    async def run_generator(ctx: RunContext) -> None:
        async with safe(ctx) as deltas:
            async for delta in deltas:
                await ctx.text(delta)

    return run_generator
