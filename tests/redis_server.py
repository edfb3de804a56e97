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
import threading
from collections.abc import Iterator, Sequence

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
    """One throwaway ``redis-server`` process, without persistence unless ``appendonly``.

    Args:
        binary: The ``redis-server`` path.
        port: The port (default: a free one).
        appendonly: Keep an AOF, so a restart brings the data back.
        fsync: The AOF's ``appendfsync``: ``"always"`` (on every write: a kill loses nothing)
            or ``"everysec"``.
        extra: More ``redis-server`` arguments (e.g. cluster options).
    """

    def __init__(
        self,
        binary: str,
        port: int | None = None,
        *,
        appendonly: bool = False,
        fsync: str = "always",
        extra: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.appendonly = appendonly
        self.fsync = fsync
        self.extra = list(extra)
        self._dir = tempfile.TemporaryDirectory(prefix="spendguard-redis-")
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it says it accepts connections."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", self._dir.name]
        fsync = ["--appendfsync", self.fsync] if self.appendonly else []
        args += ["--appendonly", "yes" if self.appendonly else "no", *fsync, *self.extra]
        proc = self._proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        ready = threading.Event()
        seen: list[str] = []
        # The reader also keeps draining the log, so the server never blocks on a full pipe.
        self._reader = threading.Thread(target=_read_log, args=(proc, ready, seen), daemon=True)
        self._reader.start()
        if not ready.wait(_STARTUP_SECONDS) or proc.poll() is not None:
            self.stop()
            raise RuntimeError("redis-server did not become ready:\n" + "".join(seen[-20:]))
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    @property
    def dir(self) -> str:
        """The server's working directory (AOF, cluster config)."""
        return self._dir.name

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; :meth:`start` brings it back."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self.stop()

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
        if self._reader is not None:
            self._reader.join(timeout=10)  # it ends at the log's end, now that the server exited
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        self._dir.cleanup()


def _read_log(proc: subprocess.Popen[str], ready: threading.Event, seen: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if len(seen) < 200:
            seen.append(line)
        if "Ready to accept connections" in line:
            ready.set()
    ready.set()  # the server exited: wake the starter, which then sees it is gone


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
