"""Small request helpers shared by routes."""

from __future__ import annotations

import re

from quart import request

from ..errors import ApiError

__all__ = [
    "bool_param",
    "check_client_run_id",
    "check_cursor_within",
    "cursor_param",
    "is_server_run_id",
]

_SERVER_RUN_ID = re.compile(r"run_[0-9a-f]{32}")


def is_server_run_id(value: str) -> bool:
    return _SERVER_RUN_ID.fullmatch(value) is not None


def check_client_run_id(field: str, value: str | None) -> None:
    """A 400 naming ``field`` if a client-chosen run id (``client_run_id``, an AI SDK chat
    id) has the form of a server run id: it would find, and could cancel, that run."""
    if value is not None and is_server_run_id(value):
        raise ApiError(
            400,
            "invalid_request",
            f"{field} must not look like a server run id (run_ + 32 hex digits).",
            fields=[{"field": field, "message": "reserved form"}],
        )


def cursor_param(name: str, value: str | None) -> int | None:
    """A resume cursor (a non-negative integer), or a 400 naming the parameter."""
    if value is None or value == "":
        return None
    try:
        cursor = int(value)
    except ValueError:
        cursor = -1
    if cursor < 0:
        raise ApiError(
            400,
            "invalid_request",
            f"{name} must be a non-negative integer.",
            fields=[{"field": name, "message": "must be a non-negative integer"}],
        )
    return cursor


def check_cursor_within(name: str, cursor: int | None, last: int, *, last_field: str) -> None:
    """A 400 naming ``name`` if a resume cursor lies past the last event written so far
    (``last``, also given as ``last_field``): nothing was ever sent there, so the client
    has the wrong run or a wrong cursor; streaming would wait for events it never lost."""
    if cursor is None or cursor <= last:
        return
    raise ApiError(
        400,
        "invalid_request",
        f"{name}={cursor} is past the last event so far ({last_field} {last}).",
        fields=[{"field": name, "message": f"past the last event ({last_field} {last})"}],
        **{last_field: last},
    )


def bool_param(name: str) -> bool:
    value = request.args.get(name, "false").lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise ApiError(
        400,
        "invalid_request",
        f"{name} must be true or false.",
        fields=[{"field": name, "message": "must be true or false"}],
    )
