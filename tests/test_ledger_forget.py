"""The in-memory ledger drops a session's book once the session has expired, never earlier,
never with a hold open, never while frozen; GuardPool tells it when it evicts a guard."""

from __future__ import annotations

from decimal import Decimal

import pytest
from support import ARN, Clock
from test_pool import make, sid

from spendguard import BudgetExceededError, InMemoryLedger
from spendguard.ledger import ServerView

KEY = "arn:aws:test/payment-session-1"
VIEW = ServerView(available=Decimal("10"), spent=Decimal("0"), updated_at=0.0)
#: The test sessions (support.Session) expire 50 minutes after the clock's start.
PAST_EXPIRY = 3600.0


def book_key(n: int) -> str:
    return f"{ARN}/{sid(n)}"


def test_cycling_10000_sessions_through_a_small_pool_keeps_o_maxsize_books_once_expired() -> None:
    clock = Clock()
    ledger = InMemoryLedger()
    pool, _ = make(clock, ledger=ledger, maxsize=8)
    for n in range(10_000):
        guard = pool.get(ARN, sid(n), user_id="alice")
        if n % 2:
            guard.reserve("0.01").commit()
        else:
            guard.check("0.01")
    # Live sessions keep their books after eviction: what they hold still matters.
    assert ledger.books == 10_000
    assert len(pool) == 8
    clock.advance(PAST_EXPIRY)
    assert len(pool) == 0  # the cache expires the last 8 guards, which retires them too
    assert ledger.books == 0


def test_a_live_session_with_external_charges_keeps_its_book_after_eviction() -> None:
    clock = Clock()
    ledger = InMemoryLedger()
    pool, _ = make(clock, ledger=ledger, maxsize=1)
    first = pool.get(ARN, sid(1))
    first.reserve("3", settlement="external").commit()
    pool.get(ARN, sid(2)).check("1")  # evicts the first guard
    again = pool.get(ARN, sid(1))  # evicts the second
    assert again is not first
    assert ledger.books == 2
    assert again.snapshot().external.amount == Decimal("3")
    with pytest.raises(BudgetExceededError):
        again.reserve("8")  # 10 available, 3 spent outside the session
    clock.advance(PAST_EXPIRY)
    assert len(pool) == 0
    assert ledger.books == 0


def test_a_frozen_session_keeps_its_book_until_unfrozen() -> None:
    clock = Clock()
    ledger = InMemoryLedger()
    pool, _ = make(clock, ledger=ledger, maxsize=1)
    pool.get(ARN, sid(1)).reserve("3", settlement="external").commit()
    ledger.set_frozen(book_key(1), True)
    pool.get(ARN, sid(2)).check("1")  # evicts the frozen session's guard
    clock.advance(PAST_EXPIRY)
    assert len(pool) == 0
    assert ledger.books == 1
    assert ledger.is_frozen(book_key(1))
    assert ledger.totals(book_key(1), None, clock.mono).external == Decimal("3")
    assert ledger.set_frozen(book_key(1), False)
    assert not ledger.forget_expired(book_key(2), 0.0, clock.mono)  # no book: nothing to do
    assert ledger.books == 0  # the sweep of that call dropped the unfrozen book


def test_forget_expired_waits_for_the_expiry() -> None:
    ledger = InMemoryLedger()
    ledger.totals(KEY, VIEW, 0.0)
    assert not ledger.forget_expired(KEY, 100.0, 50.0)
    assert ledger.books == 1
    ledger.totals("other", VIEW, 99.0)  # a sweep before the expiry drops nothing
    assert ledger.books == 2
    ledger.totals("other", VIEW, 100.0)  # any call after it drops the book
    assert ledger.books == 1
    assert ledger.totals(KEY, None, 100.0).available == 0  # no book


def test_a_later_expiry_moves_the_drop() -> None:
    ledger = InMemoryLedger()
    ledger.totals(KEY, VIEW, 0.0)
    assert not ledger.forget_expired(KEY, 100.0, 0.0)
    assert not ledger.forget_expired(KEY, 150.0, 0.0)
    assert not ledger.forget_expired(KEY, 120.0, 110.0)  # an earlier one never shortens it
    assert ledger.forget_expired(KEY, 150.0, 150.0)


def test_a_hold_in_flight_keeps_the_book_past_the_expiry() -> None:
    ledger = InMemoryLedger()
    granted, _ = ledger.reserve(KEY, "h1", Decimal("4"), VIEW, "session", 900.0, 0.0)
    assert granted
    assert not ledger.forget_expired(KEY, 10.0, 20.0)
    ledger.totals("other", VIEW, 500.0)
    assert ledger.holds(KEY, 500.0)[0].hold_id == "h1"
    assert ledger.commit(KEY, "h1", Decimal("4"), 0.0, 500.0)
    assert ledger.totals(KEY, None, 500.0).unreflected == Decimal("4")
    # The settled hold is remembered (a retried commit answers as the first did) for the
    # hold's lease, then the book goes.
    ledger.totals("other", VIEW, 1399.0)
    assert ledger.commit(KEY, "h1", Decimal("4"), 0.0, 1399.0)
    assert not ledger.forget_expired(KEY, 10.0, 1399.0)
    assert ledger.forget_expired(KEY, 10.0, 1400.0)


def test_a_hold_that_lapses_after_the_expiry_is_counted_until_forgotten() -> None:
    ledger = InMemoryLedger()
    ledger.reserve(KEY, "h1", Decimal("4"), VIEW, "session", 60.0, 0.0)
    assert not ledger.forget_expired(KEY, 10.0, 30.0)
    assert ledger.totals(KEY, None, 61.0).external == Decimal("4")  # lapsed: spent
    assert not ledger.commit(KEY, "h1", Decimal("4"), 0.0, 61.0)
    assert not ledger.forget_expired(KEY, 10.0, 120.0)  # the lapse is remembered a minute
    assert ledger.forget_expired(KEY, 10.0, 121.0)


def test_a_pinned_guard_keeps_its_book_past_the_expiry_until_its_hold_settles() -> None:
    clock = Clock()
    ledger = InMemoryLedger()
    pool, _ = make(clock, ledger=ledger, maxsize=1)
    clock.advance(2900.0)  # the session expires in 100 s
    hold = pool.get(ARN, sid(1)).reserve("4")  # leased for 900 s
    clock.advance(200.0)
    assert pool.pinned == 1
    assert ledger.books == 1
    hold.commit()  # after the expiry, still committed, not lapsed
    assert ledger.totals(book_key(1), None, clock.mono).unreflected == Decimal("4")
    assert pool.pinned == 0
    clock.advance(899.0)  # the settled hold is remembered for its lease
    assert len(pool) == 0  # the guard's idle time ran out: retired
    assert ledger.books == 1
    clock.advance(1.0)
    ledger.totals("other", None, clock.mono)  # any call sweeps
    assert ledger.books == 0
