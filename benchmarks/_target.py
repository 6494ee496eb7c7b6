"""What the load generator points at: a server speaking scopestream's runs contract, or any
URL that serves SSE."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ._wire import build_request

__all__ = ["Target"]


@dataclass(frozen=True, slots=True)
class Target:
    """``kind="runs"``: ``POST path`` with a ``synthetic`` run, plus the cancel and status routes
    beside it. ``kind="generic"``: ``method path`` (with ``body``) returns an SSE stream and
    nothing else is assumed; only the figures that need no control over the producer apply."""

    name: str
    host: str
    port: int
    path: str = "/v1/runs"
    kind: Literal["runs", "generic"] = "runs"
    method: str = "POST"
    body: str = ""

    @classmethod
    def from_url(cls, url: str, *, name: str = "target", body: str = "") -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs are supported, not {url!r}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kind: Literal["runs", "generic"] = "runs" if parts.path.endswith("/v1/runs") else "generic"
        method = "POST" if kind == "runs" or body else "GET"
        return cls(name, parts.hostname, parts.port or 80, path, kind, method, body)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def stream_request(self, **synthetic: Any) -> bytes:
        """The request that opens one stream; ``synthetic`` is the producer's input."""
        if self.kind == "generic":
            return build_request(
                self.method, self.host, self.port, self.path, self.body.encode(), sse=True
            )
        body = {"producer": "synthetic", "input": synthetic, "stream": True}
        return build_request(
            "POST", self.host, self.port, self.path, json.dumps(body).encode(), sse=True
        )

    def run_path(self, run_id: str, action: str = "") -> str:
        return f"{self.path.rstrip('/')}/{run_id}{'/' + action if action else ''}"
