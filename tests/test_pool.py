"""GuardPool: one guard per session, shared client and ledger, eviction that never loses a hold."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from support import ARN, T0, Clock, Session

from spendguard import (
    BudgetExceededError,
    Freshness,
    InMemoryLedger,
    InvalidArgumentError,
    SpendGuard,
)
from spendguard.pool import GuardPool


def sid(n: int) -> str:
    return f"payment-session-{n:015d}"


class Sessions:
    """Answers GetPaymentSession for any session id from one template, counting calls by id."""

    def __init__(self, session: Session | None = None) -> None:
        self.session = session or Session()
        self.calls: Counter[str] = Counter()
        self.users: Counter[str | None] = Counter()
        self._lock = threading.Lock()

    def get_payment_session(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls[kwargs["paymentSessionId"]] += 1
            self.users[kwargs.get("userId")] += 1
        response = self.session.response()
        response["paymentSession"]["paymentSessionId"] = kwargs["paymentSessionId"]
        return response


def make(clock: Clock, **kwargs: Any) -> tuple[GuardPool, Sessions]:
    sessions = Sessions()
    return GuardPool(client=sessions, **clock.kwargs, **kwargs), sessions


def test_get_hands_out_one_guard_per_session_and_user() -> None:
    pool, sessions = make(Clock())
    a = pool.get(ARN, sid(1), user_id="alice")
    assert isinstance(a, SpendGuard)
    assert pool.get(ARN, sid(1), user_id="alice") is a
    assert pool.get(ARN, sid(1), user_id="bob") is not a
    assert pool.get(ARN, sid(1), user_id="alice", agent_name="x") is not a
    assert pool.get(ARN, sid(2), user_id="alice") is not a
    assert len(pool) == 4
    assert sessions.calls == {}  # get never reads the session


def test_guards_share_the_client_and_the_ledger() -> None:
    ledger = InMemoryLedger()
    pool, sessions = make(Clock(), ledger=ledger)
    assert pool.ledger is ledger
    pool.get(ARN, sid(1), user_id="alice").check("1")
    pool.get(ARN, sid(2), user_id="bob").check("1")
    assert sessions.calls == {sid(1): 1, sid(2): 1}
    assert sessions.users == {"alice": 1, "bob": 1}
    # Two users of one session spend from one book.
    hold = pool.get(ARN, sid(1), user_id="alice").reserve("9")
    with pytest.raises(BudgetExceededError):
        pool.get(ARN, sid(1), user_id="bob").reserve("2")
    hold.release()


def test_maxsize_smaller_than_the_live_sessions_never_loses_a_hold() -> None:
    clock = Clock()
    pool, _ = make(clock, maxsize=2)
    holds = {n: pool.get(ARN, sid(n)).reserve("6") for n in range(10)}
    guards = {n: hold._guard for n, hold in holds.items()}
    assert pool.pinned == 10
    for n in range(10, 50):  # pressure: 40 more sessions through a cache of 2
        pool.get(ARN, sid(n)).check("1")
    for n in range(10):
        again = pool.get(ARN, sid(n))
        assert again is guards[n]  # pinned: the same object
        with pytest.raises(BudgetExceededError):
            again.reserve("5")  # 6 of 10 held
    for hold in holds.values():
        hold.commit("4")
    assert pool.pinned == 0
    for n in range(10, 50):  # evict the settled guards too
        pool.get(ARN, sid(n))
    for n in range(10):
        fresh = pool.get(ARN, sid(n))
        assert fresh is not guards[n]  # made again...
        snap = fresh.snapshot()  # ...and it sees the charge through the shared ledger
        assert snap.pending_session.amount == Decimal(4)
        assert snap.effective_available.amount == Decimal(6)


def test_a_guard_made_again_sees_holds_of_its_evicted_predecessor() -> None:
    # A hold taken on a guard the pool no longer hands out (another thread evicted it between
    # get and reserve) still counts: the money lives in the shared ledger, keyed by session.
    clock = Clock()
    pool, _ = make(clock, maxsize=1, idle=10)
    old = pool.get(ARN, sid(1))
    clock.advance(11)  # idle: evicted
    new = pool.get(ARN, sid(1))
    assert new is not old
    hold = old.reserve("7")
    assert new.check("4").allowed is False
    assert pool.get(ARN, sid(1)) in (old, new)
    hold.release()
    assert new.check("4").allowed is True


def test_pinned_guard_survives_idle_and_expiry_until_its_holds_settle() -> None:
    clock = Clock()
    pool, _ = make(clock, idle=60)
    guard = pool.get(ARN, sid(1))
    hold = guard.reserve("1")
    clock.advance(600)
    assert pool.get(ARN, sid(1)) is guard
    assert len(pool) == 1
    hold.commit()
    assert pool.pinned == 0
    assert pool.get(ARN, sid(1)) is guard  # back in the cache for another idle period
    clock.advance(61)
    assert pool.get(ARN, sid(1)) is not guard


def test_a_hold_whose_lease_lapsed_pins_no_more() -> None:
    clock = Clock()
    pool, _ = make(clock, idle=60, hold_lease=120)
    guard = pool.get(ARN, sid(1))
    guard.reserve("1")  # never settled
    clock.advance(119)
    assert pool.pinned == 1
    clock.advance(1)
    assert pool.pinned == 0  # the ledger counts it spent; nothing in flight
    assert pool.get(ARN, sid(1)) is guard  # kept for an idle period after the lapse
    clock.advance(61)
    assert pool.get(ARN, sid(1)) is not guard


def test_a_hold_with_its_own_lease_pins_for_that_lease() -> None:
    # A hold awaiting approval leases for the approval timeout, not the pool's hold_lease.
    clock = Clock()
    pool, _ = make(clock, idle=60, hold_lease=120)
    guard = pool.get(ARN, sid(1))
    hold = guard.reserve("1", lease=600)
    clock.advance(300)
    assert pool.pinned == 1
    assert pool.get(ARN, sid(1)) is guard
    hold.release()
    assert pool.pinned == 0


def test_idle_guard_is_evicted_and_each_get_restarts_its_idle_time() -> None:
    clock = Clock()
    pool, _ = make(clock, idle=30)
    guard = pool.get(ARN, sid(1))
    for _ in range(5):
        clock.advance(29)
        assert pool.get(ARN, sid(1)) is guard
    clock.advance(30)
    assert len(pool) == 0
    assert pool.get(ARN, sid(1)) is not guard


def test_guard_is_evicted_at_its_session_expiry() -> None:
    clock = Clock()
    # Created 50 min ago with a 60 min expiry: 10 minutes left.
    sessions = Sessions(Session(created_at=T0 - timedelta(minutes=50), expiry_minutes=60))
    pool = GuardPool(client=sessions, idle=3600, **clock.kwargs)
    guard = pool.get(ARN, sid(1))
    guard.check("1")
    assert pool.get(ARN, sid(1)) is guard  # the expiry is known once read
    clock.advance(599)
    assert pool.get(ARN, sid(1)) is guard
    clock.advance(1)
    assert len(pool) == 0
    assert pool.get(ARN, sid(1)) is not guard


def test_least_recently_used_goes_first() -> None:
    pool, _ = make(Clock(), maxsize=2)
    a = pool.get(ARN, sid(1))
    b = pool.get(ARN, sid(2))
    assert pool.get(ARN, sid(1)) is a
    pool.get(ARN, sid(3))  # evicts 2, used least recently
    assert pool.get(ARN, sid(1)) is a
    assert pool.get(ARN, sid(2)) is not b


def test_a_burst_of_50_threads_reads_a_session_once() -> None:
    pool, sessions = make(Clock())
    barrier = threading.Barrier(50)
    guards: list[SpendGuard] = []

    def first_request() -> None:
        barrier.wait()
        guard = pool.get(ARN, sid(1), user_id="alice")
        guard.check("1")
        guards.append(guard)

    threads = [threading.Thread(target=first_request) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(guards) == 50
    assert len({id(guard) for guard in guards}) == 1
    assert sessions.calls == {sid(1): 1}


def test_a_burst_of_50_tasks_reads_a_session_once() -> None:
    pool, sessions = make(Clock())

    async def first_request() -> SpendGuard:
        guard = pool.get(ARN, sid(1), user_id="alice")
        await guard.acheck("1")
        return guard

    async def burst() -> list[SpendGuard]:
        return await asyncio.gather(*(first_request() for _ in range(50)))

    guards = asyncio.run(burst())
    assert len({id(guard) for guard in guards}) == 1
    assert sessions.calls == {sid(1): 1}


def test_aget_reads_the_session_once_for_many_tasks() -> None:
    pool, sessions = make(Clock())

    async def burst() -> list[SpendGuard]:
        return await asyncio.gather(
            *(pool.aget(ARN, sid(n % 10), user_id="alice") for n in range(100))
        )

    guards = asyncio.run(burst())
    assert len({id(guard) for guard in guards}) == 10
    assert sessions.calls == {sid(n): 1 for n in range(10)}


def test_default_client_is_made_once_with_a_bounded_connection_pool() -> None:
    pool = GuardPool(region_name="us-east-1", max_pool_connections=7)
    client = pool._client._connect()
    assert pool._client._connect() is client
    assert client.meta.config.max_pool_connections == 7
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.read_timeout == 1.0  # the guard's own defaults stay


@pytest.mark.parametrize(
    ("args", "kwargs", "argument"),
    [
        ((ARN, ""), {}, "payment_session_id"),
        ((ARN, None), {}, "payment_session_id"),
        (("", sid(1)), {}, "payment_manager_arn"),
        ((ARN, sid(1)), {"user_id": ""}, "user_id"),
        ((ARN, sid(1)), {"user_id": 7}, "user_id"),
        ((ARN, sid(1)), {"agent_name": " "}, "agent_name"),
    ],
)
def test_bad_get_arguments_change_nothing(
    args: tuple[Any, ...], kwargs: dict[str, Any], argument: str
) -> None:
    pool, sessions = make(Clock())
    kept = pool.get(ARN, sid(1))
    with pytest.raises(InvalidArgumentError) as info:
        pool.get(*args, **kwargs)
    assert info.value.argument == argument
    assert len(pool) == 1
    assert pool.get(ARN, sid(1)) is kept
    assert sessions.calls == {}


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"maxsize": 0}, "maxsize"),
        ({"maxsize": True}, "maxsize"),
        ({"idle": 0}, "idle"),
        ({"idle": float("nan")}, "idle"),
        ({"max_pool_connections": 0}, "max_pool_connections"),
        ({"max_pool_connections": 2.5}, "max_pool_connections"),
        ({"settlement": "later"}, "settlement"),
        ({"hold_lease": -1}, "hold_lease"),
        ({"ledger": object()}, "ledger"),
        ({"freshness": 30}, "freshness"),
        ({"timer": 5}, "timer"),
        ({"client": object()}, "client"),
        ({"client": Sessions(), "region_name": "us-east-1"}, "client"),
        ({"boto3_session": object()}, "boto3_session"),
        ({"mode": "loud"}, "mode"),
    ],
)
def test_bad_pool_arguments_are_refused(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        GuardPool(**kwargs)
    assert info.value.argument == argument


def test_guards_take_the_pool_defaults() -> None:
    clock = Clock()
    pool, _ = make(clock, settlement="external", freshness=Freshness(min_ttl=5), hold_lease=60)
    guard = pool.get(ARN, sid(1))
    hold = guard.reserve("1")
    assert hold.settlement == "external"
    hold.commit()
    assert guard.snapshot().external.amount == Decimal(1)


def test_guards_take_the_pool_policies_and_they_survive_eviction() -> None:
    from spendguard.policies import Policies  # noqa: PLC0415

    clock = Clock()
    pool, _ = make(clock, idle=10, policies=Policies(per_call_max="2"))
    guard = pool.get(ARN, sid(1))
    with pytest.raises(BudgetExceededError) as info:
        guard.reserve("3")
    assert info.value.rule == "per_call_max"
    guard.reserve("2").commit()
    clock.advance(11)
    again = pool.get(ARN, sid(1))
    assert again is not guard
    assert again.snapshot().pending_session.amount == Decimal(2)
