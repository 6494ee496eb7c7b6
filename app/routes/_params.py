"""Small request helpers shared by routes."""

from __future__ import annotations

from quart import request

from ..errors import ApiError

__all__ = ["bool_param", "cursor_param"]


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
