"""Optional API keys. A run belongs to the key that created it; any other key gets 404.

With keys configured, every request is authenticated before anything else happens to it
(:meth:`Auth.authenticate`, an app-wide ``before_request`` hook): before its body is read
or validated, before a producer or model name is looked up, and before routing errors
(404, 405) are answered. So a caller without a key learns nothing about the service but
that it needs one. Routes then read the caller's owner id with :meth:`Auth.owner`.

Which routes need no key is declared on the view function: :func:`public_route` never
needs one (``/healthz``, for load balancers); :func:`ops_route` (metrics, the OpenAPI
document, the docs page) needs one unless the ``public_ops`` setting opens them.

The owner recorded on a run is a digest of the key, so keys never sit in memory next to
runs nor appear in logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from quart import current_app, g, request

from .errors import ApiError

__all__ = ["Auth", "ops_route", "public_route"]

Access = Literal["public", "ops", "key"]
_ACCESS_ATTRIBUTE = "_scopestream_access"
_View = TypeVar("_View", bound=Callable[..., Any])
#: The blueprint whose errors take the OpenAI shape ({message, type, param, code}).
_OPENAI_BLUEPRINT = "openai"


def public_route(view: _View) -> _View:
    """Mark a view that never needs an API key."""
    setattr(view, _ACCESS_ATTRIBUTE, "public")
    return view


def ops_route(view: _View) -> _View:
    """Mark an operations view: it needs a key unless the ``public_ops`` setting is on."""
    setattr(view, _ACCESS_ATTRIBUTE, "ops")
    return view


class Auth:
    def __init__(self, api_keys: list[str], *, public_ops: bool = False) -> None:
        self._owners = {key: _digest(key) for key in api_keys}
        self._public_ops = public_ops

    @property
    def enabled(self) -> bool:
        return bool(self._owners)

    async def authenticate(self) -> None:
        """The ``before_request`` hook: a 401 for a request that needs a key and has no
        valid one. A request that matched no route needs a key too (its 404 or 405 would
        tell an anonymous caller which routes exist)."""
        if not self._owners or self._access() == "public":
            return
        if self._access() == "ops" and self._public_ops:
            return
        self.owner()

    def owner(self) -> str | None:
        """The caller's owner id (None when keys are off). Raises 401 without a valid key."""
        if not self._owners:
            return None
        known: str | None = g.get("scopestream_owner")
        if known is not None:
            return known
        owner = self.key_owner(request.headers.get("Authorization", ""))
        if owner is None:
            raise _unauthorized()
        g.scopestream_owner = owner
        return owner

    def key_owner(self, authorization: str) -> str | None:
        """The owner id of the key an ``Authorization`` header carries, None if it carries
        no valid one (keys on)."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token:
            for key, owner in self._owners.items():
                if hmac.compare_digest(key.encode(), token.strip().encode()):
                    return owner
        return None

    @staticmethod
    def _access() -> Access:
        rule = request.url_rule
        view = current_app.view_functions.get(rule.endpoint) if rule is not None else None
        access: Access = getattr(view, _ACCESS_ATTRIBUTE, "key")
        return access


def _unauthorized() -> ApiError:
    message = "A valid API key is required (Authorization: Bearer <key>)."
    if request.blueprint == _OPENAI_BLUEPRINT:
        # What the OpenAI API answers, so its SDKs raise their AuthenticationError.
        return ApiError(401, "invalid_api_key", message, type="invalid_request_error", param=None)
    return ApiError(401, "unauthorized", message)


def _digest(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:32]
