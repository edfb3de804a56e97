"""Local commits are dropped only when a fresh session shows the server absorbed them."""

from __future__ import annotations

from datetime import timedelta

from support import ARN, SID, T0, Clock, ScriptedClient, Session

from spendguard import Money, SpendGuard


def setup(**kwargs: object) -> tuple[SpendGuard, Session, Clock]:
    session = Session(available="10.00", updated_at=T0 - timedelta(minutes=5))
    clock = Clock()
    guard = SpendGuard(
        ARN, SID, client=ScriptedClient(session), **clock.kwargs, settlement="session", **kwargs
    )  # type: ignore[arg-type]
    return guard, session, clock


def server_pays(session: Session, available: str, at_seconds: float) -> None:
    session.available = available
    session.updated_at = T0 + timedelta(seconds=at_seconds)


def test_commit_is_dropped_once_the_server_shows_it() -> None:
    guard, session, _clock = setup()
    hold = guard.reserve("1.00")
    server_pays(session, "9.00", at_seconds=-0.5)  # ProcessPayment, just before the commit
    hold.commit()
    assert guard.snapshot().effective_available == Money.of("9.00")  # stale view + pending
    guard.refresh()
    snap = guard.snapshot()
    assert snap.pending_session == Money.zero()
    assert snap.server_available == Money.of("9.00")
    assert snap.effective_available == Money.of("9.00")


def test_an_update_without_spend_growth_drops_nothing() -> None:
    guard, session, clock = setup()
    guard.reserve("1.00").commit()
    clock.advance(5)
    server_pays(session, "10.00", at_seconds=5)  # updated, but nothing was spent
    guard.refresh()
    snap = guard.snapshot()
    assert snap.pending_session == Money.of("1.00")
    assert snap.effective_available == Money.of("9.00")


def test_growth_from_before_the_commit_drops_nothing() -> None:
    guard, session, clock = setup()
    clock.advance(60)
    guard.reserve("1.00").commit()
    server_pays(session, "9.00", at_seconds=10)  # someone spent, 50 s before our commit
    guard.refresh()
    snap = guard.snapshot()
    assert snap.pending_session == Money.of("1.00")
    assert snap.effective_available == Money.of("8.00")


def test_receipt_time_is_the_evidence_when_known() -> None:
    guard, session, clock = setup()
    hold = guard.reserve("1.00")
    server_pays(session, "9.00", at_seconds=-30)  # paid long before the commit
    clock.advance(60)
    hold.commit(receipt_time=T0 - timedelta(seconds=30))
    guard.refresh()
    assert guard.snapshot().pending_session == Money.zero()
    assert guard.snapshot().effective_available == Money.of("9.00")


def test_only_as_much_as_the_growth_is_dropped_oldest_first() -> None:
    guard, session, _clock = setup()
    guard.reserve("1.00").commit()
    guard.reserve("0.50").commit()
    server_pays(session, "9.00", at_seconds=1)  # only the first payment has landed
    guard.refresh()
    snap = guard.snapshot()
    assert snap.pending_session == Money.of("0.50")
    assert snap.effective_available == Money.of("8.50")
    server_pays(session, "8.50", at_seconds=2)
    guard.refresh()
    assert guard.snapshot().pending_session == Money.zero()
    assert guard.snapshot().effective_available == Money.of("8.50")


def test_external_charges_stay_for_the_life_of_the_session() -> None:
    guard, session, _clock = setup()
    guard.reserve("1.00", settlement="external").commit()
    server_pays(session, "9.00", at_seconds=1)  # someone else spent 1.00 through the session
    guard.refresh()
    snap = guard.snapshot()
    assert snap.external == Money.of("1.00")
    assert snap.effective_available == Money.of("8.00")


def test_held_money_is_never_reconciled_away() -> None:
    guard, session, _clock = setup()
    guard.reserve("2.00")
    server_pays(session, "8.00", at_seconds=1)
    guard.refresh()
    snap = guard.snapshot()
    assert snap.held == Money.of("2.00")
    assert snap.effective_available == Money.of("6.00")
