"""A real ``redis-server`` for the tests: started on a free port in a temp dir, stopped at the end.

Where the binary is missing the Redis tests skip with the reason; in CI (``CI=true``) a missing
binary fails them instead, so CI cannot pass without running them.

Use the fixtures by importing them into a test module::

    from redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

__all__ = ["RedisServer", "free_port", "redis_binary", "redis_server_fixture", "redis_url_fixture"]

_STARTUP_SECONDS = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_binary() -> str:
    """The path of ``redis-server``; skips the test (fails it when ``CI=true``) if missing."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    reason = (
        "redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server); "
        "the Redis ledger tests need a real server"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


class RedisServer:
    """One throwaway ``redis-server`` process without persistence."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port if port is not None else free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="spendguard-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        log = Path(self._dir.name, "redis.log")
        self._proc = subprocess.Popen(
            [*args, "--logfile", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + _STARTUP_SECONDS
        try:
            while True:
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                    raise RuntimeError(f"redis-server exited at start: {err}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise
                    time.sleep(0.01)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (it keeps its port number, so :meth:`start` brings it back)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        self._dir.cleanup()


_shared: RedisServer | None = None
_users = 0


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """One server for the whole test run, shared by every module that imports the fixture."""
    global _shared, _users  # noqa: PLW0603 - one process-wide server
    binary = redis_binary()
    if _shared is None:
        _shared = RedisServer(binary)
        _shared.start()
    _users += 1
    yield _shared
    _users -= 1
    if _users == 0:
        _shared.close()
        _shared = None


@pytest.fixture(name="redis_url")
def redis_url_fixture(redis_server: RedisServer) -> str:
    """The shared server's URL."""
    return redis_server.url
