"""Request text must be Unicode text: where a request body holds a lone surrogate.

JSON may spell a UTF-16 surrogate on its own (``"\\ud800"``); Python decodes it into a
``str`` that no UTF-8 encoder accepts. Such a value is not text, so the request is refused
with a 400 naming the field, before it reaches a producer. (What a producer emits itself is
made safe where JSON is written: ``engine.protocols._sse.dumps``.)
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["lone_surrogate_field", "may_hold_surrogate"]

_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON escape of a surrogate. Raw UTF-8 cannot encode one, so a body without such an
#: escape cannot hold one, and most bodies need no walk at all.
_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogate(raw: bytes) -> bool:
    return _ESCAPE.search(raw) is not None


def lone_surrogate_field(value: Any) -> str | None:
    """The dotted path (``input.text``, ``messages.0.content``; ``body`` for the body
    itself) of a string or key holding a lone surrogate, or None. Iterative, so a deep value
    cannot exhaust the stack."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return ".".join(path) or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    # The key itself is not text: name where it is (and show no bad text).
                    return ".".join(path) or "body"
                stack.append(((*path, key), child))
        elif isinstance(item, list):
            stack.extend(((*path, str(i)), child) for i, child in enumerate(item))
    return None
