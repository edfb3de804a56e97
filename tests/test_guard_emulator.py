"""The guard end to end: real boto3 over HTTP against the local AgentCore payments emulator."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from botocore.config import Config
from conftest import PaymentSessionFixture

from spendguard import (
    BudgetExceededError,
    Money,
    SessionAccessDeniedError,
    SessionExpiredError,
    SessionNotFoundError,
    SessionUnavailableError,
    SpendGuard,
)
from spendguard.emulator import PaymentsEmulator

NewSession = Callable[..., PaymentSessionFixture]


def test_guard_reads_the_served_session(new_payment_session: NewSession) -> None:
    s = new_payment_session("2.50")
    snap = s.guard().snapshot()
    assert snap.max_spend == Money.of("2.50")
    assert snap.server_available == Money.of("2.50")
    assert snap.effective_available == Money.of("2.50")
    assert not snap.expired


def test_paid_calls_through_the_session_reconcile_with_the_server(
    new_payment_session: NewSession,
) -> None:
    s = new_payment_session("1.00")
    guard = s.guard(settlement="session")
    for _ in range(3):
        with guard.reserve("0.25") as hold:
            receipt = s.pay("0.25")
            hold.commit(receipt_time=receipt["updatedAt"])
    with pytest.raises(BudgetExceededError):
        guard.reserve("0.26")
    assert s.available() == Decimal("0.25")
    guard.refresh()
    snap = guard.snapshot()
    assert snap.pending_session == Money.zero()
    assert snap.server_available == Money.of("0.25")
    assert snap.effective_available == Money.of("0.25")


def test_spending_by_another_client_is_seen_after_refresh(new_payment_session: NewSession) -> None:
    s = new_payment_session("1.00")
    guard = s.guard()
    assert guard.check("0.90").allowed
    s.emulator.spend(s.session_id, "0.50")
    guard.refresh()
    assert not guard.check("0.90").allowed
    assert guard.check("0.50").allowed


def test_concurrent_threads_never_overspend_a_served_session(
    new_payment_session: NewSession,
) -> None:
    s = new_payment_session("1.00")
    guard = s.guard(settlement="session")
    barrier = threading.Barrier(16)
    paid: list[str] = []

    def work() -> None:
        barrier.wait()
        try:
            with guard.reserve("0.10") as hold:
                receipt = s.pay("0.10")
                hold.commit(receipt_time=receipt["updatedAt"])
                paid.append(receipt["processPaymentId"])
        except BudgetExceededError:
            pass

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paid) == 10
    assert s.available() == Decimal("0.00")


def test_server_clock_past_expiry_blocks(new_payment_session: NewSession) -> None:
    s = new_payment_session("1.00", expiry_minutes=15)
    s.emulator.advance(15 * 60)  # the server's clock (and its Date header) moves on
    guard = s.guard()
    with pytest.raises(SessionExpiredError):
        guard.reserve("0.01")
    assert guard.snapshot().expired


def test_another_user_is_denied(new_payment_session: NewSession) -> None:
    s = new_payment_session("1.00", user_id="alice")
    guard = SpendGuard(s.arn, s.session_id, user_id="mallory", client=s.client)
    with pytest.raises(SessionAccessDeniedError):
        guard.check("0.01")


def test_unknown_session_is_not_found(payment_session: PaymentSessionFixture) -> None:
    s = payment_session
    guard = SpendGuard(s.arn, "payment-session-000000000000000", user_id=s.user_id, client=s.client)
    with pytest.raises(SessionNotFoundError):
        guard.check("0.01")


def test_throttling_is_retried_by_botocore(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    emulator.faults.fail("GetPaymentSession", "ThrottlingException", times=2)
    client = emulator.client(Config(retries={"mode": "standard", "total_max_attempts": 4}))
    before = emulator.faults.calls("GetPaymentSession")
    assert payment_session.guard(client=client).check("1.00").allowed
    assert emulator.faults.calls("GetPaymentSession") - before == 3


def test_persistent_failure_fails_closed_then_recovers(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(Config(retries={"mode": "standard", "total_max_attempts": 2}))
    guard = payment_session.guard(client=client)
    emulator.faults.fail("GetPaymentSession", "InternalServerException", times=2)
    with pytest.raises(SessionUnavailableError) as info:
        guard.reserve("0.01")
    assert info.value.__cause__ is not None
    guard.reserve("0.01").release()


def test_dropped_connection_fails_closed(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture
) -> None:
    client = emulator.client(Config(retries={"mode": "standard", "total_max_attempts": 1}))
    emulator.faults.drop("GetPaymentSession")
    with pytest.raises(SessionUnavailableError):
        payment_session.guard(client=client).check("0.01")
