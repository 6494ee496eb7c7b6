"""One JSON object per log line: the run id, the lifecycle step and, for failures, the
correlation id the client saw."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["configure_logging"]

_FIELDS = (
    "event",
    "run_id",
    "producer",
    "interaction_id",
    "correlation_id",
    "code",
    "reason",
    "owner",
    # the upstream producer's failures
    "model",
    "status",
    "body",
    "waiting_for",
    "error",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(time.time(), 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Route the ``scopestream`` loggers to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("scopestream")
    logger.setLevel(level.upper())
    if not any(getattr(h, "_scopestream", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._scopestream = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
