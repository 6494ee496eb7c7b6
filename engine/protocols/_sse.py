"""Server-Sent Events framing (WHATWG HTML, "server-sent events"). Pure functions, no I/O."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["SSE_HEADERS", "dumps", "sse_comment", "sse_data", "sse_frame"]

# cache-control: no-cache stops intermediaries from storing the stream; x-accel-buffering: no
# stops nginx from buffering it. No "connection: keep-alive": it is forbidden over HTTP/2.
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

#: A Python ``str`` may hold surrogate code points (from ``"\\ud800"`` in JSON, from
#: ``surrogateescape`` decoding, from a producer's own slicing). In a ``str`` each is a code
#: point of its own (a JSON escape pair decodes to one astral character), and no UTF-8
#: encoder takes it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any) -> str:
    """Compact JSON that always encodes to valid UTF-8. A JSON text never contains a raw
    newline, so it fits one ``data:`` line.

    This is the one place where text leaving the engine is made safe: every projection and
    every JSON body is built on it, and the frames around it are ASCII. A lone surrogate is
    replaced by U+FFFD (the replacement character), which every strict JSON parser accepts;
    a ``\\udXXX`` escape would be valid JSON, but strict parsers refuse it and it would
    pass an unusable value on. ASCII text (an O(1) check) costs nothing more.
    """
    text = _encoder.encode(value)
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def sse_frame(data: str, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """One SSE frame. ``data`` may contain newlines: each line becomes its own ``data:`` field."""
    parts: list[str] = []
    if id is not None:
        parts.append(f"id: {id}\n")
    if event is not None:
        parts.append(f"event: {event}\n")
    if "\n" in data or "\r" in data:
        parts.extend(f"data: {line}\n" for line in data.splitlines())
    else:
        parts.append(f"data: {data}\n")
    parts.append("\n")
    return "".join(parts).encode()


def sse_data(payload: Any) -> bytes:
    """``data: {json}`` and a blank line: the framing of the OpenAI and AI SDK streams."""
    return b"data: " + dumps(payload).encode() + b"\n\n"


def sse_comment(text: str = "") -> bytes:
    """A comment line: ignored by every SSE client, which makes it the right keepalive."""
    return f": {text}\n\n".encode()
