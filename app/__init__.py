"""scopestream's HTTP service: ``hypercorn -k trio app:serve``."""

from __future__ import annotations

from ._asgi import Receive as _Receive
from ._asgi import Scope as _Scope
from ._asgi import ScopestreamASGI as _ScopestreamASGI
from ._asgi import Send as _Send
from ._factory import create_app, create_asgi
from .settings import Settings

__all__ = ["Settings", "create_app", "create_asgi", "serve"]


class _LazyService:
    """The ASGI callable hypercorn loads. It builds the app from the environment on first
    use rather than at import, so importing ``app`` reads no settings and starts nothing."""

    def __init__(self) -> None:
        self._asgi: _ScopestreamASGI | None = None

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if self._asgi is None:
            self._asgi = create_asgi()
        await self._asgi(scope, receive, send)


serve = _LazyService()
