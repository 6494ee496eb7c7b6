"""A real ``redis-server`` on a free loopback port, with a throwaway directory.

Started with no persistence (``--save '' --appendonly no``) and not daemonized, so it is
stopped by its PID. :func:`flushdb` gives a test a clean keyspace without any client
library, over a raw socket.
"""

from __future__ import annotations

import inspect
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from tests._server import free_port

__all__ = [
    "RedisServer",
    "clean_url",
    "command",
    "flushdb",
    "module_server",
    "redis_server_path",
    "run_redis",
    "wait_until",
]


def redis_server_path() -> str:
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(path).exists():
        raise RuntimeError("redis-server is not installed (make test installs it with apt-get)")
    return path


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def command(port: int, *args: str, timeout: float = 5) -> bytes:
    """Send one command in RESP and return the raw first reply line (enough for the
    simple replies the fixture needs: +OK, +PONG, :n)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


def flushdb(server: RedisServer) -> None:
    if command(server.port, "FLUSHDB") != b"+OK":
        raise RuntimeError("FLUSHDB failed")


@contextmanager
def run_redis(directory: Path, port: int | None = None) -> Iterator[RedisServer]:
    """Run ``redis-server`` on a free loopback port (or ``port``) until the block exits."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = directory / f"redis-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                redis_server_path(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RedisServer(port, process, log_path)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited early:\n{server.log()}")
            try:
                if command(port, "PING", timeout=1) == b"+PONG":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{server.log()}")
            time.sleep(0.02)
        yield server
    finally:
        server.stop()


def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for a test module: ``redis_server = pytest.fixture(
    scope="module")(module_server)`` in the module."""
    with run_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def clean_url(redis_server: RedisServer) -> str:
    """The module's server, with an empty keyspace for this test: ``redis_url =
    pytest.fixture(clean_url)`` in the module."""
    flushdb(redis_server)
    return redis_server.url


async def wait_until(check: Callable[[], bool | Awaitable[bool]], interval: float = 0.005) -> None:
    """Poll ``check`` (sync or async) until it holds: for what Redis does on its own clock
    (expiry, a reply on another connection) on the real clock these tests use. The caller
    bounds the wait with ``trio.fail_after``."""
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        await trio.sleep(interval)
