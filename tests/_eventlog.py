"""Build a run's native event log by hand, for the projection tests (no engine, no Trio)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hypothesis import strategies as st

from engine import (
    Cancelled,
    CancelReason,
    Completed,
    ErrorCode,
    ErrorInfo,
    Event,
    EventType,
    Failed,
    Outcome,
    Usage,
)

Step = tuple[EventType | str, Mapping[str, Any]]


def make_log(run_id: str, steps: Iterable[Step], terminal: Outcome | None) -> list[Event]:
    """``run.started`` (seq 1), then ``steps`` in order, then the terminal's event.

    With ``terminal=None`` the log is that of a run still going (or awaiting input).
    """
    events = [Event(1, EventType.RUN_STARTED, run_id, {})]
    for type, data in steps:
        events.append(Event(len(events) + 1, EventType(type), run_id, dict(data)))
    if terminal is not None:
        events.append(Event(len(events) + 1, terminal.event_type, run_id, terminal.as_dict()))
    return events


def text(*deltas: str) -> list[Step]:
    return [(EventType.TEXT_DELTA, {"text": delta}) for delta in deltas]


def reasoning(*deltas: str) -> list[Step]:
    return [(EventType.REASONING_DELTA, {"text": delta}) for delta in deltas]


def tool_call(
    call_id: str, name: str, deltas: Iterable[str] = (), arguments: Any = None
) -> list[Step]:
    """started, one event per argument delta, ready (with ``arguments``, or the joined
    deltas when it is None)."""
    deltas = list(deltas)
    steps: list[Step] = [(EventType.TOOL_CALL_STARTED, {"tool_call_id": call_id, "name": name})]
    steps += [(EventType.TOOL_CALL_DELTA, {"tool_call_id": call_id, "delta": d}) for d in deltas]
    ready_args = "".join(deltas) if arguments is None else arguments
    steps.append(
        (
            EventType.TOOL_CALL_READY,
            {"tool_call_id": call_id, "name": name, "arguments": ready_args},
        )
    )
    return steps


def completed(finish_reason: str = "stop", usage: tuple[int, int] | None = None) -> Completed:
    return Completed(finish_reason, Usage(*usage) if usage else None)  # type: ignore[arg-type]


def failed(
    code: ErrorCode = ErrorCode.SERVER_ERROR, message: str = "Something went wrong."
) -> Failed:
    return Failed(ErrorInfo(code, message, "corr-123"))


def cancelled(reason: CancelReason = CancelReason.REQUESTED) -> Cancelled:
    return Cancelled(reason)


def interaction(interaction_id: str = "int_1", prompt: str = "Proceed?") -> list[Step]:
    return [
        (
            EventType.INTERACTION_REQUIRED,
            {
                "interaction_id": interaction_id,
                "prompt": prompt,
                "response_url": f"/v1/runs/run_1/interactions/{interaction_id}",
            },
        )
    ]


# -- generated logs (hypothesis) --------------------------------------------------------

_short = st.text(alphabet='ab \n"é', max_size=4)
_KINDS = ["text", "reasoning", "tool", "open_tool", "result", "step", "usage", "ask", "data"]


@st.composite
def logs(
    draw: st.DrawFn, terminal: bool | None = None, strings: st.SearchStrategy[str] | None = None
) -> list[Event]:
    """Any run's log: every kind of event in any order (tool calls whole or left open,
    results for known and unknown calls), ending with any outcome, or with none when
    ``terminal`` is not True (None: either). With ``strings``, every text a producer
    chooses (deltas, tool names and arguments, data names and values, prompts, tool
    outputs, error messages) is drawn from it."""
    short = _short if strings is None else strings

    def name(default: str) -> str:
        return default if strings is None else draw(strings)

    steps: list[Step] = []
    calls: list[str] = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(_KINDS))
        if kind == "text":
            steps += text(*draw(st.lists(short, min_size=1, max_size=3)))
        elif kind == "reasoning":
            steps += reasoning(*draw(st.lists(short, min_size=1, max_size=3)))
        elif kind == "tool":
            deltas = draw(st.lists(short, max_size=3))
            args = None if deltas else draw(st.sampled_from([{"a": 1}, "[]", "not json"]))
            if strings is not None and not deltas:
                args = draw(st.one_of(strings, st.dictionaries(strings, strings, max_size=2)))
            steps += tool_call(f"call_{i}", name("fn"), deltas, args)
            calls.append(f"call_{i}")
        elif kind == "open_tool":  # started, one delta, never ready
            steps += tool_call(f"call_{i}", name("fn"), [name("{")])[:-1]
            calls.append(f"call_{i}")
        elif kind == "result":
            call_id = draw(st.sampled_from([*calls, "call_unknown"]))
            steps.append(
                (
                    EventType.TOOL_RESULT,
                    {
                        "tool_call_id": call_id,
                        "output": {"n": i} if strings is None else {"n": i, "v": name("")},
                    },
                )
            )
        elif kind == "step":
            steps.append(
                (draw(st.sampled_from([EventType.STEP_STARTED, EventType.STEP_FINISHED])), {})
            )
        elif kind == "usage":
            steps.append((EventType.USAGE, {"input_tokens": i, "output_tokens": 2 * i}))
        elif kind == "ask":
            steps += interaction(f"int_{i}", name("Proceed?"))
            if draw(st.booleans()):
                steps.append((EventType.INTERACTION_RESOLVED, {"interaction_id": f"int_{i}"}))
        else:
            steps.append(
                (
                    EventType.DATA,
                    {
                        "name": draw(st.sampled_from(["x", "weather"]))
                        if strings is None
                        else draw(strings),
                        "data": i if strings is None else {draw(strings): draw(strings)},
                    },
                )
            )
    outcomes = st.one_of(
        st.builds(
            completed,
            st.sampled_from(["stop", "length", "content_filter", "tool_calls"]),
            st.one_of(st.none(), st.tuples(st.integers(0, 9), st.integers(0, 9))),
        ),
        st.builds(
            failed,
            st.sampled_from(list(ErrorCode)),
            st.just("Something went wrong.") if strings is None else strings,
        ),
        st.builds(cancelled, st.sampled_from(list(CancelReason))),
    )
    if terminal is None:
        outcome = draw(st.one_of(outcomes, st.none()))
    else:
        outcome = draw(outcomes) if terminal else None
    return make_log("run_1", steps, outcome)
