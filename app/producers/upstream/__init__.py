"""The ``upstream`` producer: any OpenAI-compatible Chat Completions endpoint, streamed."""

from ._chunks import ChunkReader, EventSink
from ._errors import http_error, retry_after_seconds, stream_error
from ._producer import Upstream, UpstreamConfig

__all__ = [
    "ChunkReader",
    "EventSink",
    "Upstream",
    "UpstreamConfig",
    "http_error",
    "retry_after_seconds",
    "stream_error",
]
