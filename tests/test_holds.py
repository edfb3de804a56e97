"""Holds: check-and-hold, commit/release semantics, leases, and no overspend under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import (
    BudgetExceededError,
    HoldStateError,
    InvalidAmountError,
    InvalidArgumentError,
    Money,
    NothingSpentError,
    SpendGuard,
)


def make(available: str = "10.00", **kwargs: object) -> SpendGuard:
    client = ScriptedClient(Session(available=available))
    clock = kwargs.pop("clock", None) or Clock()
    assert isinstance(clock, Clock)
    kwargs.setdefault("settlement", "external")  # nothing here is paid through the session
    return SpendGuard(ARN, SID, client=client, **clock.kwargs, **kwargs)  # type: ignore[arg-type]


def test_check_has_no_side_effects() -> None:
    guard = make("1.00")
    for _ in range(3):
        decision = guard.check("0.60")
        assert decision.allowed
        assert decision.available == Money.of("1.00")
    assert guard.snapshot().held == Money.zero()


def test_reserve_holds_until_settled() -> None:
    guard = make("1.00")
    hold = guard.reserve("0.60")
    assert guard.snapshot().held == Money.of("0.60")
    assert not guard.check("0.50").allowed
    with pytest.raises(BudgetExceededError) as info:
        guard.reserve("0.50")
    err = info.value
    assert err.requested == Money.of("0.50")
    assert err.available == Money.of("0.40")
    assert err.currency == "USD"
    assert err.session_id == SID
    assert "Do not retry" in str(err)
    hold.release()
    assert guard.reserve("0.50").state == "held"


def test_exact_fit_is_allowed_and_one_atomic_unit_more_is_not() -> None:
    guard = make("0.015")
    guard.reserve("0.005").commit()
    guard.reserve("0.005").commit()
    with pytest.raises(BudgetExceededError):
        guard.reserve("0.005000000000000001")
    guard.reserve("0.005").commit()
    assert guard.snapshot().effective_available == Money.zero()


def test_commit_less_than_held_returns_the_rest() -> None:
    guard = make("1.00")
    hold = guard.reserve("0.50")
    hold.commit("0.20")
    snap = guard.snapshot()
    assert snap.held == Money.zero()
    assert snap.external == Money.of("0.20")
    assert snap.effective_available == Money.of("0.80")


def test_commit_more_than_held_is_refused_and_changes_nothing() -> None:
    guard = make("1.00")
    hold = guard.reserve("0.50")
    with pytest.raises(HoldStateError):
        hold.commit("0.51")
    with pytest.raises(InvalidAmountError):
        hold.commit("-0.01")
    assert hold.state == "held"
    assert guard.snapshot().held == Money.of("0.50")


def test_commit_and_release_are_idempotent() -> None:
    guard = make("1.00")
    hold = guard.reserve("0.50")
    hold.commit()
    hold.commit()
    hold.release()
    assert hold.state == "committed"
    assert guard.snapshot().external == Money.of("0.50")
    other = guard.reserve("0.10")
    other.release()
    other.release()
    with pytest.raises(HoldStateError):
        other.commit()
    assert guard.snapshot().held == Money.zero()


def test_context_manager_commits_on_success_and_on_error() -> None:
    guard = make("1.00")
    with guard.reserve("0.30") as hold:
        pass
    assert hold.state == "committed"
    with pytest.raises(RuntimeError), guard.reserve("0.30") as failed:
        raise RuntimeError("the paid call failed, maybe after paying")
    assert failed.state == "committed"
    assert guard.snapshot().effective_available == Money.of("0.40")


def test_context_manager_releases_when_the_error_says_nothing_was_spent() -> None:
    guard = make("1.00")
    with pytest.raises(NothingSpentError), guard.reserve("0.30") as declined:
        raise NothingSpentError("card declined")
    assert declined.state == "released"
    with pytest.raises(LookupError), guard.reserve("0.30", release_on=(LookupError,)) as missing:
        raise KeyError("no such product")  # a subclass of a declared type counts
    assert missing.state == "released"
    with (
        pytest.raises(OSError, match="reset"),
        guard.reserve("0.30", release_on=(LookupError,)) as other,
    ):
        raise OSError("connection reset after sending")
    assert other.state == "committed"
    assert guard.snapshot().effective_available == Money.of("0.70")


def test_cancelled_async_block_keeps_its_charge() -> None:
    guard = make("1.00")

    async def main() -> None:
        sent = asyncio.Event()

        async def paid_call() -> None:
            async with guard.areserve("0.40"):
                sent.set()
                await asyncio.Event().wait()  # the request is out; the answer never comes

        task = asyncio.create_task(paid_call())
        await sent.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert guard.snapshot().effective_available == Money.of("0.60")


def test_async_reserve_as_await_and_as_context_manager() -> None:
    guard = make("1.00")

    async def main() -> None:
        hold = await guard.areserve("0.25")
        hold.commit()
        async with guard.areserve("0.25") as second:
            assert second.state == "held"
        assert second.state == "committed"
        with pytest.raises(ValueError, match="boom"):
            async with guard.areserve("0.25", release_on=(ValueError,)):
                raise ValueError("boom")
        with pytest.raises(BudgetExceededError):
            await guard.areserve("0.51")
        assert (await guard.asnapshot()).effective_available == Money.of("0.50")

    asyncio.run(main())


def test_bad_amount_changes_no_state() -> None:
    guard = make("1.00")
    guard.reserve("0.10")
    before = guard.snapshot()
    for bad in ("-1", 0.5, "1e2", None, "abc"):
        with pytest.raises(InvalidAmountError):
            guard.reserve(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidAmountError):
            guard.check(bad)  # type: ignore[arg-type]
    assert guard.snapshot() == before


def test_lapsed_hold_becomes_a_charge_never_forgotten() -> None:
    clock = Clock()
    guard = make("1.00", clock=clock, hold_lease=60)
    hold = guard.reserve("0.40")
    clock.advance(61)
    snap = guard.snapshot()
    assert snap.held == Money.zero()
    assert snap.external == Money.of("0.40")
    hold.commit("0.10")  # too late: the full amount stays deducted
    assert guard.snapshot().effective_available == Money.of("0.60")


def test_settlement_is_validated() -> None:
    guard = make()
    with pytest.raises(ValueError, match="settlement"):
        guard.reserve("1", settlement="later")  # type: ignore[arg-type]


def test_threads_racing_for_the_last_dollar_never_overspend() -> None:
    guard = make("1.00")
    barrier = threading.Barrier(32)
    granted: list[int] = []

    def work() -> None:
        barrier.wait()
        try:
            guard.reserve("0.10").commit()
            granted.append(1)
        except BudgetExceededError:
            pass

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 10
    assert guard.snapshot().effective_available == Money.zero()


operation = st.tuples(
    st.sampled_from(["reserve", "commit", "commit_part", "release"]),
    st.decimals(min_value=0, max_value=3, places=3),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(operation, max_size=25), min_size=2, max_size=4),
    st.decimals(min_value=0, max_value=10, places=2),
)
def test_concurrent_random_sequences_never_exceed_the_budget(
    scripts: list[list[tuple[str, Decimal]]], budget: Decimal
) -> None:
    guard = make(str(budget))
    barrier = threading.Barrier(len(scripts))
    errors: list[BaseException] = []

    def run(script: list[tuple[str, Decimal]]) -> None:
        holds = []
        barrier.wait()
        try:
            for op, amount in script:
                if op == "reserve":
                    with contextlib.suppress(BudgetExceededError):
                        holds.append(guard.reserve(amount))
                elif holds:
                    hold = holds.pop(0)
                    if op == "commit":
                        hold.commit()
                    elif op == "commit_part":
                        hold.commit(min(amount, hold.amount.amount))
                    else:
                        hold.release()
                snap = guard.snapshot()
                assert snap.held.amount + snap.committed_unreflected.amount <= budget
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in scripts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    snap = guard.snapshot()
    assert snap.held.amount + snap.committed_unreflected.amount <= budget


def test_every_refusal_names_its_rule_and_the_tool() -> None:
    clock = Clock()
    guard = make("1.00", clock=clock)
    assert guard.check("0.50", tool="buy").rule is None
    refused = guard.check("2.00", tool="buy")
    assert (refused.allowed, refused.rule, refused.tool) == (False, "session_limit", "buy")
    hold = guard.reserve("0.40", tool="buy")
    assert hold.tool == "buy"
    with pytest.raises(BudgetExceededError) as info:
        guard.reserve("0.70", tool="buy")
    assert info.value.rule == "session_limit"
    with pytest.raises(InvalidArgumentError):
        guard.reserve("0.10", tool="")
    assert guard.snapshot().held == Money.of("0.40")
