"""scopestream's HTTP service: ``hypercorn -k trio app:serve``."""

from __future__ import annotations

import logging

from engine.backends import StoreUnavailable

from ._asgi import TRIO_ONLY as _TRIO_ONLY
from ._asgi import Receive as _Receive
from ._asgi import Scope as _Scope
from ._asgi import ScopestreamASGI as _ScopestreamASGI
from ._asgi import Send as _Send
from ._asgi import on_trio as _on_trio
from ._asgi import refuse_to_start as _refuse_to_start
from ._factory import create_app, create_asgi
from .service import check_store as _check_store
from .settings import Settings, SettingsError
from .settings import load_settings as _load_settings

__all__ = ["Settings", "SettingsError", "create_app", "create_asgi", "serve"]

_logger = logging.getLogger("scopestream.app")


class _LazyService:
    """The ASGI callable hypercorn loads. It builds the app from the environment on its
    first ASGI call (the lifespan startup, under hypercorn) rather than at import, so
    importing ``app`` reads no settings and starts nothing.

    An app that cannot be built (a bad setting, or not running on Trio) fails the lifespan
    startup with a message saying why, so hypercorn stops instead of serving 500s.
    """

    def __init__(self) -> None:
        self._asgi: _ScopestreamASGI | None = None
        self._failure: str | None = None

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if self._asgi is None:
            if not _on_trio():
                await _refuse_to_start(scope, receive, send, _TRIO_ONLY)
                return
            if self._failure is None:
                await self._build()
            if self._asgi is None:
                assert self._failure is not None
                await _refuse_to_start(scope, receive, send, self._failure)
                return
        await self._asgi(scope, receive, send)

    async def _build(self) -> None:
        try:
            settings = _load_settings()
            # A store that does not answer now stops the server (a message naming the
            # setting), rather than failing every request later.
            await _check_store(settings)
            self._asgi = create_asgi(settings)
        except (SettingsError, StoreUnavailable) as exc:
            self._failure = f"scopestream cannot start: {exc}"
        except Exception as exc:  # an operator producer's module raising on import, say
            _logger.exception("building the app failed", extra={"event": "service.error"})
            self._failure = f"scopestream cannot start: {type(exc).__name__}: {exc}"


serve = _LazyService()
