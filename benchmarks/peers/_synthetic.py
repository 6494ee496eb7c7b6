"""The synthetic producer's semantics, shared by both peers so they cannot drift apart.

Pure functions: the peers own the I/O and the clock calls that matter for latency.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["SyntheticInput", "delta_text", "frame", "native_json"]


@dataclass(frozen=True, slots=True)
class SyntheticInput:
    """The ``synthetic`` producer's input, as scopestream defines it (the subset benchmarks use).

    The producer emits event i, then sleeps ``interval_ms`` before event i + 1; there is no sleep
    after the last event.
    """

    events: int = 10
    event_bytes: int = 16
    interval_ms: float = 0.0
    stamp: bool = False

    @classmethod
    def from_request(cls, body: Any) -> SyntheticInput:
        raw = (body.get("input") or {}) if isinstance(body, dict) else {}
        return cls(
            events=int(raw.get("events", 10)),
            event_bytes=int(raw.get("event_bytes", 16)),
            interval_ms=float(raw.get("interval_ms", 0.0)),
            stamp=bool(raw.get("stamp", False)),
        )

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000.0


def delta_text(params: SyntheticInput) -> str:
    """One text delta of ``event_bytes`` characters; with ``stamp``, it starts with the emit time
    (``time.time()`` as ``%.6f``) and a ``|``, so a client on the same machine can compute the
    producer-to-client latency."""
    if not params.stamp:
        return "x" * params.event_bytes
    head = f"{time.time():.6f}|"
    return head + "x" * max(0, params.event_bytes - len(head))


def native_json(seq: int, type_: str, run_id: str, data: dict[str, Any]) -> str:
    """An event as scopestream's native JSON (compact separators, same key order)."""
    return json.dumps(
        {"seq": seq, "type": type_, "run_id": run_id, "data": data}, separators=(",", ":")
    )


def frame(seq: int, type_: str, run_id: str, data: dict[str, Any]) -> bytes:
    """A complete native SSE frame, byte-identical to scopestream's."""
    body = native_json(seq, type_, run_id, data)
    return f"id: {seq}\nevent: {type_}\ndata: {body}\n\n".encode()
