"""The docs page: Swagger UI rendering ``/openapi.json``, served whole from this service.

Swagger UI's files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which
reads OpenAPI 3.1), not from a CDN: the page renders on a machine without internet access
and loads no third-party code. The page and its assets follow the ``public_ops`` key
policy (see :mod:`app.auth`).
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path

from ..auth import ops_route
from ..errors import ApiError

__all__ = ["ASSETS", "docs_blueprint"]

#: The files the page loads, with their media types (set here rather than guessed from
#: the platform's MIME table, which differs between systems for ``.js``).
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}
_ASSET_PATH = "/docs/assets/"

# validatorUrl: null, or Swagger UI would send the document to an online validator.
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{openapi}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      layout: "BaseLayout",
      presets: [SwaggerUIBundle.presets.apis],
      validatorUrl: null,
    }});
  </script>
</body>
</html>
"""


def docs_blueprint(*, title: str, openapi_path: str) -> Blueprint:
    bp = Blueprint("docs", __name__)
    page = _PAGE.format(title=title, assets=_ASSET_PATH, openapi=openapi_path)
    # Read once (about 1.7 MB): every request then answers from memory, without file I/O
    # on the event loop or a thread per request.
    directory = Path(str(swagger_ui_path))
    contents = {name: (directory / name).read_bytes() for name in ASSETS}

    @bp.get("/docs")
    @hide
    @ops_route
    async def docs_page() -> Response:
        return Response(page, content_type="text/html; charset=utf-8")

    @bp.get(_ASSET_PATH + "<name>")
    @hide
    @ops_route
    async def docs_asset(name: str) -> Response:
        if name not in ASSETS:
            raise ApiError(404, "not_found", "No such route.")
        return Response(
            contents[name],
            content_type=ASSETS[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    return bp
