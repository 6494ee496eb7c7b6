"""The browser playground: a page, served by the app itself, that streams runs over the four
protocols, stops them, resumes them after a reload and answers their questions.

Plain HTML, CSS and JavaScript modules shipped in this package (``static/``): no build
step, nothing fetched from elsewhere, so it works on a machine without internet. The page
calls the same public API as any client; it has no routes of its own beyond its files.
"""

from __future__ import annotations

from importlib import resources

from quart import Blueprint, Response, redirect
from quart_schema import hide

from ..auth import public_route
from ..errors import ApiError

__all__ = ["PLAYGROUND_PATH", "playground_blueprint"]

PLAYGROUND_PATH = "/playground/"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Everything the page loads comes from this origin; the page talks only to this API. A
# strict policy also proves the "no CDN" promise in the browser itself: anything from
# elsewhere would be blocked and reported in the console.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files that change with the package: revalidate rather than serve a stale page.
    "Cache-Control": "no-cache",
}


def _load_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once: a fixed table, so no request path ever reaches the
    file system."""
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            files[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return files


def playground_blueprint() -> Blueprint:
    bp = Blueprint("playground", __name__)
    files = _load_files()

    def serve(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise ApiError(404, "not_found", "No such file in the playground.")
        body, content_type = found
        return Response(body, content_type=content_type, headers=_HEADERS)

    # No API key for these: the page holds no data, and asks for the key when the API does.
    @bp.get("/")
    @hide
    @public_route
    async def root() -> Response:
        return redirect(PLAYGROUND_PATH)  # type: ignore[return-value]

    @bp.get(PLAYGROUND_PATH)
    @hide
    @public_route
    async def page() -> Response:
        return serve("index.html")

    @bp.get(PLAYGROUND_PATH + "<name>")
    @hide
    @public_route
    async def asset(name: str) -> Response:
        return serve(name)

    return bp
