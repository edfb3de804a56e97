"""Accounting at the edges: clocks that step, readings stamped in the future, a Date header
that lags the body, charges the newest reading already shows, cancelled reservations,
failures shared by waiters, hostile numbers and the caller's decimal context."""

from __future__ import annotations

import asyncio
import decimal
import sys
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from conftest import PaymentSessionFixture
from support import ARN, SID, T0, Clock, ScriptedClient, SequenceClient, Session

from spendguard import (
    Hold,
    InMemoryLedger,
    InvalidAmountError,
    Money,
    SessionExpiredError,
    SessionUnavailableError,
    SpendGuard,
)
from spendguard._ledger import LedgerTotals, ServerView, Settlement
from spendguard._session import parse_session
from spendguard.pricing import Blocked, Pricing, admit, from_argument


def guard_on(session: Session, clock: Clock, **kwargs: Any) -> tuple[SpendGuard, ScriptedClient]:
    client = ScriptedClient(session, date=datetime.fromtimestamp(clock.now, tz=T0.tzinfo))
    return SpendGuard(ARN, SID, client=client, **clock.kwargs, **kwargs), client


def tick_date(client: ScriptedClient, clock: Clock) -> None:
    """The server's Date follows true time (what the monotonic clock measured), not the wall."""
    client.date = T0 + timedelta(seconds=clock.mono - Clock().mono)


# -- 5. durations run on the monotonic clock -----------------------------------------------


def test_wall_clock_stepping_back_does_not_keep_a_reading_fresh() -> None:
    clock = Clock()
    guard, client = guard_on(Session(updated_at=T0 - timedelta(hours=1)), clock)  # 30 s life
    guard.check("1")
    clock.step(-3600)  # NTP steps the host back an hour...
    clock.advance(30.5)  # ...and 30 s pass
    guard.check("1")
    assert client.calls == 2


def test_wall_clock_stepping_back_does_not_admit_on_an_expired_session() -> None:
    # Expires 60 s after T0 in the server's clock (which the Date header tells).
    session = Session(created_at=T0 - timedelta(minutes=59), expiry_minutes=60)
    clock = Clock()
    guard, client = guard_on(session, clock)
    guard.reserve("1").release()
    clock.step(-3600)
    clock.advance(45)  # inside the 30 s expiry margin, whatever the wall clock says
    tick_date(client, clock)
    with pytest.raises(SessionExpiredError):
        guard.reserve("1")
    assert not guard.check("1").allowed


def test_wall_clock_stepping_forward_does_not_lapse_a_live_hold() -> None:
    clock = Clock()
    guard, _ = guard_on(Session(available="1.00"), clock, hold_lease=60)
    hold = guard.reserve("0.40")
    clock.step(3600)
    snap = guard.snapshot()
    assert snap.held == Money.of("0.40")
    assert snap.external == Money.zero()
    hold.release()
    assert guard.snapshot().effective_available == Money.of("1.00")


def test_a_hold_lapses_after_its_lease_on_the_monotonic_clock() -> None:
    clock = Clock()
    guard, _ = guard_on(Session(available="1.00"), clock, hold_lease=60)
    guard.reserve("0.40")
    clock.step(-7200)
    clock.advance(61)
    snap = guard.snapshot()
    assert snap.held == Money.zero()
    assert snap.external == Money.of("0.40")


# -- 6. a reading stamped in the future is replaced by a later response ----------------------


def test_a_reading_from_a_clock_that_ran_ahead_does_not_stick() -> None:
    clock = Clock()
    ahead = T0 + timedelta(hours=1)
    session = Session(available="5.00", updated_at=ahead, expiry_minutes=24 * 60)
    client = ScriptedClient(session, date=ahead)  # the server clock ran an hour ahead
    guard = SpendGuard(ARN, SID, client=client, **clock.kwargs)
    assert guard.check("5.00").allowed
    # The server's clock is corrected; meanwhile most of the budget was spent.
    clock.advance(60)
    session.available = "0.99"
    session.updated_at = T0 + timedelta(seconds=59)
    client.date = T0 + timedelta(seconds=60)
    guard.refresh()
    snap = guard.snapshot()
    assert snap.server_available == Money.of("0.99")
    assert snap.updated_at == T0 + timedelta(seconds=59)
    assert not guard.check("1.00").allowed


def test_a_lagging_replica_still_cannot_roll_a_correct_reading_back() -> None:
    clock = Clock()
    session = Session(available="4.00", updated_at=T0 - timedelta(seconds=1))
    guard, client = guard_on(session, clock)
    assert guard.snapshot().server_available == Money.of("4.00")
    clock.advance(5)
    tick_date(client, clock)
    session.available, session.updated_at = "9.00", T0 - timedelta(seconds=30)
    guard.refresh()
    assert guard.snapshot().server_available == Money.of("4.00")


# -- 7. a Date header that lags the body is not trusted -------------------------------------


