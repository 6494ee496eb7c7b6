"""Sans-IO HTTP/1.1 response and SSE parsing for the load generator.

No sockets, no event loop: bytes go in through ``feed``, parsed pieces come out through
callbacks. It is the load generator's hot path, so it favours a few C-level ``bytes`` calls
per chunk over per-byte Python work:

- :class:`ResponseReader` reads a status line and headers, then a body framed by
  ``content-length``, ``transfer-encoding: chunked`` or the connection's close, and hands body
  bytes on as ranges of the read buffer (no copy);
- :class:`SseReader` splits a body into SSE frames at blank lines (``\\n\\n``; ``\\r\\n`` line
  ends are normalised when the stream uses them) and reports each frame's ``event`` name, its
  ``data``, and whether it was only a comment (a keepalive);
- :class:`BodyCounter` only counts, for throughput runs where parsing every frame would make
  the client, not the server, the thing measured.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "BodyCounter",
    "Buffer",
    "ProtocolError",
    "ResponseReader",
    "SseReader",
    "build_request",
    "extract_stamp",
]

Buffer = bytes | bytearray
# (buffer, start, stop): a run of body bytes, valid only during the call
BodySink = Callable[[Buffer, int, int], None]
# (event name, data, comment-only) for each complete frame
FrameSink = Callable[[bytes, bytes, bool], None]

_STAMP = re.compile(rb"(\d{9,11}\.\d{1,9})\|")


class ProtocolError(Exception):
    """The server's bytes are not the HTTP/1.1 the reader understands."""


