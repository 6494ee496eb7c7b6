"""Start the real service (``hypercorn -k trio app:serve``) on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HYPERCORN = str(Path(sys.executable).parent / "hypercorn")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_expecting_exit(
    env: Mapping[str, str] | None = None, *, worker: str = "trio", timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Start ``hypercorn -k <worker> app:serve`` as a service that should refuse to start:
    wait for it to exit (killing its process group if it has not within ``timeout``) and
    return its exit status and output (stdout and stderr together, as ``stdout``)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    args = [HYPERCORN, "-k", worker, "--bind", f"127.0.0.1:{free_port()}", "app:serve"]
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        raise AssertionError(f"the server did not exit within {timeout} s:\n{out}") from None
    return subprocess.CompletedProcess(args, process.returncode, out, "")


@contextmanager
def run_server(
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    graceful_timeout: float = 3,
    tls: tuple[Path, Path, ssl.SSLContext] | None = None,
) -> Iterator[Server]:
    """Serve on a free loopback port; with ``tls`` (certificate file, key file, and a client
    context that trusts them) over TLS, which offers HTTP/2 through ALPN."""
    port = free_port()
    tls_args = ["--certfile", str(tls[0]), "--keyfile", str(tls[1])] if tls else []
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                HYPERCORN,
                "--config",
                str(ROOT / "hypercorn.toml"),  # the shipped settings, as deployed
                "-k",
                "trio",
                "--bind",
                f"127.0.0.1:{port}",
                "--graceful-timeout",
                str(graceful_timeout),
                *tls_args,
                "app:serve",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port, process, log_path, "https" if tls else "http")
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                verify: ssl.SSLContext | bool = tls[2] if tls else True
                if httpx.get(server.url + "/healthz", timeout=1, verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
