"""A raw-socket HTTP/1.1 client for SSE: exact bytes, and disconnects at any moment."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from ._sse import Frame, parse_sse


class RawStream:
    """One request on its own socket; reads the response head, then SSE frames."""

    def __init__(
        self,
        port: int,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [
            f"{method} {path} HTTP/1.1",
            "Host: 127.0.0.1",
            "Accept: text/event-stream",
            "Connection: close",
        ]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        self._buffer = b""
        self.status, self.headers = self._read_head()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.raw = b""  # the de-chunked body read so far
        self._frames_returned = 0
        self.eof = False
        #: The body ended as an HTTP message ends (the last chunk, or Content-Length bytes),
        #: not by the socket closing.
        self.complete = False

    def _recv(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    def _read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._buffer:
            if not self._recv():
                raise ConnectionError("closed before the response head")
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def _pump(self) -> bool:
        """Move complete body bytes from the socket buffer into ``raw``; read from the socket
        only when there were none (so bytes already received never wait for more)."""
        before = len(self.raw)
        if not self._chunked:
            self.raw += self._buffer
            self._buffer = b""
            length = self.headers.get("content-length")
            if length is not None and len(self.raw) >= int(length):
                self.eof = self.complete = True
                return False
            return len(self.raw) > before or self._recv()
        while b"\r\n" in self._buffer:
            size_line, rest = self._buffer.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                break
            self.raw += rest[:size]
            self._buffer = rest[size + 2 :]
            if size == 0:
                self.eof = self.complete = True
                return False
        return len(self.raw) > before or self._recv()

    def frames(self) -> list[Frame]:
        complete = self.raw[: self.raw.rfind(b"\n\n") + 2] if b"\n\n" in self.raw else b""
        return parse_sse(complete)

    def next_frames(self, timeout: float = 20) -> list[Frame]:
        """Block until at least one new frame arrives (or EOF); return the new frames."""
        deadline = time.monotonic() + timeout
        while True:
            frames = self.frames()
            if len(frames) > self._frames_returned:
                new = frames[self._frames_returned :]
                self._frames_returned = len(frames)
                return new
            if self.eof or time.monotonic() > deadline:
                return []
            self._pump()

    def read_until(self, predicate: Any, timeout: float = 20) -> list[Frame]:
        """Read frames until one satisfies ``predicate`` (returned as the last) or EOF."""
        seen: list[Frame] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.next_frames(deadline - time.monotonic())
            if not new:
                return seen
            for frame in new:
                seen.append(frame)
                if predicate(frame):
                    return seen
        return seen

    def read_to_end(self, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._pump()
        return self.raw

    def body_json(self) -> Any:
        return json.loads(self.read_to_end())

    def closed_by_server(self, timeout: float = 5) -> bool:
        return closed_by_server(self.sock, timeout)

    def close(self) -> None:
        self.sock.close()

    def abort(self) -> None:
        """Drop the connection without a clean shutdown (RST), like a killed client."""
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        self.sock.close()


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True if the server closes ``sock`` within ``timeout`` seconds (sending nothing more
    before it); False if it is still open then."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


TERMINALS = {"run.completed", "run.failed", "run.cancelled"}


def is_terminal(frame: Frame) -> bool:
    return frame.event in TERMINALS


class RawConnection:
    """Several requests, one after the other, on one socket: exact bytes out, each response
    read whole (Content-Length or chunked), and a check that the server closed the socket."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self._buffer += data

    def _take_line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), de-chunked body."""
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self._take_line(), 16):
                body += self._take(size)
                assert self._take_line() == b"", "a chunk's data is not followed by CRLF"
            assert self._take_line() == b"", "no CRLF after the last chunk"
        else:
            body = self._take(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self, timeout: float = 5) -> bool:
        return closed_by_server(self.sock, timeout)

    def close(self) -> None:
        self.sock.close()


def http_request(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    version: str = "1.1",
) -> bytes:
    """The bytes of one request; ``Content-Length`` is added for a body unless given."""
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    given = {name.lower() for name in (headers or {})}
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body and "content-length" not in given:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