def build_request(
    method: str, host: str, port: int, path: str, body: bytes = b"", *, sse: bool = False
) -> bytes:
    """One HTTP/1.1 request that asks the server to close the connection after answering."""
    head = [
        f"{method} {path} HTTP/1.1",
        f"host: {host}:{port}",
        "connection: close",
        "user-agent: scopestream-bench",
    ]
    if sse:
        head += ["accept: text/event-stream", "cache-control: no-cache"]
    if body or method == "POST":
        head += ["content-type: application/json", f"content-length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def extract_stamp(data: bytes) -> float | None:
    """The producer's emit time (``<epoch seconds>|``) carried in a frame's data, if any."""
    match = _STAMP.search(data)
    return float(match.group(1)) if match else None


class ResponseReader:
    """One HTTP/1.1 response, parsed in place.

    :meth:`parse` reads ``buf[:end]`` and returns how many bytes it consumed; the caller keeps
    the rest (at most a partial head or a partial chunk-size line) and puts it in front of the
    next read. Body bytes are handed on as ranges, ``on_body(buf, start, stop)``, so a sink that
    only counts never copies them. After the head, ``status`` and ``headers`` (lower-case names)
    are set; ``complete`` turns true at the end of the body (for a close-delimited body, when
    :meth:`feed_eof` is called).
    """

    __slots__ = (
        "_chunk_left",
        "_chunked",
        "_head_done",
        "_keep",
        "_length_left",
        "_need_crlf",
        "complete",
        "headers",
        "on_body",
        "status",
    )

    def __init__(self, on_body: BodySink) -> None:
        self.on_body = on_body
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.complete = False
        self._head_done = False
        self._chunked = False
        self._length_left: int | None = None
        self._chunk_left = 0
        self._need_crlf = False
        self._keep = b""

    def feed(self, data: bytes) -> None:
        """Parse ``data`` after whatever the last call left over (a convenience over
        :meth:`parse` for callers that read into fresh ``bytes``)."""
        buf = self._keep + data if self._keep else data
        used = self.parse(buf, len(buf))
        self._keep = buf[used:]

    def parse(self, buf: Buffer, end: int) -> int:
        if self.complete:
            return end
        pos = 0
        if not self._head_done:
            head_end = buf.find(b"\r\n\r\n", 0, end)
            if head_end < 0:
                if end > 65536:
                    raise ProtocolError("response head too large")
                return 0
            self._parse_head(bytes(buf[:head_end]))
            pos = head_end + 4
        if self._chunked:
            return self._parse_chunked(buf, pos, end)
        if self._length_left is not None:
            stop = min(end, pos + self._length_left)
            self._length_left -= stop - pos
            if stop > pos:
                self.on_body(buf, pos, stop)
            if self._length_left == 0:
                self.complete = True
            return end
        if end > pos:
            self.on_body(buf, pos, end)
        return end

    def feed_eof(self) -> None:
        if self._head_done and not self._chunked and self._length_left is None:
            self.complete = True

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()
        self._head_done = True
        if self.headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            self._chunked = True
        elif b"content-length" in self.headers:
            self._length_left = int(self.headers[b"content-length"])
            if self._length_left == 0:
                self.complete = True

    def _parse_chunked(self, buf: Buffer, pos: int, end: int) -> int:
        sink = self.on_body
        while True:
            if self._chunk_left:
                stop = min(end, pos + self._chunk_left)
                if stop > pos:
                    sink(buf, pos, stop)
                self._chunk_left -= stop - pos
                pos = stop
                if self._chunk_left:
                    return pos
                self._need_crlf = True
            if self._need_crlf:
                if end - pos < 2:
                    return pos
                pos += 2
                self._need_crlf = False
            eol = buf.find(b"\r\n", pos, end)
            if eol < 0:
                if end - pos > 1024:
                    raise ProtocolError("chunk-size line too long")
                return pos
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:
                # Trailers are not used by any server measured here; the body is over.
                self.complete = True
                return end
            self._chunk_left = size


def _frame_fields(frame: bytes) -> tuple[bytes, bytes, bool]:
    event = b"message"
    data: list[bytes] = []
    fields = 0
    for line in frame.split(b"\n"):
        if not line or line[0] == 0x3A:  # ":" starts a comment
            continue
        fields += 1
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
    return event, b"\n".join(data), fields == 0


class SseReader:
    """SSE frames out of body bytes. ``on_frame(event, data, comment_only)`` per frame."""

    __slots__ = ("_buf", "_crlf", "on_frame")

    def __init__(self, on_frame: FrameSink) -> None:
        self.on_frame = on_frame
        self._buf = b""
        self._crlf: bool | None = None

    def feed_range(self, buf: Buffer, start: int, stop: int) -> None:
        self.feed(bytes(buf[start:stop]))

    def feed(self, body: bytes) -> None:
        buf = self._buf + body if self._buf else body
        if self._crlf is None:
            # The first line end tells how the stream ends its lines.
            first = buf.find(b"\n")
            if first < 0:
                self._buf = buf
                return
            self._crlf = buf[first - 1 : first] == b"\r"
        if self._crlf:
            # Keep a trailing "\r" back: its "\n" may be in the next piece.
            hold = buf.endswith(b"\r")
            buf = buf[:-1].replace(b"\r\n", b"\n") + b"\r" if hold else buf.replace(b"\r\n", b"\n")
        if b"\n\n" not in buf:
            self._buf = buf
            return
        frames = buf.split(b"\n\n")
        self._buf = frames.pop()
        sink = self.on_frame
        for frame in frames:
            if frame:
                sink(*_frame_fields(frame))


class BodyCounter:
    """Counts body bytes in place and keeps the last ``tail`` bytes, so a caller can check how
    the stream ended; with ``frames=True`` it also counts frames (blank-line separators),
    which a generic SSE target needs because its event count is not known in advance."""

    __slots__ = ("_count_frames", "_sep", "_tail_size", "bytes", "frames", "tail")

    def __init__(self, *, frames: bool = False, tail: int = 1024) -> None:
        self.bytes = 0
        self.frames = 0
        self.tail = b""
        self._count_frames = frames
        self._sep: bytes | None = None
        self._tail_size = tail

    def feed_range(self, buf: Buffer, start: int, stop: int) -> None:
        self.bytes += stop - start
        if self._count_frames and self._sep is None:
            first = buf.find(b"\n", start, stop)
            if first >= 0:  # the first line end tells how the stream ends its lines
                before = buf[first - 1 : first] if first > start else self.tail[-1:]
                self._sep = b"\r\n\r\n" if before == b"\r" else b"\n\n"
        if self._count_frames and self._sep is not None:
            sep = self._sep
            # A separator may straddle two ranges: count over the seam as well.
            seam = self.tail[-(len(sep) - 1) :] + bytes(buf[start : start + len(sep) - 1])
            self.frames += seam.count(sep) + buf.count(sep, start, stop)
        size = self._tail_size
        if stop - start >= size:
            self.tail = bytes(buf[stop - size : stop])
        else:
            self.tail = (self.tail + bytes(buf[start:stop]))[-size:]
