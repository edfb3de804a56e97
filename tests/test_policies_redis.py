"""Policies on the Redis ledger: one atomic script, windows on Redis TIME, thresholds once
across processes (each process is a RedisLedger with its own connection)."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
import redis
from redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import Money, SpendGuard
from spendguard.policies import (
    Policies,
    PolicyViolationError,
    ThresholdEvent,
    ToolPolicy,
    Window,
)
from spendguard.redis_ledger import RedisLedger

pytestmark = pytest.mark.redis


class Shared:
    """One Redis prefix, so every guard built here spends from the same book."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"policy-{uuid.uuid4().hex}"

    def guard(self, policies: Policies, **kwargs: object) -> SpendGuard:
        session = Session(max_spend="10.00", available="10.00", expiry_minutes=24 * 60)
        ledger = RedisLedger.from_url(self.url, prefix=self.prefix, timeout=10)
        return SpendGuard(
            ARN,
            SID,
            client=ScriptedClient(session),
            ledger=ledger,
            policies=policies,
            settlement="external",
            **Clock().kwargs,  # the session's times; windows and leases run on Redis TIME
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def shared(redis_url: str) -> Shared:
    return Shared(redis_url)


def refused(guard: SpendGuard, amount: str, tool: str | None = None) -> PolicyViolationError:
    with pytest.raises(PolicyViolationError) as info:
        guard.reserve(amount, tool=tool)
    return info.value


def test_tool_cap_and_windows_count_holds_release_and_actual_across_processes(
    shared: Shared,
) -> None:
    policies = Policies(
        tools={"buy_report": ToolPolicy(cap="2.00")},
        windows=[Window("hour", amount="3.00"), Window("hour", count=2, tool="search")],
    )
    one, two = shared.guard(policies), shared.guard(policies)
    held = one.reserve("1.50", tool="buy_report")
    error = refused(two, "0.60", tool="buy_report")
    assert (error.rule, error.available) == ("tool_cap", Money.of("0.50"))
    held.release()  # gives the cap and the window back
    two.reserve("1.50", tool="buy_report").commit("1.00")
    one.reserve("1.00", tool="buy_report").commit()
    assert refused(two, "0.01", tool="buy_report").rule == "tool_cap"
    one.reserve("0.50", tool="search").commit()
    error = refused(two, "0.60", tool="search")
    assert (error.rule, error.available, error.window) == (
        "window_amount",
        Money.of("0.50"),
        3600.0,
    )
    two.reserve("0.10", tool="search").release()  # not a call
    two.reserve("0", tool="search").commit()
    error = refused(one, "0", tool="search")
    assert (error.rule, error.limit) == ("window_count", 2)
    decision = one.check("0", tool="search")
    assert (decision.allowed, decision.rule) == (False, "window_count")


def test_a_window_rolls_on_redis_time(shared: Shared) -> None:
    guard = shared.guard(Policies(windows=[Window(1, count=1)]))
    clock = redis.Redis.from_url(shared.url)
    seconds, micros = clock.time()
    guard.reserve("0.10").commit()
    assert refused(guard, "0.10").rule == "window_count"
    deadline = time.monotonic() + 30
    while True:  # wait for Redis's own clock to pass the window, not for a guess
        now_s, now_us = clock.time()
        if (now_s - seconds) * 1_000_000 + (now_us - micros) > 1_100_000:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    guard.reserve("0.10").commit()


def test_a_threshold_fires_once_across_processes(shared: Shared) -> None:
    seen: list[tuple[str, ThresholdEvent]] = []

    def policies(name: str) -> Policies:
        return Policies(
            thresholds=["0.5"],
            tools={"t": ToolPolicy(cap="1.00")},
            on_threshold=lambda event: seen.append((name, event)),
        )

    one, two = shared.guard(policies("one")), shared.guard(policies("two"))
    one.reserve("0.40", tool="t").commit()
    two.reserve("0.20", tool="t").commit()  # 0.60 of the cap: two crosses it
    one.reserve("0.10", tool="t").commit()
    one.reserve("4.00").commit()  # 4.70 of 10.00
    two.reserve("0.30").commit()  # 5.00: half the session
    one.reserve("1.00").commit()
    fired = [(name, e.rule, e.fraction) for name, e in seen]
    assert fired == [
        ("two", "tool_cap", Decimal("0.5")),
        ("two", "session_limit", Decimal("0.5")),
    ]


def test_concurrent_processes_cannot_slip_through_a_window(shared: Shared) -> None:
    policies = Policies(windows=[Window("hour", amount="1.20", count=6)])
    guards = [shared.guard(policies) for _ in range(12)]
    for guard in guards:
        guard.check("0")  # connect and read the session before the race
    barrier = threading.Barrier(len(guards))
    granted: list[str] = []
    rules: list[str] = []

    def worker(guard: SpendGuard) -> None:
        barrier.wait()
        for _ in range(3):
            try:
                guard.reserve("0.15")
                granted.append("x")
            except PolicyViolationError as error:
                rules.append(error.rule)

    threads = [threading.Thread(target=worker, args=(g,)) for g in guards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 6  # 7 x 0.15 = 1.05 would fit the amount: the count stops the 7th
    assert set(rules) == {"window_count"}
    assert guards[0].snapshot().held == Money.of("0.90")


def test_a_retried_hold_id_is_not_counted_twice(shared: Shared) -> None:
    guard = shared.guard(Policies(tools={"t": ToolPolicy(cap="1.00")}))
    ledger = guard._ledger
    assert isinstance(ledger, RedisLedger)
    policies = guard.policies
    assert policies is not None
    limits = policies._resolve("t", Decimal(10)).limits
    snap = guard._session()
    key = guard._key
    for _ in range(2):
        admission = ledger.admit(key, "h-1", Decimal("0.60"), snap.view, "external", 60, 0, limits)
        assert admission.granted
    assert refused(guard, "0.41", tool="t").available == Money.of("0.40")
