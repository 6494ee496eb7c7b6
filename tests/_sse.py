"""Parse SSE bytes back into frames, for assertions. Deliberately independent of the
engine's own framing code, so a framing bug cannot cancel itself out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data_lines: list[str] = field(default_factory=list)
    comment: bool = False

    @property
    def data(self) -> str:
        return "\n".join(self.data_lines)

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(raw: bytes) -> list[Frame]:
    frames: list[Frame] = []
    current = Frame()
    touched = False
    for line in raw.decode().split("\n"):
        if line == "":
            if touched:
                frames.append(current)
            current, touched = Frame(), False
            continue
        touched = True
        if line.startswith(":"):
            current.comment = True
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            current.data_lines.append(value)
        elif name == "event":
            current.event = value
        elif name == "id":
            current.id = value
    if touched:
        frames.append(current)
    return frames


def native_events(raw: bytes) -> list[dict[str, Any]]:
    """The native events (frames with an id) in a native SSE stream, as dicts."""
    return [frame.json() for frame in parse_sse(raw) if frame.id is not None]