def test_a_date_header_lagging_the_body_cannot_make_an_expired_session_valid() -> None:
    # Created 70 min ago with a 60 min life: expired 10 min ago. updatedAt is now.
    session = Session(created_at=T0 - timedelta(minutes=70), updated_at=T0, expiry_minutes=60)
    clock = Clock()
    client = ScriptedClient(session, date=T0 - timedelta(minutes=65))
    guard = SpendGuard(ARN, SID, client=client, **clock.kwargs)
    with pytest.raises(SessionExpiredError):
        guard.reserve("0.01")
    assert not guard.check("0.01").allowed
    assert guard.snapshot().expired


@pytest.mark.parametrize(("lag", "trusted"), [(0.0, True), (2.9, True), (3.5, False)])
def test_date_and_body_disagree_only_beyond_resolution_plus_tolerance(
    lag: float, trusted: bool
) -> None:
    body = Session(updated_at=T0).response()
    date = T0.timestamp() - lag
    snap = parse_session(
        body, session_id=SID, currency="USD", fetched_at=date, server_date=date, skew_tolerance=2
    )
    assert (snap.view.read_at is not None) is trusted
    assert snap.server_time >= T0.timestamp()


# -- 8. a new session charge is checked against the newest reading already seen ---------------


def session_guard(
    available: str = "10.00",
) -> tuple[SpendGuard, Session, Clock, ScriptedClient]:
    clock = Clock()
    session = Session(available=available, updated_at=T0 - timedelta(minutes=5))
    guard, client = guard_on(session, clock, settlement="session")
    return guard, session, clock, client


def test_a_charge_committed_after_a_refresh_that_showed_it_is_not_counted_twice() -> None:
    guard, session, clock, client = session_guard("5.00")
    guard.snapshot()
    hold = guard.reserve("4.00")
    session.available, session.updated_at = "1.00", T0 + timedelta(seconds=1)  # paid
    clock.advance(2)
    tick_date(client, clock)
    guard.refresh()  # already shows the payment...
    assert guard.snapshot().server_available == Money.of("1.00")  # ...and the ledger saw it
    clock.advance(1)
    hold.commit()  # no receipt
    snap = guard.snapshot()
    assert snap.pending_session == Money.zero()
    assert snap.effective_available == Money.of("1.00")
    assert guard.check("1.00").allowed


def test_a_commit_long_after_paying_without_a_receipt_is_reconciled() -> None:
    guard, session, clock, client = session_guard("5.00")
    hold = guard.reserve("4.00")
    session.available, session.updated_at = "1.00", T0 + timedelta(seconds=1)
    clock.advance(10)  # the decorator and adapters commit when the tool returns
    hold.commit()
    clock.advance(30)
    tick_date(client, clock)
    guard.refresh()
    snap = guard.snapshot()
    assert snap.pending_session == Money.zero()
    assert snap.effective_available == Money.of("1.00")


def test_growth_before_the_hold_still_drops_nothing() -> None:
    guard, session, clock, client = session_guard()
    guard.snapshot()
    session.available, session.updated_at = "9.00", T0 + timedelta(seconds=1)  # someone else
    clock.advance(60)
    tick_date(client, clock)
    hold = guard.reserve("1.00")
    hold.commit()
    guard.refresh()
    snap = guard.snapshot()
    assert snap.pending_session == Money.of("1.00")
    assert snap.effective_available == Money.of("8.00")


# -- 3. a cancelled reservation leaves nothing held --------------------------------------------


class GatedLedger(InMemoryLedger):
    """A shared-ledger stand-in: reserve waits for the test to open a gate (a slow network)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.granted = 0
        self.released = threading.Semaphore(0)

    def reserve(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
        *,
        tool: str | None = None,
    ) -> tuple[bool, LedgerTotals]:
        self.entered.set()
        assert self.gate.wait(10)
        result = super().reserve(
            key, hold_id, amount, view, settlement, lease_seconds, now, tool=tool
        )
        self.granted += result[0]
        return result

    def release(self, key: str, hold_id: str, now: float) -> bool:
        found = super().release(key, hold_id, now)
        self.released.release()
        return found


def gated_guard() -> tuple[SpendGuard, GatedLedger]:
    ledger = GatedLedger()
    guard = SpendGuard(ARN, SID, client=ScriptedClient(Session()), ledger=ledger, **Clock().kwargs)
    guard.snapshot()  # a warm cache: the reservation waits on the ledger alone
    return guard, ledger


def test_cancelled_areserve_on_a_shared_ledger_leaves_nothing_held() -> None:
    guard, ledger = gated_guard()

    async def main() -> None:
        for _ in range(20):
            ledger.gate.clear()
            ledger.entered.clear()
            pending = asyncio.ensure_future(asyncio.wait_for(guard.areserve("0.10"), timeout=0.05))
            assert await asyncio.to_thread(ledger.entered.wait, 10)
            with pytest.raises(asyncio.TimeoutError):  # the builtin TimeoutError from 3.11 on
                await pending  # wait_for gave up while the worker thread waits on the ledger
            ledger.gate.set()  # the worker now takes a hold that nobody awaits
            assert await asyncio.to_thread(ledger.released.acquire, True, 10)

    asyncio.run(main())
    snap = guard.snapshot()
    assert ledger.granted == 20
    assert snap.held == Money.zero()
    assert snap.effective_available == Money.of("10.00")


def test_cancelled_areserve_after_the_grant_releases_it_too() -> None:
    guard, ledger = gated_guard()
    ledger.gate.set()

    async def main() -> int:
        async def reserve() -> Hold:
            return await guard.areserve("0.10")

        tasks = [asyncio.create_task(reserve()) for _ in range(20)]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        kept = [h for h in results if isinstance(h, Hold)]
        for hold in kept:
            hold.commit()
        return len(kept)

    kept = asyncio.run(main())  # returns once every worker thread has finished
    for _ in range(ledger.granted - kept):
        assert ledger.released.acquire(timeout=10)
    snap = guard.snapshot()
    assert 0 < kept < 20
    assert snap.held == Money.zero()
    assert snap.effective_available.amount == Decimal("10.00") - Decimal("0.10") * kept


# -- 9. waiters of one failed refill share its failure -----------------------------------------


class HangingClient:
    """A service that hangs until the test lets it fail; counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.fail = threading.Event()

    def get_payment_session(self, **kwargs: Any) -> Any:
        self.calls += 1
        self.entered.set()
        assert self.fail.wait(10)
        raise TimeoutError("read timed out")


