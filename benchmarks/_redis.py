"""A ``redis-server`` of the suite's own, and the few commands the distributed figures need.

The server runs on a free loopback port with a temporary directory and no persistence
(``--save '' --appendonly no``: a benchmark measures the store, not the disk), in the
foreground, and is stopped by its PID. Commands go over a plain socket in RESP, so the suite
needs no Redis client library of its own (the service uses coredis; the benchmark stays
outside it, reading what is in Redis as an operator would).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._servers import free_port, pin_preexec

__all__ = [
    "RedisConnection",
    "RedisProcess",
    "ping_rtts",
    "run_key_bytes",
    "running_redis",
    "store_ping_rtts",
    "used_memory",
    "wait_no_live_runs",
]

Reply = bytes | int | list["Reply"] | None


class RedisConnection:
    """One blocking RESP2 connection: ``call(*args)`` sends a command and returns its reply
    (bulk strings as bytes, integers as int, arrays as lists; an error reply raises)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> RedisConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *args: str | int) -> Reply:
        parts = [str(a).encode() for a in args]
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self._sock.sendall(payload)
        return self._read()

    def _read(self) -> Reply:
        line = self._file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._file.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise RuntimeError(f"redis: unexpected reply {line!r}")


def used_memory(port: int) -> int:
    """``INFO memory``'s ``used_memory``: bytes Redis has allocated for its data and itself."""
    with RedisConnection(port) as conn:
        info = conn.call("INFO", "memory")
    assert isinstance(info, bytes)
    for line in info.decode().splitlines():
        key, _, value = line.partition(":")
        if key == "used_memory":
            return int(value)
    raise RuntimeError("INFO memory reports no used_memory")


def wait_no_live_runs(port: int, limit_s: float = 60.0, prefix: str = "ss") -> float | None:
    """Poll the store's live-run index (``<prefix>:live``, from which a run leaves once its
    terminal is stored) until it is empty; the ``time.time()`` it was first seen empty, or
    None past ``limit_s``."""
    deadline = time.monotonic() + limit_s
    with RedisConnection(port) as conn:
        while time.monotonic() < deadline:
            if conn.call("HLEN", f"{prefix}:live") == 0:
                return time.time()
            time.sleep(0.002)
    return None


def ping_rtts(port: int, count: int) -> list[float]:
    """Seconds per ``PING`` round trip over one kept-open connection: the floor under any
    cross-worker signal, which is at least one round trip to Redis."""
    out: list[float] = []
    with RedisConnection(port) as conn:
        for _ in range(count):
            t0 = time.perf_counter()
            if conn.call("PING") != b"PONG":
                raise RuntimeError("PING did not answer PONG")
            out.append(time.perf_counter() - t0)
    return out


def store_ping_rtts(url: str, count: int) -> list[float]:
    """Seconds per ``PING`` through the workers' own Redis client (the engine's store:
    coredis under Trio): what one round trip costs a worker, Python included, beside the
    raw-socket figure of :func:`ping_rtts`. Opening the store writes a heartbeat key for a
    worker id of its own, which expires with its TTL and owns no run."""
    import trio

    from engine.backends._redis_store import open_redis_store

    async def pings() -> list[float]:
        out: list[float] = []
        async with open_redis_store(url, worker_id="w_benchmark_ping") as store:
            for _ in range(count):
                t0 = time.perf_counter()
                await store.ping()
                out.append(time.perf_counter() - t0)
        return out

    return trio.run(pings)


def run_key_bytes(port: int, prefix: str = "ss") -> dict[str, dict[str, int]]:
    """For every run in Redis: ``{"bytes": MEMORY USAGE summed over its keys, "keys": n,
    "ttl_ms": the smallest PTTL among them}``. A run's keys are the ones hash-tagged with its
    id (``<prefix>:{<run_id>}:<part>``); alias keys (``{alias:...}``) and each key's
    recent-runs index (``{recent:...}``) belong to no run."""
    runs: dict[str, dict[str, int]] = {}
    with RedisConnection(port) as conn:
        cursor = b"0"
        while True:
            reply = conn.call("SCAN", cursor.decode(), "MATCH", f"{prefix}:{{*}}:*", "COUNT", 1000)
            assert isinstance(reply, list) and isinstance(reply[0], bytes)
            cursor, keys = reply[0], reply[1]
            assert isinstance(keys, list)
            for raw in keys:
                assert isinstance(raw, bytes)
                key = raw.decode()
                tag = key[key.index("{") + 1 : key.index("}")]
                if tag.startswith(("alias:", "recent:")):
                    continue
                size, ttl = conn.call("MEMORY", "USAGE", key, "SAMPLES", 0), conn.call("PTTL", key)
                if not isinstance(size, int) or not isinstance(ttl, int):
                    continue  # expired between SCAN and now
                run = runs.setdefault(tag, {"bytes": 0, "keys": 0, "ttl_ms": ttl})
                run["bytes"] += size
                run["keys"] += 1
                run["ttl_ms"] = min(run["ttl_ms"], ttl)
            if cursor == b"0":
                return runs


@dataclass(slots=True)
class RedisProcess:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_redis(log_dir: Path, *, cpu: int | None = None) -> Iterator[RedisProcess]:
    """Start ``redis-server`` on a free loopback port with a temporary directory, wait until it
    answers ``PING``, yield it, and stop it (by its PID) on the way out."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = log_dir / f"redis-{port}.log"
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as data, log_path.open("ab") as log:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", data, "--daemonize", "no"]  # fmt: skip
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin_preexec(cpu)
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited early; see {log_path}")
                with contextlib.suppress(OSError, RuntimeError):  # not up, or still loading
                    if ping_rtts(port, 1):
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {log_path}")
                time.sleep(0.02)
            yield RedisProcess(port, proc, log_path)
        finally:
            _stop(proc)
