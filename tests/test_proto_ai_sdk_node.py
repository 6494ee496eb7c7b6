"""The UI message stream projection read by the Vercel ``ai`` package under Node.

``tests/node/validate.mjs`` runs every installed release of ``ai`` (strict 5.0.0, 5.0.216,
6.0.0 and 7.0.0; loose latest 6.x and 7.x, see ``tests/node/package.json``): each chunk
against the release's own schema through ``DefaultChatTransport``, then the whole stream
through ``readUIMessageStream``. Needs ``npm ci`` in tests/node (``make node-deps``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import CancelReason, ErrorCode, Event, EventType
from engine.protocols import UIMessageStreamProjection

from ._eventlog import (
    cancelled,
    completed,
    failed,
    interaction,
    make_log,
    reasoning,
    text,
    tool_call,
)

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")

pytestmark = pytest.mark.node


@pytest.fixture(autouse=True)
def _node_installed() -> None:
    # A missing Node or missing packages fail loudly: `make test` installs both, and a
    # silently skipped client test would prove nothing.
    assert NODE is not None, "node is not installed"
    assert (NODE_DIR / "node_modules").is_dir(), "run `make node-deps` (npm ci in tests/node)"


EXPECTED_RELEASES = {"ai", "ai5", "ai5-last-strict", "ai6", "ai6-strict", "ai7-strict"}


def validate(raw: bytes, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "stream.sse"
    path.write_bytes(raw)
    return run_validator(str(path))


def run_validator(source: str, *options: str) -> dict[str, Any]:
    """Run tests/node/validate.mjs on a file or URL; its JSON summary."""
    assert NODE is not None
    result = subprocess.run(
        [NODE, str(NODE_DIR / "validate.mjs"), source, *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    assert set(summary["versions"]) == EXPECTED_RELEASES
    return summary


def stream(log: list[Event], *, keepalives: bool = True) -> bytes:
    """The bytes a live connection would send: one event at a time, keepalive comments
    between them (the SDK's parser must skip them)."""
    projection = UIMessageStreamProjection(message_id="msg_node")
    ka = projection.keepalive() if keepalives else b""
    return b"".join(projection.events([event]) + ka for event in log)


def assert_every_release(summary: dict[str, Any], check: Callable[[dict[str, Any]], None]) -> None:
    assert summary["ok"], json.dumps(summary, indent=1)[:4000]
    assert summary["done"]
    for alias, result in summary["versions"].items():
        assert result["valid"], (alias, result["invalid"])
        assert result["readerError"] is None, (alias, result["readerError"])
        assert result["message"]["id"] == "msg_node", alias
        check(result)


def test_completed_text(tmp_path: Path) -> None:
    summary = validate(
        stream(make_log("run_1", text("Hello", ", ", "world"), completed())), tmp_path
    )

    def check(r: dict[str, Any]) -> None:
        assert r["text"] == "Hello, world"
        assert r["parts"] == ["step-start", "text"]
        assert r["message"]["parts"][1]["state"] == "done"
        assert (r["finished"], r["aborted"], r["errors"]) == (True, False, [])

    assert_every_release(summary, check)


@pytest.mark.parametrize("code", [ErrorCode.SERVER_ERROR, ErrorCode.RATE_LIMIT_EXCEEDED])
def test_failed(code: ErrorCode, tmp_path: Path) -> None:
    log = make_log("run_1", text("partial"), failed(code, "The model is unavailable."))
    summary = validate(stream(log), tmp_path)

    def check(r: dict[str, Any]) -> None:
        assert r["text"] == "partial"
        assert r["errors"] == ["The model is unavailable."]
        assert (r["finished"], r["aborted"]) == (False, False)

    assert_every_release(summary, check)


@pytest.mark.parametrize("reason", list(CancelReason))
def test_cancelled(reason: CancelReason, tmp_path: Path) -> None:
    summary = validate(stream(make_log("run_1", text("partial"), cancelled(reason))), tmp_path)

    def check(r: dict[str, Any]) -> None:
        assert r["text"] == "partial"
        assert (r["finished"], r["aborted"], r["errors"]) == (False, True, [])
        assert r["chunkTypes"][-1] == "abort"

    assert_every_release(summary, check)


def test_tool_call_with_result(tmp_path: Path) -> None:
    log = make_log(
        "run_1",
        [
            *text("Checking."),
            *tool_call("call_1", "weather", ['{"city":', '"Paris"}']),
            (EventType.TOOL_RESULT, {"tool_call_id": "call_1", "output": {"temp": 21}}),
            *tool_call("call_2", "clock", (), {"tz": "CET"}),
        ],
        completed("tool_calls"),
    )
    summary = validate(stream(log), tmp_path)

    def check(r: dict[str, Any]) -> None:
        tools = [p for p in r["message"]["parts"] if p["type"].startswith("tool-")]
        assert [(p["type"], p["toolCallId"], p["state"]) for p in tools] == [
            ("tool-weather", "call_1", "output-available"),
            ("tool-clock", "call_2", "input-available"),
        ]
        assert tools[0]["input"] == {"city": "Paris"} and tools[0]["output"] == {"temp": 21}
        assert tools[1]["input"] == {"tz": "CET"}

    assert_every_release(summary, check)


def test_reasoning(tmp_path: Path) -> None:
    log = make_log("run_1", [*reasoning("Think", "ing"), *text("Answer")], completed())
    summary = validate(stream(log), tmp_path)

    def check(r: dict[str, Any]) -> None:
        assert (r["reasoning"], r["text"]) == ("Thinking", "Answer")
        assert r["parts"] == ["step-start", "reasoning", "text"]

    assert_every_release(summary, check)


def test_interaction_and_data(tmp_path: Path) -> None:
    log = make_log(
        "run_1",
        [
            *text("Need input."),
            (EventType.DATA, {"name": "progress", "data": {"pct": 50}}),
            *interaction("int_1", "Proceed?"),
            (EventType.INTERACTION_RESOLVED, {"interaction_id": "int_1"}),
            *text("Thanks."),
        ],
        completed(),
    )
    summary = validate(stream(log), tmp_path)

    def check(r: dict[str, Any]) -> None:
        parts = r["message"]["parts"]
        assert [p["type"] for p in parts] == [
            "step-start",
            "text",
            "data-progress",
            "data-interaction",
            "text",
        ]  # the resolved update replaced the interaction part (same id)
        assert parts[3]["id"] == "int_1"
        assert parts[3]["data"] == {
            "interaction_id": "int_1",
            "prompt": "Proceed?",
            "response_url": "/v1/runs/run_1/interactions/int_1",
            "resolved": True,
        }

    assert_every_release(summary, check)


def test_pending_interaction_stream_so_far_is_valid(tmp_path: Path) -> None:
    # A run paused for input: the stream so far (no terminal yet) is already acceptable.
    raw = stream(make_log("run_1", [*text("Q"), *interaction("int_2", "Yes?")], None))
    summary = validate(raw + b'data: {"type":"finish-step"}\n\ndata: [DONE]\n\n', tmp_path)

    def check(r: dict[str, Any]) -> None:
        assert r["parts"] == ["step-start", "text", "data-interaction"]

    assert_every_release(summary, check)


def test_steps_and_transport_frames(tmp_path: Path) -> None:
    projection = UIMessageStreamProjection(message_id="msg_node")
    log = make_log(
        "run_1",
        [
            (EventType.STEP_STARTED, {}),
            *text("one"),
            (EventType.STEP_FINISHED, {}),
            (EventType.STEP_STARTED, {}),
            *text("two"),
            (EventType.STEP_FINISHED, {}),
        ],
        completed(),
    )
    # a connection whose first events were trimmed away, then a slow-consumer ending
    raw = projection.gap(1, 3) + projection.events(log[3:7]) + projection.slow_consumer(7)
    summary = validate(raw, tmp_path)

    def check(r: dict[str, Any]) -> None:
        assert r["text"] == "two"
        assert len(r["errors"]) == 2 and "1..3" in r["errors"][0]
        assert r["parts"] == ["step-start", "step-start", "text"]

    assert_every_release(summary, check)


def test_validator_rejects_what_strict_releases_reject(tmp_path: Path) -> None:
    # The harness must be able to fail: finish.finishReason is unknown to 5.0.0.
    raw = (
        b'data: {"type":"start","messageId":"msg_node"}\n\n'
        b'data: {"type":"finish","finishReason":"stop"}\n\n'
        b"data: [DONE]\n\n"
    )
    summary = validate(raw, tmp_path)
    assert not summary["ok"]
    assert not summary["versions"]["ai5"]["valid"]
    assert summary["versions"]["ai6"]["valid"]  # loose releases accept it
