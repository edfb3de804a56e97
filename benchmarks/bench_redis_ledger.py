"""Benchmark the Redis ledger: reserve -> commit cycles per process on loopback.

Each worker process runs ``--cycles`` reserve -> commit cycles (two round trips, two Lua
scripts) and reports its throughput and per-call latency. Scenarios: 1, 2 and 4 processes on
one shared session (every script touches the same keys), 4 processes on 4 sessions, and 4
processes over 1,000 sessions (each cycle on the next session).

    uv run python benchmarks/bench_redis_ledger.py              # starts a throwaway redis-server
    uv run python benchmarks/bench_redis_ledger.py --url redis://127.0.0.1:6379/0
    uv run python benchmarks/bench_redis_ledger.py --cluster    # three local masters
    uv run python benchmarks/bench_redis_ledger.py --cluster --fsync always
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import sys
import time
import uuid
from decimal import Decimal
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import redis

from spendguard._ledger import ServerView
from spendguard.redis_ledger import RedisLedger

T = 1_800_000_000.0
VIEW = ServerView(Decimal("1000000"), Decimal(0), T)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _worker(
    url: str, cluster: bool, prefix: str, keys: list[str], cycles: int, barrier: Barrier, out: Any
) -> None:
    ledger = RedisLedger.from_url(url, prefix=prefix, timeout=5, cluster=cluster)
    amount = Decimal("0.000123")
    ledger.totals(keys[0], VIEW, T)  # connect, load the scripts
    reserve_ms: list[float] = []
    commit_ms: list[float] = []
    barrier.wait()
    start = time.perf_counter()
    for i in range(cycles):
        key = keys[i % len(keys)]
        hold_id = f"{uuid.uuid4().hex[:8]}-{i}"
        t0 = time.perf_counter()
        granted, _ = ledger.reserve(key, hold_id, amount, VIEW, "external", 900, T)
        t1 = time.perf_counter()
        ledger.commit(key, hold_id, Decimal("0.0001"), T, T)
        t2 = time.perf_counter()
        assert granted
        reserve_ms.append((t1 - t0) * 1000)
        commit_ms.append((t2 - t1) * 1000)
    elapsed = time.perf_counter() - start
    out.put((cycles / elapsed, reserve_ms, commit_ms))


def _scenario(url: str, cluster: bool, processes: int, sessions: int, cycles: int) -> None:
    """``sessions`` 1: all on one; equal to ``processes``: one each; more: all over them."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"

    def keys(n: int) -> list[str]:
        if sessions == processes and sessions > 1:
            return [f"session-{n}"]
        return [f"session-{(n * 7919 + i) % sessions}" for i in range(sessions)]

    workers = [
        ctx.Process(target=_worker, args=(url, cluster, prefix, keys(n), cycles, barrier, out))
        for n in range(processes)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=300) for _ in workers]
    for w in workers:
        w.join()
    rates = [r[0] for r in results]
    reserve = [x for r in results for x in r[1]]
    commit = [x for r in results for x in r[2]]
    where = "1 session " if sessions == 1 else f"{sessions} sessions"
    print(
        f"{processes:>4} proc  {where:<14} {statistics.mean(rates):>9,.0f} cycles/s/proc "
        f"{sum(rates):>9,.0f} cycles/s total   "
        f"reserve p50 {_percentile(reserve, 0.5):.3f} p99 {_percentile(reserve, 0.99):.3f} ms   "
        f"commit p50 {_percentile(commit, 0.5):.3f} p99 {_percentile(commit, 0.99):.3f} ms"
    )


def _ping_ms(url: str, n: int = 2000) -> float:
    client = redis.Redis.from_url(url)
    client.ping()
    start = time.perf_counter()
    for _ in range(n):
        client.ping()
    return (time.perf_counter() - start) * 1000 / n


def _run(url: str, cycles: int, cluster: bool = False) -> None:
    info = redis.Redis.from_url(url).info("server")
    where = "a 3-master cluster via" if cluster else "at"
    print(f"redis-server {info['redis_version']} {where} {url}; {cycles} cycles per process")
    print(f"PING round trip (baseline): {_ping_ms(url):.3f} ms")
    for processes, sessions in ((1, 1), (2, 1), (4, 1), (4, 4), (4, 1000)):
        _scenario(url, cluster, processes, sessions, cycles)


def main() -> None:
    """Parse arguments, start a redis-server if no URL was given, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing Redis (default: start redis-server)")
    parser.add_argument("--cycles", type=int, default=5000, help="cycles per process")
    parser.add_argument(
        "--cluster", action="store_true", help="start (or, with --url, use) a Redis Cluster"
    )
    parser.add_argument(
        "--fsync",
        default="everysec",
        choices=["everysec", "always"],
        help="the started cluster's AOF appendfsync (default %(default)s)",
    )
    args = parser.parse_args()
    if args.url:
        _run(args.url, args.cycles, args.cluster)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from redis_server import RedisServer  # type: ignore[import-not-found]  # noqa: PLC0415

    if args.cluster:
        from redis_cluster import LocalCluster  # type: ignore[import-not-found]  # noqa: PLC0415

        cluster = LocalCluster(3, fsync=args.fsync)
        cluster.start()
        print(f"AOF on every node, appendfsync {args.fsync}")
        try:
            _run(cluster.url, args.cycles, cluster=True)
        finally:
            cluster.close()
        return

    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: apt-get install -y redis-server, or pass --url")
    server = RedisServer(binary)
    server.start()
    try:
        _run(server.url, args.cycles)
    finally:
        server.close()


if __name__ == "__main__":
    main()
