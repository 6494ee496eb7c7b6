"""The playground's files, as the app serves them (in-process: no engine is needed).

What a browser would load is checked here without one: every file the page refers to is
served with its type, nothing comes from another origin, and the policy headers forbid it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import app._factory as factory
from app import Settings, create_app


@pytest.fixture(autouse=True)
def _no_log_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "configure_logging", lambda level: None)


def client(**settings: Any) -> Any:
    return create_app(Settings(**settings)).test_client()


# src="x", href="x", and `import ... from "./x.js"` in the modules
_REFERENCES = re.compile(r'(?:src|href)="([^"#]+)"|from "([^"]+)"')


async def test_root_redirects_to_the_page() -> None:
    response = await client().get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/playground/"


async def test_every_file_the_page_refers_to_is_served_from_this_origin() -> None:
    app_client = client()
    expected_types = {
        ".html": "text/html",
        ".css": "text/css",
        ".js": "text/javascript",
        ".svg": "image/svg+xml",
    }
    seen: set[str] = set()
    pending = ["index.html"]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        response = await app_client.get("/playground/" + ("" if name == "index.html" else name))
        assert response.status_code == 200, name
        suffix = "." + name.rpartition(".")[2]
        assert response.headers["Content-Type"].startswith(expected_types[suffix]), name
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        text = (await response.get_data()).decode()
        for match in _REFERENCES.finditer(text):
            ref = match.group(1) or match.group(2)
            if ref.startswith("/"):
                assert ref in ("/docs",), (name, ref)  # links to the app's own pages
                continue
            assert "//" not in ref and not ref.startswith(".."), (name, ref)  # no other origin
            pending.append(ref.removeprefix("./"))
    assert {"index.html", "playground.css", "playground.js", "sse.js", "api.js"} <= seen
    assert {"protocols.js", "view.js", "panels.js", "form.js", "steps.js", "favicon.svg"} <= seen


@pytest.mark.parametrize("path", ["/playground/nope.js", "/playground/..%2F__init__.py"])
async def test_an_unknown_file_is_a_json_404(path: str) -> None:
    response = await client().get(path)
    assert response.status_code == 404
    body = await response.get_json()
    assert body["error"]["code"] == "not_found"


async def test_the_page_needs_no_key_but_the_api_does() -> None:
    app_client = client(api_keys=["secret"])
    assert (await app_client.get("/playground/")).status_code == 200
    assert (await app_client.get("/playground/api.js")).status_code == 200
    assert (await app_client.get("/v1/models")).status_code == 401
