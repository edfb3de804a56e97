"""Benchmark GuardPool: many sessions in one process, and on Redis from four processes.

Prints:

1. memory per guard with 10,000 sessions in one pool (tracemalloc), before and after each
   guard's first read;
2. ``check`` and ``reserve -> commit`` p50/p99 through the pool (``pool.get`` on one of 10,000
   sessions, then the call) against one guard used directly;
3. GetPaymentSession calls per session per freshness window, 1,000 sessions hammered by 32
   threads (a client that takes 2 ms to answer, so reads overlap);
4. 1,000 cold sessions fetched at once with ``await pool.aget(...)`` from a real emulator over
   HTTP (in a child process), with the peak number of threads of this process;
5. ledger books kept after 10,000 sessions cycled through a pool of 100 (reserve -> commit on
   each), while the sessions live and once they expired (injected clocks);
6. Redis: 4 processes, each with a GuardPool on one RedisLedger, doing reserve -> commit on the
   same 1,000 sessions; throughput, p50/p99, and a check that every charge is in the book.

    uv run python benchmarks/bench_pool.py                # starts a throwaway redis-server
    uv run python benchmarks/bench_pool.py --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import multiprocessing as mp
import random
import shutil
import sys
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from spendguard import Freshness, InMemoryLedger
from spendguard.pool import GuardPool

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-bench01-abcdefghij"
NOW = datetime.now(timezone.utc)


def sid(n: int) -> str:
    return f"payment-session-{n:015d}"


class LocalSessions:
    """Answers GetPaymentSession in process for any session id (no network), counting calls."""

    def __init__(self, delay: float = 0.0, budget: str = "1000000") -> None:
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._budget = budget

    def get_payment_session(self, **kwargs: Any) -> dict[str, Any]:
        session_id = kwargs["paymentSessionId"]
        with self._lock:
            self.calls[session_id] += 1
        if self.delay:
            time.sleep(self.delay)
        amount = {"value": self._budget, "currency": "USD"}
        updated = NOW - timedelta(minutes=5)
        return {
            "paymentSession": {
                "paymentSessionId": session_id,
                "paymentManagerArn": ARN,
                "userId": "user-1",
                "expiryTimeInMinutes": 600,
                "createdAt": NOW - timedelta(minutes=10),
                "updatedAt": updated,
                "limits": {"maxSpendAmount": amount},
                "availableLimits": {"availableSpendAmount": amount, "updatedAt": updated},
            }
        }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _us(values: list[float]) -> str:
    return f"p50 {_pct(values, 0.5) * 1e6:7.1f} us  p99 {_pct(values, 0.99) * 1e6:7.1f} us"


# -- 1. memory -------------------------------------------------------------------------------


def memory(sessions: int) -> None:
    pool = GuardPool(client=LocalSessions(), maxsize=sessions)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    guards = [pool.get(ARN, sid(n), user_id="user-1") for n in range(sessions)]
    made = tracemalloc.get_traced_memory()[0]
    for guard in guards:
        guard.check("0.01")
    read = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"1. memory, {sessions:,} sessions in one pool: {(made - base) / sessions:,.0f} B per "
        f"guard made, {(read - base) / sessions:,.0f} B per guard after its first read "
        f"(session snapshot and ledger book included); {(read - base) / 2**20:,.1f} MiB in all"
    )


# -- 2. latency ------------------------------------------------------------------------------


def latency(sessions: int, ops: int) -> None:
    pool = GuardPool(client=LocalSessions(), maxsize=sessions)
    for n in range(sessions):
        pool.get(ARN, sid(n), user_id="user-1").check("0.01")  # warm: reads cached
    single = pool.get(ARN, sid(0), user_id="user-1")
    picks = [sid(random.randrange(sessions)) for _ in range(ops)]

    def timed(fn: Callable[[str], object]) -> list[float]:
        out = []
        for session_id in picks:
            t0 = time.perf_counter()
            fn(session_id)
            out.append(time.perf_counter() - t0)
        return out

    def pool_cycle(session_id: str) -> None:
        pool.get(ARN, session_id, user_id="user-1").reserve("0.01").commit()

    rows = {
        "check, one guard          ": timed(lambda s: single.check("0.01")),
        "check, via pool.get       ": timed(
            lambda s: pool.get(ARN, s, user_id="user-1").check("0.01")
        ),
        "reserve->commit, one guard": timed(lambda s: single.reserve("0.01").commit()),
        "reserve->commit, via pool ": timed(pool_cycle),
    }
    print(f"2. latency, {ops:,} calls each, pool of {sessions:,} warm sessions:")
    for name, values in rows.items():
        print(f"   {name}  {_us(values)}")


# -- 3. reads per freshness window -------------------------------------------------------------


def reads_per_window(sessions: int, threads: int, windows: int) -> None:
    clock = {"mono": 1000.0}
    client = LocalSessions(delay=0.002)
    pool = GuardPool(
        client=client,
        maxsize=sessions,
        freshness=Freshness(min_ttl=10, max_ttl=10),
        timer=lambda: clock["mono"],
    )
    per_window = 4 * sessions // threads
    marks: list[Counter[str]] = []

    def next_window() -> None:  # run by the last thread to arrive, the others wait
        marks.append(Counter(client.calls))
        clock["mono"] += 10.5  # past the 10 s window: every reading is stale

    gate = threading.Barrier(threads, action=next_window)

    def worker() -> None:
        rng = random.Random()
        for _ in range(windows):
            gate.wait()
            for _ in range(per_window):
                pool.get(ARN, sid(rng.randrange(sessions)), user_id="user-1").check("0.01")

    started = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    marks.append(Counter(client.calls))
    per_pair = [
        after[key] - before[key]
        for before, after in itertools.pairwise(marks)
        for key in after
        if after[key] - before[key]
    ]
    print(
        f"3. GetPaymentSession per session per 10 s freshness window: at most {max(per_pair)}, "
        f"mean {sum(per_pair) / len(per_pair):.3f} over the {len(per_pair):,} (session, window) "
        f"pairs used ({threads} threads, {threads * per_window * windows:,} checks over "
        f"{sessions:,} sessions and {windows} windows; reads take 2 ms; {elapsed:.1f} s wall)"
    )


# -- 4. cold fetch through aget ------------------------------------------------------------------


def _serve_emulator(count: int, out: Any, stop: Event) -> None:
    from spendguard.emulator import PaymentsEmulator  # noqa: PLC0415

    with PaymentsEmulator() as emulator:
        made = [emulator.create_session("10.00", user_id="user-1") for _ in range(count)]
        out.put(
            (
                emulator.endpoint_url,
                made[0].payment_manager_arn,
                [m.payment_session_id for m in made],
            )
        )
        stop.wait()


def cold_fetch(count: int) -> None:
    import boto3  # noqa: PLC0415

    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve_emulator, args=(count, out, stop))
    child.start()
    try:
        endpoint, arn, ids = out.get(timeout=300)
        session = boto3.session.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        import os  # noqa: PLC0415

        os.environ["AWS_ENDPOINT_URL_BEDROCK_AGENTCORE"] = endpoint
        pool = GuardPool(boto3_session=session, max_pool_connections=32, maxsize=count)
        peak = [threading.active_count()]
        before = threading.active_count()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], threading.active_count())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()

        async def fetch_all() -> None:
            await asyncio.gather(*(pool.aget(arn, i, user_id="user-1") for i in ids))

        started = time.perf_counter()
        asyncio.run(fetch_all())
        elapsed = time.perf_counter() - started
        done.set()
        sampler.join()
        print(
            f"4. {count:,} cold sessions at once via await pool.aget (emulator over HTTP, "
            f"32 connections): {elapsed:.2f} s, {count / elapsed:,.0f} reads/s; threads: "
            f"{before} before, peak {peak[0] - 1} (sampler excluded)"
        )
    finally:
        stop.set()
        child.join()


# -- 5. books kept after expiry ------------------------------------------------------------------


def books_after_expiry(sessions: int, maxsize: int) -> None:
    clock = {"wall": time.time(), "mono": 1000.0}
    ledger = InMemoryLedger()
    pool = GuardPool(
        client=LocalSessions(),
        ledger=ledger,
        maxsize=maxsize,
        clock=lambda: clock["wall"],
        timer=lambda: clock["mono"],
    )
    started = time.perf_counter()
    for n in range(sessions):
        pool.get(ARN, sid(n), user_id="user-1").reserve("0.01").commit()
    elapsed = time.perf_counter() - started
    live = ledger.books
    for key in clock:
        clock[key] += 601 * 60.0  # the sessions expire 600 minutes after they were made
    len(pool)  # expires the cached guards, which lets the ledger sweep
    print(
        f"5. ledger books kept, {sessions:,} sessions cycled through a pool of {maxsize} "
        f"(reserve -> commit each, {elapsed:.2f} s): {live:,} while the sessions live, "
        f"{ledger.books:,} once they expired"
    )


# -- 6. Redis: 1,000 sessions x 4 processes ------------------------------------------------------


def _redis_worker(
    url: str, prefix: str, sessions: int, rounds: int, barrier: Barrier, out: Any
) -> None:
    from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415

    ledger = RedisLedger.from_url(url, prefix=prefix, timeout=5)
    pool = GuardPool(client=LocalSessions(), ledger=ledger, settlement="external", maxsize=sessions)
    for n in range(sessions):
        pool.get(ARN, sid(n), user_id="user-1").check("0.01")  # read, load scripts
    times: list[float] = []
    barrier.wait()
    started = time.perf_counter()
    for _ in range(rounds):
        for n in range(sessions):
            t0 = time.perf_counter()
            pool.get(ARN, sid(n), user_id="user-1").reserve("0.01").commit()
            times.append(time.perf_counter() - t0)
    out.put((time.perf_counter() - started, times))


def redis_processes(url: str, sessions: int, processes: int, rounds: int) -> None:
    from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    prefix = f"bench-pool-{uuid.uuid4().hex[:8]}"
    workers = [
        ctx.Process(target=_redis_worker, args=(url, prefix, sessions, rounds, barrier, out))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
    times = [t for _, ts in results for t in ts]
    cycles = len(times)
    wall = max(elapsed for elapsed, _ in results)
    pool = GuardPool(
        client=LocalSessions(),
        ledger=RedisLedger.from_url(url, prefix=prefix, timeout=5),
        settlement="external",
    )
    expected = Decimal("0.01") * processes * rounds
    wrong = [
        n
        for n in range(sessions)
        if pool.get(ARN, sid(n), user_id="user-1").snapshot().external.amount != expected
    ]
    print(
        f"6. Redis, {sessions:,} sessions x {processes} processes, {rounds} reserve->commit per "
        f"session per process: {cycles / wall:,.0f} cycles/s in all, reserve->commit "
        f"p50 {_pct(times, 0.5) * 1e3:.3f} ms p99 {_pct(times, 0.99) * 1e3:.3f} ms; "
        f"sessions whose book is not exactly {expected} USD: {len(wrong)}"
    )


def main() -> None:
    """Parse arguments, start a redis-server if no URL was given, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--cold", type=int, default=1_000)
    parser.add_argument("--redis-url", help="an existing Redis (default: start redis-server)")
    parser.add_argument("--redis-rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    memory(args.sessions)
    latency(args.sessions, args.ops)
    reads_per_window(1_000, 32, 5)
    cold_fetch(args.cold)
    books_after_expiry(args.sessions, 100)
    if args.redis_url:
        redis_processes(args.redis_url, 1_000, 4, args.redis_rounds)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from redis_server import RedisServer  # type: ignore[import-not-found]  # noqa: PLC0415

    binary = shutil.which("redis-server")
    if binary is None:
        print("6. Redis: skipped, redis-server not found (apt-get install -y redis-server)")
        return
    server = RedisServer(binary)
    server.start()
    try:
        redis_processes(server.url, 1_000, 4, args.redis_rounds)
    finally:
        server.close()


if __name__ == "__main__":
    main()
