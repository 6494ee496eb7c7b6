"""The OpenAPI document and the server cannot drift: schemathesis generates requests from
``/openapi.json`` and runs every one of its checks against a real ``hypercorn -k trio``
server (response status codes, headers, media types and bodies, SSE events against their
schemas, schema-valid requests accepted and schema-invalid ones refused, undocumented
methods answered 405, no 5xx).

Bounded: deterministic generation and at most 50 examples per operation, so the run is
the same every time and takes seconds. ``schemathesis/schemathesis.toml`` beside the test
relaxes only what the document cannot state, saying why.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ._server import Server, run_server

pytestmark = pytest.mark.e2e

ST = str(Path(sys.executable).parent / "st")
CONFIG = Path(__file__).parent / "schemathesis" / "schemathesis.toml"


KEY = "schemathesis-key"
MODES = {
    "open": ({}, []),
    # With keys on, every request carries one, and the ignored_auth check also sends each
    # without it and with a wrong one: a 401 is then the only right answer.
    "api-keys": ({"SCOPESTREAM_API_KEYS": KEY}, ["--header", f"Authorization: Bearer {KEY}"]),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_server_does_what_its_openapi_document_says(tmp_path: Path, mode: str) -> None:
    env, auth = MODES[mode]
    # A run deadline, so no generated input (a long interval, a stall) can hold a request
    # open: a run ends within it, as a 504 that the no-5xx check would report.
    env = {**env, "SCOPESTREAM_RUN_TIMEOUT": "5", "SCOPESTREAM_LOG_LEVEL": "WARNING"}
    with run_server(tmp_path, env) as server:
        output = run_schemathesis(server, tmp_path, auth)
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    assert selected is not None and selected[1] == selected[2], output[-4000:]
    assert re.search(r"Tested: " + selected[1] + r"\b", output), output[-4000:]


def run_schemathesis(server: Server, tmp_path: Path, options: list[str]) -> str:
    command = [
        ST,
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "50",
        "--generation-deterministic",  # the same requests every run
        "--request-timeout",
        "15",
        "--workers",
        "1",
        # One connection per request: what a connection does after an answer given before
        # its body was read is the transport's concern, not the document's.
        "--header",
        "Connection: close",
        "--report-dir",
        str(tmp_path),
        "--no-color",
        *options,
    ]
    # Run in a directory of its own: schemathesis keeps a cache of past failures in its
    # working directory and would replay them, so each run starts from nothing.
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    return output
