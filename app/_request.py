"""The request class: how a JSON body is read.

Quart's own reading answers 500 for a body that is not UTF-8 (the decode happens outside
its error handling) or that nests deeper than the interpreter's recursion limit, treats a
body of another media type as "no JSON" (a misleading "invalid fields: body"), and decodes
a body declared in another charset as UTF-8 anyway. Here each of those is a JSON error:
415 for the media type or a charset other than UTF-8, 400 naming the body for the rest.
Every message is the project's own (never the JSON decoder's text).

Nesting is capped well below what the JSON decoder and pydantic's serializer can handle, so
a body that parses never fails later for its depth.
"""

from __future__ import annotations

import json
from typing import Any

from quart_trio.wrappers import TrioRequest
from werkzeug.http import parse_options_header

from ._text import lone_surrogate_field, may_hold_surrogate
from .errors import ApiError

__all__ = ["MAX_JSON_DEPTH", "JsonRequest", "json_body"]

#: Deepest nesting of arrays and objects a request body may have (the body itself is 1).
MAX_JSON_DEPTH = 128

_NOT_PARSED: Any = object()


class JsonRequest(TrioRequest):
    _parsed_json: Any = _NOT_PARSED

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The body as JSON; an :class:`ApiError` (415 or 400) when it is not JSON.

        ``silent`` answers None instead of raising; ``force`` skips the media type check.
        """
        if self._parsed_json is not _NOT_PARSED:
            return self._parsed_json
        try:
            content_type = None if force else self.headers.get("Content-Type", "")
            check_json_media_type(content_type)
            result = _loads(await self.get_data(cache=cache, as_text=False, parse_form_data=False))
        except ApiError:
            if silent:
                return None
            raise
        if cache:
            self._parsed_json = result
        return result


def json_body(content_type: str, raw: bytes) -> Any:
    """A request body sent with ``content_type`` as JSON; an :class:`ApiError` (415 or 400)
    when it is not. What :meth:`JsonRequest.get_json` answers, for a body read without
    Quart."""
    check_json_media_type(content_type)
    return _loads(raw)


def check_json_media_type(content_type: str | None) -> None:
    """A 415 unless ``content_type`` is JSON in UTF-8 (None: not checked). JSON is
    ``application/json`` or ``application/*+json``, as werkzeug's ``is_json`` has it."""
    if content_type is None:
        return
    mimetype, params = parse_options_header(content_type)
    mimetype = mimetype.lower()
    if not (
        mimetype == "application/json"
        or (mimetype.startswith("application/") and mimetype.endswith("+json"))
    ):
        raise ApiError(
            415,
            "unsupported_media_type",
            "The request body must be JSON, sent with Content-Type: application/json.",
        )
    _check_charset(params.get("charset"))


def _check_charset(charset: str | None) -> None:
    """A 415 for a body declared in another encoding than UTF-8 (JSON's only one, RFC 8259
    section 8.1): decoding it as UTF-8 would silently change its text."""
    if charset is None or charset.strip().lower() in ("utf-8", "utf8"):
        return
    message = "The request body must be UTF-8: send Content-Type: application/json (charset utf-8)."
    raise ApiError(
        415,
        "unsupported_media_type",
        message,
        fields=[{"field": "Content-Type", "message": "charset must be utf-8"}],
    )


def _invalid_body(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message, fields=[{"field": "body", "message": message}])


def _loads(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_body(
            f"The request body is not valid UTF-8 (byte {exc.start} cannot be decoded)."
        ) from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        # The position, in the project's words: the decoder's own message is Python's.
        raise _invalid_body(
            f"The request body is not valid JSON (line {exc.lineno}, column {exc.colno})."
        ) from None
    except ValueError:  # the only other refusal: an integer of over 4,300 digits
        raise _invalid_body("The request body has a number with too many digits.") from None
    # Fewer brackets than the cap cannot nest deeper than it: most bodies stop here.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise _too_deep()
    if may_hold_surrogate(raw):
        field = lone_surrogate_field(value)
        if field is not None:
            message = "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"
            raise ApiError(
                400,
                "invalid_request",
                f"{field} {message}.",
                fields=[{"field": field, "message": message}],
            )
    return value


def _too_deep() -> ApiError:
    return _invalid_body(
        f"The request body is nested too deeply (at most {MAX_JSON_DEPTH} levels of arrays "
        "and objects)."
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels (iteratively,
    so the check itself cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
