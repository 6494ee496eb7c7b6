"""Operations: health and Prometheus metrics."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import document_response, hide, security_scheme

from ..auth import ops_route, public_route
from ..openapi_models import Health
from ..service import current_service

__all__ = ["ops_blueprint"]


def ops_blueprint() -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    @document_response(Health, 200)
    @security_scheme([])  # no API key needed, even when keys are configured
    @public_route
    async def healthz() -> Response:
        """Liveness: the engine is open."""
        service = current_service()
        stats = service.backend.statistics()
        return Response(
            f'{{"status":"ok","live_runs":{stats["live_runs"]}}}', content_type="application/json"
        )

    @bp.get("/metrics")
    @hide
    @ops_route
    async def metrics() -> Response:
        return Response(
            current_service().metrics.render(), content_type="text/plain; version=0.0.4"
        )

    return bp
