"""The ASGI example in docs/embedding.md, run as written under hypercorn -k trio."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ._http import RawStream
from ._server import HYPERCORN, ROOT, free_port
from ._sse import parse_sse

pytestmark = pytest.mark.e2e


def example_source() -> str:
    text = (ROOT / "docs" / "embedding.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    (source,) = [b for b in blocks if "embedded_app.py" in b]
    return source


def test_embedding_example_streams_a_run(tmp_path: Path) -> None:
    (tmp_path / "embedded_app.py").write_text(example_source())
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    process = subprocess.Popen(
        [HYPERCORN, "-k", "trio", "-w", "0", "--bind", f"127.0.0.1:{port}", "embedded_app:app"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                stream = RawStream(port, "GET", "/?n=4")
                break
            except OSError:
                assert time.monotonic() < deadline, "example server did not start"
                time.sleep(0.05)
        assert stream.status == 200
        stream.read_to_end()
        assert stream.complete
        # It asked for Connection: close: the server closes once the response is whole.
        assert stream.closed_by_server(timeout=5)
        events = [f.json() for f in parse_sse(stream.raw) if f.id]
        assert [e["type"] for e in events] == ["run.started"] + ["text.delta"] * 4 + [
            "run.completed"
        ]
        assert "".join(e["data"].get("text", "") for e in events) == "0 1 2 3 "
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
