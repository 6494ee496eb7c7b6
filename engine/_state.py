"""The run state machine: pure, synchronous, no Trio.

Theory of operation
-------------------
A run moves ``queued -> running <-> awaiting_input`` and ends in exactly one of
``completed | failed | cancelled``. Many things can end a run: the producer returning,
the producer raising, a cancel request, a client disconnect, the run deadline, the stall
watchdog, an interaction timing out, engine shutdown. Several of them can happen at the
same checkpoint (a cancel arrives while the producer is returning; a deadline fires while
a client disconnects).

So deciding and *writing* the outcome are two separate steps:

1. **Decide** (:meth:`RunState.decide`): the first cause to be recorded wins, and every
   later cause is ignored. Recording is synchronous — no checkpoint between "is there a
   cause already?" and "this is the cause" — so no two tasks can both win.
2. **Write** (:meth:`RunState.finish`): the run's root scope writes the decided outcome as
   the terminal event, once, after the producer's scope has exited (so the producer's own
   cleanup has run and knew it was cancelled). Status becomes terminal in the same
   synchronous step as the terminal event is appended, so the status can never disagree
   with the log: there is no "running" after the terminal was sent, and no terminal while
   the status says running.

External causes (cancel, disconnect, deadline, stall, interaction timeout, shutdown) decide
*and then* cancel the producer's scope; internal causes (return, raise) are recorded when
the producer's scope exits. Either way the root scope does the writing.
"""

from __future__ import annotations

from ._events import Outcome, RunStatus

__all__ = ["IllegalTransition", "RunState"]


class IllegalTransition(RuntimeError):
    pass


class RunState:
    __slots__ = ("_cause", "_status")

    def __init__(self) -> None:
        self._status = RunStatus.QUEUED
        self._cause: Outcome | None = None

    @property
    def status(self) -> RunStatus:
        return self._status

    @property
    def cause(self) -> Outcome | None:
        """The decided outcome, once one is decided (it may not be written yet)."""
        return self._cause

    @property
    def decided(self) -> bool:
        return self._cause is not None

    def start(self) -> None:
        self._require(RunStatus.QUEUED)
        self._status = RunStatus.RUNNING

    def pause(self) -> None:
        self._require(RunStatus.RUNNING)
        self._status = RunStatus.AWAITING_INPUT

    def resume(self) -> None:
        self._require(RunStatus.AWAITING_INPUT)
        self._status = RunStatus.RUNNING

    def decide(self, outcome: Outcome) -> bool:
        """Record ``outcome`` as the cause if none is recorded yet. True if it won."""
        if self._cause is not None or self._status.terminal:
            return False
        self._cause = outcome
        return True

    def finish(self) -> Outcome:
        """Make the decided outcome the status. Called exactly once, by the root scope."""
        if self._status.terminal:
            raise IllegalTransition("the run already has its terminal outcome")
        if self._cause is None:
            raise IllegalTransition("no outcome was decided")
        self._status = self._cause.status
        return self._cause

    def _require(self, *allowed: RunStatus) -> None:
        if self._status not in allowed:
            raise IllegalTransition(f"not allowed from {self._status}")
