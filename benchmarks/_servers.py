"""Starting, watching and stopping the servers under test, each a process group of its own.

Every server runs from the project root with this virtualenv's interpreter, bound to a free
loopback port, with ``RLIMIT_NOFILE`` raised to its hard limit and (when there are at least two
CPUs) pinned to one CPU while the load generator gets another. ``stop`` kills the whole group,
so hypercorn's worker processes go with it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ._target import Target

__all__ = [
    "KEEPALIVE_OFF",
    "ROOT",
    "Server",
    "ServerSpec",
    "free_port",
    "local_specs",
    "pin_preexec",
    "running",
]

ROOT = Path(__file__).resolve().parent.parent
_BIN = Path(sys.executable).parent
KEEPALIVE_OFF = 3600.0  # seconds: keepalives effectively off


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_preexec(cpu: int | None) -> Callable[[], None]:
    """A ``preexec_fn``: raise the descriptor limit and pin to ``cpu``; inherited by children."""

    def setup() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How to start one server; ``argv`` and ``env`` may use ``{port}`` and ``{keepalive}``."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""
    http2: bool = False  # speaks HTTP/2 with prior knowledge (h2c) on its port

    def command(self, port: int, keepalive: float) -> list[str]:
        return [a.format(port=port, keepalive=keepalive) for a in self.argv]

    def environment(self, port: int, keepalive: float) -> dict[str, str]:
        extra = {k: v.format(port=port, keepalive=keepalive) for k, v in self.env.items()}
        return {**os.environ, **extra}


def local_specs() -> dict[str, ServerSpec]:
    """The three servers of a standard run, by name."""
    python = str(_BIN / "python")
    return {
        "scopestream": ServerSpec(
            "scopestream",
            (str(_BIN / "hypercorn"), "-k", "trio", "--bind", "127.0.0.1:{port}",
             "--backlog", "4096", "--keep-alive", "5", "app:serve"),
            {
                "SCOPESTREAM_KEEPALIVE_INTERVAL": "{keepalive}",
                # Throughput runs emit up to 100,000 events with no pause, which the producer
                # may run ahead of the socket by: let a connection lag that far rather than end
                # it as a slow consumer (defaults: 4,096 buffer, 100,000-event log).
                "SCOPESTREAM_CONNECTION_BUFFER": "150000",
                "SCOPESTREAM_MAX_LOG_EVENTS": "200000",
                # The byte budgets too: one throughput stream carries up to 40,000 x 4 KiB
                # (164 MB), beyond the defaults (32 MiB log, 16 MiB answer per run).
                "SCOPESTREAM_MAX_LOG_BYTES": "268435456",
                "SCOPESTREAM_MAX_OUTPUT_BYTES": "268435456",
                # Finished runs stay readable 10 min by default; over a run of the suite that
                # piles up millions of events and makes the garbage collector, not the stream,
                # what later steps measure. The side channel needs seconds.
                "SCOPESTREAM_LOG_RETENTION": "30",
                # The peers log nothing per run; neither should this service here.
                "SCOPESTREAM_LOG_LEVEL": "WARNING",
            },
            "hypercorn -k trio app:serve",
            http2=True,
        ),
        "sse-starlette": ServerSpec(
            "sse-starlette",
            (python, "-m", "benchmarks.peers.starlette_peer", "--port", "{port}",
             "--keepalive", "{keepalive}"),
            description="sse-starlette EventSourceResponse on uvicorn (h11, asyncio loop)",
        ),
        "floor": ServerSpec(
            "floor",
            (python, "-m", "benchmarks.peers.floor", "--port", "{port}",
             "--keepalive", "{keepalive}"),
            description="bare Trio TCP server, one send_all per event",
        ),
    }  # fmt: skip


@dataclass(slots=True)
class Server:
    """A server under test: a process group we started, or an external URL (``proc`` None)."""

    name: str
    target: Target
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)
    description: str = ""
    http2: bool = False

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _stop(name: str, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, SIGKILL it after 5 s; a slow stop is reported (it is a finding)."""
    if proc.poll() is not None:
        print(f"{name} had exited with status {proc.returncode}", file=sys.stderr)
        return
    t0 = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    took = time.monotonic() - t0
    if took > 1:
        print(f"{name} took {took:.1f} s to stop", file=sys.stderr)
    # The group may hold workers that outlived their parent: make sure none is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    spec: ServerSpec, *, keepalive: float, cpu: int | None, log_dir: Path
) -> Iterator[Server]:
    """Start ``spec`` on a free port, wait for ``GET /healthz`` to answer 200, yield it, and
    kill its process group on the way out, whatever happened. Raises ``RuntimeError`` if it
    does not come up within 30 s."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            spec.command(port, keepalive),
            cwd=ROOT,
            env=spec.environment(port, keepalive),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pin_preexec(cpu),
        )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} did not start; see {log_path}")
            time.sleep(0.1)
        target = Target(spec.name, "127.0.0.1", port)
        yield Server(spec.name, target, proc, [proc.pid], spec.description, spec.http2)
    finally:
        _stop(spec.name, proc)
