"""What each policy kind costs per decision: reserve -> commit through the guard, by ledger.

Run: ``uv run python benchmarks/bench_policies.py`` (starts a throwaway redis-server when
one is installed; ``--url`` uses an existing Redis, ``--no-redis`` skips it).

For each ledger, the median time of one ``reserve -> commit`` cycle with no policy, then with
each kind alone, then all together; rounds interleave the kinds, so a busy moment of the
machine hits them all alike. Windows keep running totals, so their cost should not grow with
the calls inside them: the window rows keep ``--window-calls`` calls (plus those measured) in
an hour-long window, so that claim is measured, not assumed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from spendguard import InMemoryLedger, Ledger, SpendGuard
from spendguard.policies import Policies, ToolPolicy, Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import ARN, SID, ScriptedClient, Session  # type: ignore[import-not-found]

KINDS: dict[str, Callable[[], Policies | None]] = {
    "none (no policies=)": lambda: None,
    "per_call_max": lambda: Policies(per_call_max="1.00"),
    "tool_cap": lambda: Policies(tools={"tool": ToolPolicy(cap="900000")}),
    "thresholds": lambda: Policies(on_threshold=lambda event: None),
    "window_amount": lambda: Policies(windows=[Window("hour", amount="900000")]),
    "window_count": lambda: Policies(windows=[Window("hour", count=10**9)]),
    "all of them": lambda: Policies(
        per_call_max="1.00",
        tools={"tool": ToolPolicy(per_call_max="1.00", cap="900000")},
        windows=[Window("hour", amount="900000", count=10**9), Window("minute", count=10**9)],
        on_threshold=lambda event: None,
    ),
}


def _guard(ledger: Ledger, policies: Policies | None) -> SpendGuard:
    now = datetime.now(timezone.utc)
    session = Session(
        max_spend="999999",
        available="999999",
        created_at=now - timedelta(minutes=1),
        updated_at=now - timedelta(minutes=1),
        expiry_minutes=24 * 60,
    )
    return SpendGuard(
        ARN,
        SID,
        client=ScriptedClient(session),
        ledger=ledger,
        policies=policies,
        settlement="external",
    )


def _round_us(guard: SpendGuard, cycles: int) -> float:
    start = time.perf_counter()
    for _ in range(cycles):
        guard.reserve("0.01", tool="tool").commit()
    return (time.perf_counter() - start) / cycles * 1e6


def _run(name: str, make_ledger: Callable[[], Ledger], cycles: int, window_calls: int) -> None:
    rounds = 7
    print(f"\n{name}: median us per reserve -> commit ({rounds} rounds of {cycles} cycles)")
    guards = {}
    for kind, build in KINDS.items():
        guard = guards[kind] = _guard(make_ledger(), build())
        if "window" in kind or kind == "all of them":
            for _ in range(window_calls):
                guard.reserve("0.01", tool="tool").commit()
        guard.reserve("0.01", tool="tool").commit()  # warm: session read, scripts loaded
    # Rounds interleave the kinds, so a busy moment of the machine hits them all alike.
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(rounds):
        for kind, guard in guards.items():
            times[kind].append(_round_us(guard, cycles))
    base = statistics.median(times["none (no policies=)"])
    for kind, found in times.items():
        us = statistics.median(found)
        extra = f"+{us - base:8.1f} us" if kind != "none (no policies=)" else ""
        print(f"  {kind:<22} {us:9.1f} us  {extra}")


def main() -> None:
    """Parse arguments and print the figures for each ledger."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing Redis (default: start redis-server)")
    parser.add_argument("--no-redis", action="store_true", help="in-memory ledger only")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--window-calls", type=int, default=100)
    args = parser.parse_args()
    print(f"windows hold {args.window_calls} earlier calls (+ those measured) when measured")
    _run("InMemoryLedger", InMemoryLedger, args.cycles, args.window_calls)
    if args.no_redis:
        return
    from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415

    def redis_at(url: str) -> Callable[[], Ledger]:
        return lambda: RedisLedger.from_url(url, prefix=f"bench-{uuid.uuid4().hex[:8]}")

    if args.url:
        _run(f"RedisLedger at {args.url}", redis_at(args.url), args.cycles // 4, args.window_calls)
        return
    from redis_server import RedisServer  # type: ignore[import-not-found]  # noqa: PLC0415

    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found: apt-get install -y redis-server, or pass --url")
    server: Any = RedisServer(binary)
    server.start()
    try:
        _run("RedisLedger (loopback)", redis_at(server.url), args.cycles // 4, args.window_calls)
    finally:
        server.close()


if __name__ == "__main__":
    main()
