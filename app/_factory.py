"""Building the app: settings in, a QuartTrio app (and its ASGI wrapper) out."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable

from quart import Response
from quart.globals import request_ctx
from quart.typing import ResponseReturnValue
from quart_schema import QuartSchema, hide
from quart_trio import QuartTrio

from ._asgi import ScopestreamASGI
from ._hot import HotRoutes
from ._request import JsonRequest
from .auth import ops_route
from .errors import install_error_handlers
from .logs import configure_logging
from .openapi_models import ScopestreamOpenAPIProvider
from .playground import playground_blueprint
from .routes._common import no_content
from .routes.ai_sdk import ai_sdk_blueprint
from .routes.docs import docs_blueprint
from .routes.openai import openai_blueprint
from .routes.ops import ops_blueprint
from .routes.runs import runs_blueprint
from .service import Service, current_service, install_service, service_of
from .settings import Settings, load_settings

__all__ = ["create_app", "create_asgi"]


class ScopestreamApp(QuartTrio):
    request_class = JsonRequest

    async def make_default_options_response(self) -> Response:
        """``OPTIONS``: 204 with ``Allow`` (Quart's default is an empty text/html 200)."""
        methods = request_ctx.url_adapter.allowed_methods()  # type: ignore[union-attr]
        return no_content({"Allow": ", ".join(sorted(methods))})


def create_app(settings: Settings | None = None) -> QuartTrio:
    """The app for ``settings`` (default: from the environment). Raises
    :class:`~app.settings.SettingsError` naming the setting if one is unusable."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    app = ScopestreamApp("scopestream")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["RESPONSE_TIMEOUT"] = None  # streams end with their run
    security: dict[str, object] = {}
    if settings.api_keys:
        security = {
            "security_schemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "security": [{"bearer": []}],
        }
    schema = QuartSchema(
        app,
        info={"title": "scopestream", "version": "0.1.0"},
        openapi_provider_class=ScopestreamOpenAPIProvider,
        # quart-schema's pages load their scripts from CDNs: the docs blueprint serves
        # Swagger UI from the package instead, and the other two pages are not offered.
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        **security,  # type: ignore[arg-type]
    )
    app.view_functions["openapi"] = ops_route(_openapi_view(schema))
    service = Service(settings)
    install_service(app, service)
    # Before any other hook and before the body is read: an unauthenticated request learns
    # nothing else (see app.auth).
    app.before_request(service.auth.authenticate)
    install_error_handlers(app)
    app.register_blueprint(runs_blueprint(settings))
    app.register_blueprint(openai_blueprint(settings))
    app.register_blueprint(ai_sdk_blueprint())
    app.register_blueprint(ops_blueprint())
    app.register_blueprint(playground_blueprint())
    app.register_blueprint(docs_blueprint(title="scopestream", openapi_path="/openapi.json"))

    @app.before_serving
    async def _open_engine() -> None:
        await current_service().open(app.nursery)
        freeze_startup_heap()

    @app.after_serving
    async def _close_engine() -> None:
        await current_service().close()

    return app


def freeze_startup_heap() -> None:
    """Move everything allocated by start-up (modules, the app, pydantic schemas: a few hundred
    thousand objects) out of the garbage collector's reach. They live as long as the process,
    yet every full collection would walk them all: tens of milliseconds during which no stream
    moves, which is what a stream's tail latency showed. Runs and connections made afterwards
    are collected as usual."""
    gc.collect()
    gc.freeze()


def _openapi_view(schema: QuartSchema) -> Callable[[], Awaitable[ResponseReturnValue]]:
    """quart-schema's ``/openapi.json`` view as a plain function, so it can carry a key
    policy (a bound method cannot hold attributes)."""

    @hide
    async def openapi() -> ResponseReturnValue:
        result: ResponseReturnValue = await schema.openapi()
        return result

    return openapi


def create_asgi(settings: Settings | None = None) -> ScopestreamASGI:
    app = create_app(settings)
    return ScopestreamASGI(app, HotRoutes(service_of(app)))
