"""Small request helpers shared by routes."""

from __future__ import annotations

import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from quart import request

from ..errors import ApiError

__all__ = [
    "CURSOR_PATTERN",
    "MAX_CURSOR_DIGITS",
    "bool_param",
    "check_client_run_id",
    "check_cursor_within",
    "cursor_param",
    "is_server_run_id",
    "metadata_params",
]

_SERVER_RUN_ID = re.compile(r"run_[0-9a-f]{32}")
#: A cursor has at most this many digits: every sequence number fits (a run would need
#: 10**18 events to outgrow it), and a longer one is refused before it becomes an int.
MAX_CURSOR_DIGITS = 18
#: A cursor's form, as the OpenAPI document states it. [0-9], not \d: \d also matches
#: other scripts' digits, which int() would accept.
CURSOR_PATTERN = f"^[0-9]{{1,{MAX_CURSOR_DIGITS}}}$"
_CURSOR = re.compile(CURSOR_PATTERN)


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
    """A resume cursor: 1 to :data:`MAX_CURSOR_DIGITS` ASCII digits, nothing else (no sign,
    space, underscore or other script's digits, all of which ``int()`` would take), or a
    400 naming the parameter; None when absent (an empty value is not absent: a 400 too).
    The value itself is never echoed: it may be huge."""
    if value is None:
        return None
    if _CURSOR.fullmatch(value) is None:
        message = f"must be a non-negative integer of at most {MAX_CURSOR_DIGITS} digits (0-9)"
        raise ApiError(
            400,
            "invalid_request",
            f"{name} {message}.",
            fields=[{"field": name, "message": message}],
        )
    return int(value)


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
    """A boolean query parameter: ``true`` or ``false`` (absent: false), as JSON and the
    OpenAPI document spell them; anything else, empty included, is a 400 naming it."""
    value = request.args.get(name)
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise ApiError(
        400,
        "invalid_request",
        f"{name} must be true or false.",
        fields=[{"field": name, "message": "must be true or false"}],
    )


# JSON's number grammar (ASCII digits only), bounded: a longer numeral is left a string,
# which the producer's model then refuses as not a number.
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,29})")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,29})(?:\.[0-9]{1,30})?(?:[eE][+-]?[0-9]{1,3})?")


def metadata_params(model: type[BaseModel] | None, metadata: dict[str, str]) -> dict[str, Any]:
    """A producer's parameters from an OpenAI ``metadata`` object, whose values are strings
    by the OpenAI API's definition.

    A value stays a string unless the producer's input model takes a boolean or a number
    (and not a string) for that key; then ``true``/``false`` become booleans and numerals
    in JSON's grammar become numbers. Anything else is left as sent, for the model's strict
    validation to refuse with a 400 naming ``metadata.<key>``: ``"3"`` is a number here,
    ``"+3"``, ``" 3"``, ``"1_0"`` and ``"three"`` are not.
    """
    if model is None:
        return dict(metadata)
    params: dict[str, Any] = {}
    for key, value in metadata.items():
        field = model.model_fields.get(key)
        kinds = _scalar_kinds(field.annotation) if field is not None else {str}
        if str in kinds:
            params[key] = value
        elif bool in kinds and value in ("true", "false"):
            params[key] = value == "true"
        elif int in kinds and _INTEGER.fullmatch(value):
            params[key] = int(value)
        elif float in kinds and _NUMBER.fullmatch(value):
            params[key] = float(value)
        else:
            params[key] = value
    return params


def _scalar_kinds(annotation: Any) -> set[type]:
    """Which of str, bool, int and float a field's type accepts (through unions, Optional
    and Annotated; an enum or a Literal of strings counts as str)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar_kinds(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return set().union(*(_scalar_kinds(arg) for arg in get_args(annotation)))
    if origin is Literal:
        return {type(arg) for arg in get_args(annotation)} & {str, bool, int, float}
    if isinstance(annotation, type):
        for kind in (str, bool, int, float):  # bool before int: bool is an int subclass
            if issubclass(annotation, kind):
                return {kind}
    return set()