def waiting_on_the_flight(threads: list[threading.Thread]) -> int:
    frames = sys._current_frames()
    waiting = 0
    for thread in threads:
        frame = frames.get(thread.ident or -1)
        while frame is not None:
            if frame.f_code.co_name == "wait" and "_cache" in frame.f_code.co_filename:
                waiting += 1
                break
            frame = frame.f_back
    return waiting


def test_callers_waiting_on_a_hanging_service_share_its_failure() -> None:
    client = HangingClient()
    guard = SpendGuard(ARN, SID, client=client)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            guard.check("1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    assert client.entered.wait(10)
    deadline = time.monotonic() + 10
    while waiting_on_the_flight(threads) < 9 and time.monotonic() < deadline:
        client.entered.wait(0.01)
    assert waiting_on_the_flight(threads) == 9
    client.fail.set()
    for thread in threads:
        thread.join(10)
    assert client.calls == 1
    assert len(errors) == 10
    assert all(isinstance(e, SessionUnavailableError) for e in errors)


def test_the_next_caller_after_a_failure_tries_again() -> None:
    client = SequenceClient(TimeoutError("down"), Session().response())
    guard = SpendGuard(ARN, SID, client=client, **Clock().kwargs)
    with pytest.raises(SessionUnavailableError):
        guard.check("1")
    assert guard.check("1").allowed


# -- 10. hostile numbers from a model become blocks --------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"amount": 1e99999999999999999999}',
        '{"amount": -1e-99999999999999999999}',
        '{"amount": 1' + "0" * 5000 + "}",
        '{"amount": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
)
def test_hostile_json_numbers_block_with_a_clear_message(raw: str) -> None:
    guard = SpendGuard(ARN, SID, client=ScriptedClient(Session()), **Clock().kwargs)
    outcome = admit(guard, Pricing({"buy": from_argument("amount")}), "buy", raw)
    assert isinstance(outcome, Blocked)
    assert "Do not retry" in outcome.message
    assert guard.snapshot().held == Money.zero()


# -- 11. the caller's decimal context has no say --------------------------------------------


def test_reading_the_session_ignores_the_callers_decimal_context(
    payment_session: PaymentSessionFixture,
) -> None:
    guard = payment_session.guard()
    with decimal.localcontext(decimal.Context(prec=1, traps=[decimal.Inexact, decimal.Rounded])):
        assert guard.check("9.99").allowed
        with guard.reserve("0.25"):
            pass
        guard.refresh()
    assert guard.snapshot().effective_available == Money.of("9.75")


def test_async_paths_ignore_the_callers_decimal_context(
    payment_session: PaymentSessionFixture,
) -> None:
    guard = payment_session.guard()

    async def main() -> bool:
        decimal.setcontext(decimal.Context(prec=1, traps=[decimal.Rounded]))
        return (await guard.acheck("9.99")).allowed

    assert asyncio.run(main())


def test_atomic_amounts_ignore_the_callers_decimal_context() -> None:
    with decimal.localcontext(decimal.Context(prec=2, traps=[decimal.Rounded, decimal.Inexact])):
        assert Money.from_atomic(123_456_789, 6) == Money.of("123.456789")
        assert Money.from_atomic("5000", 6).amount == Decimal("0.005")


def test_atomic_units_too_long_to_print_are_a_clear_error() -> None:
    with pytest.raises(InvalidAmountError, match="out of range"):
        Money.from_atomic(10**5000, 6)
