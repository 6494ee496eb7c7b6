"""A raw HTTP/2 client over one socket (the ``h2`` state machine, no pooling), for exact
control over streams: many requests on one connection, and ``RST_STREAM`` at any moment."""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events

from ._sse import Frame, parse_sse


@dataclass
class H2Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False  # END_STREAM received: a complete message
    reset: bool = False  # the server reset the stream

    def frames(self) -> list[Frame]:
        complete = self.body[: self.body.rfind(b"\n\n") + 2] if b"\n\n" in self.body else b""
        return parse_sse(complete)

    def json(self) -> Any:
        return json.loads(self.body)


class H2Client:
    """One HTTP/2 connection to ``127.0.0.1:port``: cleartext with prior knowledge (h2c), or
    TLS with ALPN ``h2`` when given a client ``ssl.SSLContext``."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
            sock = tls.wrap_socket(sock, server_hostname="localhost")
            if sock.selected_alpn_protocol() != "h2":
                raise ConnectionError(f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.responses: dict[int, H2Response] = {}
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> int:
        """Send one request on a new stream; return its stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        payload = json.dumps(body).encode() if body is not None else b""
        head = [
            (":method", method),
            (":path", path),
            (":scheme", "https" if isinstance(self.sock, ssl.SSLSocket) else "http"),
            (":authority", "localhost"),
            ("accept", "text/event-stream"),
            *(headers or {}).items(),
        ]
        if body is not None:
            head += [("content-type", "application/json"), ("content-length", str(len(payload)))]
        self.conn.send_headers(stream_id, head, end_stream=body is None)
        if body is not None:
            self.conn.send_data(stream_id, payload, end_stream=True)
        self.responses[stream_id] = H2Response()
        self._flush()
        return stream_id

    def reset(self, stream_id: int) -> None:
        """Abandon one stream (``RST_STREAM``, CANCEL), as a browser does when a tab's fetch
        is aborted; the connection and its other streams go on."""
        self.conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
        self._flush()

    def pump(self, timeout: float) -> bool:
        """Read what arrives within ``timeout`` seconds and apply it; False on EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        if not data:
            return False
        for event in self.conn.receive_data(data):
            self._apply(event)
        self._flush()
        return True

    def _apply(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        response = self.responses.get(stream_id) if stream_id else None
        if response is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            headers = {k.decode(): v.decode() for k, v in event.headers}
            response.status = int(headers.pop(":status"))
            response.headers = headers
        elif isinstance(event, h2.events.DataReceived):
            response.body += event.data
            # Give the window back at once: a stream must never stall on flow control here.
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            response.ended = True
        elif isinstance(event, h2.events.StreamReset):
            response.reset = True

    def wait(self, predicate: Any, timeout: float = 20) -> None:
        """Pump until ``predicate()`` holds; AssertionError if it does not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting on the HTTP/2 connection")
            if not self.pump(min(remaining, 0.5)):
                raise AssertionError("the server closed the HTTP/2 connection")

    def fetch(self, method: str, path: str, body: Any = None, timeout: float = 20) -> H2Response:
        """One whole request and response on a new stream."""
        stream_id = self.request(method, path, body)
        response = self.responses[stream_id]
        self.wait(lambda: response.ended or response.reset, timeout)
        return response

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self._flush()
        except OSError:
            pass
        self.sock.close()
