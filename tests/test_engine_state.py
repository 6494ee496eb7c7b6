"""The pure parts: state machine, log, SSE framing. No event loop needed."""

from __future__ import annotations

import gc

import pytest

from engine import Cancelled, CancelReason, Completed, RunStatus
from engine._events import EventType
from engine._log import EventLog
from engine._state import IllegalTransition, RunState
from engine.protocols._sse import sse_comment, sse_frame
from engine.protocols.native import NativeProjection

from ._sse import native_events, parse_sse


def test_first_cause_wins_and_status_follows_only_when_written() -> None:
    state = RunState()
    state.start()
    assert state.decide(Cancelled(CancelReason.REQUESTED))
    assert not state.decide(Completed())
    assert not state.decide(Cancelled(CancelReason.SHUTDOWN))
    # Decided is not written: the status says running until the terminal is written.
    assert state.status is RunStatus.RUNNING
    assert state.finish() == Cancelled(CancelReason.REQUESTED)
    assert state.status is RunStatus.CANCELLED
    with pytest.raises(IllegalTransition):
        state.finish()
    assert not state.decide(Completed())


def test_pause_and_resume() -> None:
    state = RunState()
    with pytest.raises(IllegalTransition):
        state.pause()
    state.start()
    state.pause()
    assert state.status is RunStatus.AWAITING_INPUT
    state.resume()
    assert state.status is RunStatus.RUNNING


def test_log_seq_has_no_gaps_and_reads_from_any_cursor() -> None:
    log = EventLog("run_x", max_events=10)
    for i in range(5):
        log.append(EventType.TEXT_DELTA, {"text": str(i)})
    assert [e.seq for e in log.all()] == [1, 2, 3, 4, 5]
    for cursor in range(6):
        missing, events = log.read(cursor)
        assert missing == 0
        assert [e.seq for e in events] == list(range(cursor + 1, 6))


def test_log_retention_reports_the_missing_range() -> None:
    log = EventLog("run_x", max_events=4)
    for i in range(10):
        log.append(EventType.TEXT_DELTA, {"text": str(i)})
    missing, events = log.read(0)
    assert missing == 1
    assert [e.seq for e in events] == [7, 8, 9, 10]
    assert log.read(8) == (0, log.all()[-2:])


def test_log_closes_after_the_terminal() -> None:
    log = EventLog("run_x", max_events=4)
    log.append(EventType.RUN_STARTED, {})
    log.append(EventType.COMPLETED, {"finish_reason": "stop", "usage": None})
    assert log.closed and log.terminal is not None
    with pytest.raises(RuntimeError):
        log.append(EventType.TEXT_DELTA, {"text": "late"})


def test_sse_framing_splits_multiline_data() -> None:
    raw = sse_frame("a\nb", event="x", id=3) + sse_comment("keepalive")
    frames = parse_sse(raw)
    assert frames[0].event == "x" and frames[0].id == "3" and frames[0].data == "a\nb"
    assert frames[1].comment


def test_native_projection_round_trips() -> None:
    log = EventLog("run_x", max_events=10)
    log.append(EventType.RUN_STARTED, {})
    log.append(EventType.TEXT_DELTA, {"text": "hé\nllo"})
    raw = NativeProjection().events(log.all())
    assert native_events(raw) == [e.as_dict() for e in log.all()]
    frames = parse_sse(raw)
    assert [f.id for f in frames] == ["1", "2"]
    assert [f.event for f in frames] == ["run.started", "text.delta"]


def test_retained_events_are_not_objects_the_garbage_collector_walks() -> None:
    """A finished run's log stays in memory for its retention; a full collection walks every
    object the collector tracks, so a tracked object per retained event made every stream
    stall for as long as the retained logs were large. Text events add none."""
    log = EventLog("run_x", max_events=100_000)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(10_000):
        log.append(EventType.TEXT_DELTA, {"text": f"t{i}"})
    log.append(EventType.COMPLETED, {"finish_reason": "stop", "usage": None})
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    _, events = log.read(9_998)
    assert [(e.seq, e.type, e.data) for e in events] == [
        (9_999, EventType.TEXT_DELTA, {"text": "t9998"}),
        (10_000, EventType.TEXT_DELTA, {"text": "t9999"}),
        (10_001, EventType.COMPLETED, {"finish_reason": "stop", "usage": None}),
    ]
    assert log.terminal == events[-1]
