"""Optional API keys. A run belongs to the key that created it; any other key gets 404.

The owner recorded on a run is a digest of the key, so keys never sit in memory next to
runs nor appear in logs.
"""

from __future__ import annotations

import hashlib
import hmac

from quart import request

from .errors import ApiError

__all__ = ["Auth"]


class Auth:
    def __init__(self, api_keys: list[str]) -> None:
        self._owners = {key: _digest(key) for key in api_keys}

    @property
    def enabled(self) -> bool:
        return bool(self._owners)

    def owner(self) -> str | None:
        """The caller's owner id (None when keys are off). Raises 401 without a valid key."""
        if not self._owners:
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            for key, owner in self._owners.items():
                if hmac.compare_digest(key.encode(), token.strip().encode()):
                    return owner
        raise ApiError(401, "unauthorized", "A valid API key is required (Authorization: Bearer).")


def _digest(key: str) -> str:
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:32]
