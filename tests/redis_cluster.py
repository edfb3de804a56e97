"""A real Redis Cluster for the tests: three masters on free ports, each with its own AOF.

Every node gets a free client port and a free cluster bus port (``--cluster-port``, so the
bus is never port + 10000 past 65535), ``--cluster-node-timeout 1000`` and AOF fsynced on
every write, and ``--cluster-require-full-coverage no`` (a master down does not stop the
others). ``redis-cli --cluster create`` joins them; :meth:`LocalCluster.wait_ok` polls
``CLUSTER INFO`` on every node until each says ``cluster_state:ok`` and knows every master,
within a bounded deadline.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import redis
from redis_server import RedisServer, redis_binary

__all__ = ["LocalCluster", "redis_cli_binary"]

_DEADLINE_SECONDS = 30.0


def redis_cli_binary() -> str:
    """The path of ``redis-cli`` (Debian's redis-tools); skips or fails as redis-server does."""
    redis_binary()  # skips (or fails in CI) without redis-server
    found = shutil.which("redis-cli")
    if found is not None:
        return found
    reason = "redis-cli is not installed (Debian/Ubuntu: apt-get install -y redis-tools)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def _distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports: each socket stays bound until all are picked."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class LocalCluster:
    """Three (or more) Redis Cluster masters on loopback, no replicas.

    Args:
        masters: How many masters.
        fsync: Each node's ``appendfsync`` (``"always"``: a killed node loses nothing).
    """

    def __init__(self, masters: int = 3, *, fsync: str = "always") -> None:
        self.cli = redis_cli_binary()
        binary = redis_binary()
        self.nodes: list[RedisServer] = []
        ports = _distinct_free_ports(2 * masters)
        for port, bus in zip(ports[::2], ports[1::2], strict=True):
            options = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]
            # A master down leaves the others serving their slots.
            options += ["--cluster-require-full-coverage", "no"]
            options += ["--cluster-port", str(bus), "--cluster-config-file", "nodes.conf"]
            node = RedisServer(binary, port, appendonly=True, fsync=fsync, extra=options)
            self.nodes.append(node)

    @property
    def url(self) -> str:
        """A URL of one node; a cluster client finds the others itself."""
        return self.nodes[0].url

    def start(self) -> None:
        """Start every node, join them into one cluster and wait until it is ok."""
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        create = [self.cli, "--cluster", "create", *addresses]
        done = subprocess.run(
            [*create, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        self.wait_ok()

    def wait_ok(self, deadline: float = _DEADLINE_SECONDS) -> None:
        """Poll every node until each reports ``cluster_state:ok`` with every master known."""
        end = time.monotonic() + deadline
        while True:
            if all(self._ok(node) for node in self.nodes):
                return
            if time.monotonic() > end:
                states = [self._info(node) for node in self.nodes]
                raise RuntimeError(f"the cluster did not become ok in {deadline} s: {states}")
            time.sleep(0.05)

    def _info(self, node: RedisServer) -> dict[str, object]:
        client = redis.Redis(port=node.port, socket_timeout=2, socket_connect_timeout=2)
        try:
            info: dict[str, object] = client.cluster("INFO")
            return info
        except redis.RedisError as exc:
            return {"error": str(exc)}
        finally:
            client.close()

    def _ok(self, node: RedisServer) -> bool:
        info = self._info(node)
        return (
            info.get("cluster_state") == "ok"
            and int(str(info.get("cluster_known_nodes", 0))) == len(self.nodes)
            and int(str(info.get("cluster_slots_ok", 0))) == 16384
        )

    def node_of(self, key: str) -> RedisServer:
        """The master that serves ``key``'s hash slot (the others answer MOVED)."""
        for node in self.nodes:
            client = redis.Redis(port=node.port, socket_timeout=2, socket_connect_timeout=2)
            try:
                client.exists(key)
                return node
            except redis.ResponseError:
                continue
            finally:
                client.close()
        raise LookupError(key)  # pragma: no cover - every slot is served once ok

    def close(self) -> None:
        """Stop every node and delete its directory."""
        for node in self.nodes:
            node.close()
