"""The cached session: lifetime tied to updatedAt and expiry, monotonic, single-flight."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from conftest import PaymentSessionFixture
from freezegun import freeze_time
from support import ARN, SID, T0, Clock, ScriptedClient, Session

from spendguard import Freshness, SessionExpiredError, SpendGuard
from spendguard.emulator import PaymentsEmulator


def make(session: Session, clock: Clock, **kwargs: object) -> tuple[SpendGuard, ScriptedClient]:
    c = ScriptedClient(session)
    return SpendGuard(ARN, SID, client=c, **clock.kwargs, **kwargs), c  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("age", "ttl"),
    [(0, 1.0), (5, 1.0), (10, 1.0), (100, 10.0), (250, 25.0), (3000, 30.0)],
)
def test_lifetime_is_a_tenth_of_the_age_clamped(age: float, ttl: float) -> None:
    session = Session(updated_at=T0 - timedelta(seconds=age))
    clock = Clock()
    guard, c = make(session, clock)
    guard.check("1")
    clock.advance(ttl - 0.01)
    guard.check("1")
    assert c.calls == 1
    clock.advance(0.02)
    guard.check("1")
    assert c.calls == 2


def test_lifetime_never_runs_past_expiry_minus_margin() -> None:
    # Updated an hour ago (30 s lifetime), but the session expires in 40 s: margin is 30 s.
    session = Session(
        created_at=T0 - timedelta(minutes=60) + timedelta(seconds=40),
        updated_at=T0 - timedelta(hours=1),
        expiry_minutes=60,
    )
    clock = Clock()
    guard, c = make(session, clock)
    guard.check("1")
    clock.advance(9.9)
    guard.check("1")
    assert c.calls == 1
    clock.advance(0.2)
    with pytest.raises(SessionExpiredError):
        guard.reserve("1")
    assert c.calls == 2


def test_expired_session_blocks_every_charge() -> None:
    session = Session(created_at=T0 - timedelta(minutes=61), expiry_minutes=60)
    guard, _ = make(session, Clock())
    with pytest.raises(SessionExpiredError) as info:
        guard.reserve("0.01")
    assert info.value.expires_at == T0 - timedelta(minutes=1)
    decision = guard.check("0.01")
    assert not decision.allowed
    assert "expired" in decision.reason
    assert guard.snapshot().expired
    assert guard.snapshot().effective_available.amount == 0


def test_freezegun_moves_the_default_clock() -> None:
    session = Session(updated_at=T0 - timedelta(seconds=100))  # 10 s lifetime
    c = ScriptedClient(session)
    with freeze_time(T0) as frozen:
        guard = SpendGuard(ARN, SID, client=c)
        guard.check("1")
        frozen.tick(9)
        guard.check("1")
        assert c.calls == 1
        frozen.tick(2)
        guard.check("1")
        assert c.calls == 2
        frozen.tick(timedelta(minutes=50))
        with pytest.raises(SessionExpiredError):
            guard.reserve("1")


def test_older_snapshot_never_replaces_a_newer_one() -> None:
    session = Session(available="4.00", updated_at=T0 - timedelta(seconds=1))
    clock = Clock()
    guard, _ = make(session, clock)
    assert guard.snapshot().server_available.amount == 4
    # A lagging replica answers with an older state that had more money.
    session.available = "9.00"
    session.updated_at = T0 - timedelta(seconds=30)
    guard.refresh()
    assert guard.snapshot().server_available.amount == 4
    session.available = "3.00"
    session.updated_at = T0
    guard.refresh()
    assert guard.snapshot().server_available.amount == 3


def test_skew_from_the_date_header_moves_the_server_clock() -> None:
    # The server clock runs 20 minutes ahead: expiry must be judged in its clock.
    session = Session(created_at=T0 - timedelta(minutes=45), expiry_minutes=60)
    c = ScriptedClient(session, date=T0 + timedelta(minutes=20))
    guard = SpendGuard(ARN, SID, client=c, **Clock().kwargs)
    with pytest.raises(SessionExpiredError):
        guard.reserve("1")
    c.date = T0
    guard2 = SpendGuard(ARN, SID, client=c, **Clock().kwargs)
    guard2.reserve("1").release()


def test_sixty_four_threads_missing_together_fetch_once(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    s = payment_session
    guard = SpendGuard(s.arn, s.session_id, user_id=s.user_id, client=s.client)
    emulator.faults.delay("GetPaymentSession", 0.05)  # a slow read: callers pile up behind it
    before = emulator.faults.calls("GetPaymentSession")
    barrier = threading.Barrier(64)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            guard.check("0.01")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert emulator.faults.calls("GetPaymentSession") - before == 1


def test_many_tasks_missing_together_fetch_once(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    s = payment_session
    guard = SpendGuard(s.arn, s.session_id, user_id=s.user_id, client=s.client)
    emulator.faults.delay("GetPaymentSession", 0.05)
    before = emulator.faults.calls("GetPaymentSession")

    async def main() -> None:
        await asyncio.gather(*(guard.acheck("0.01") for _ in range(32)))

    asyncio.run(main())
    assert emulator.faults.calls("GetPaymentSession") - before == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fraction": -0.1},
        {"min_ttl": float("nan")},
        {"max_ttl": float("inf")},
        {"min_ttl": 10, "max_ttl": 5},
        {"expiry_margin": True},
    ],
)
def test_bad_freshness_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Freshness(**kwargs)
