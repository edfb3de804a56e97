"""Shadow mode: the same checks as enforcement, through the same path, never blocking."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ARN, SID, Clock, ScriptedClient, SequenceClient, Session

from spendguard import (
    BudgetExceededError,
    InMemoryLedger,
    InvalidAmountError,
    Money,
    SessionError,
    SpendGuard,
    SpendGuardError,
)
from spendguard.policies import Policies, ToolPolicy, Window

POLICIES = Policies(
    per_call_max="1.50",
    tools={"buy_report": ToolPolicy(cap="2.00", per_call_max="0.80")},
    windows=[Window("minute", amount="2.50", count=6), Window("hour", count=3, tool="search")],
)


def make(mode: str, clock: Clock, ledger: InMemoryLedger | None = None, **kw: object) -> SpendGuard:
    session = Session(max_spend="5.00", available="5.00", expiry_minutes=24 * 60)
    return SpendGuard(
        ARN,
        SID,
        client=ScriptedClient(session),
        ledger=ledger,
        policies=POLICIES,
        mode=mode,  # type: ignore[arg-type]
        settlement="external",
        **clock.kwargs,
        **kw,  # type: ignore[arg-type]
    )


def test_shadow_lets_a_refused_charge_through_and_records_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = make("shadow", Clock())
    assert guard.mode == "shadow"
    with caplog.at_level(logging.WARNING, logger="spendguard"):
        hold = guard.reserve("0.90", tool="buy_report")
    assert hold.state == "held"
    hold.commit()  # the call ran; nothing was recorded for it, nothing to settle
    (record,) = guard.would_block
    assert (record.rule, record.tool, record.requested) == (
        "per_call_max",
        "buy_report",
        Money.of("0.90"),
    )
    assert record.error.rule == "per_call_max"
    assert guard.would_block_counts == {"per_call_max": 1}
    assert "shadow mode: would block 0.90 USD for tool buy_report" in caplog.text
    assert "rule per_call_max" in caplog.text
    # What enforcement would have held is counted in the shadow's own book.
    guard.reserve("0.80", tool="buy_report")
    assert guard.snapshot().held == Money.of("0.80")


def test_shadow_holds_nothing_in_the_book_enforcing_guards_use() -> None:
    clock, ledger = Clock(), InMemoryLedger()
    enforcing, shadow = make("enforce", clock, ledger), make("shadow", clock, ledger)
    for _ in range(5):
        shadow.reserve("1.00")
    assert enforcing.snapshot().held == Money.zero()
    enforcing.reserve("1.00").commit()
    enforcing.reserve("1.00").commit()
    with pytest.raises(BudgetExceededError) as info:
        enforcing.reserve("1.00")
    assert info.value.rule == "window_amount"
    assert shadow.would_block_counts == {"window_amount": 3}


def test_shadow_lets_through_what_it_cannot_check_and_says_why() -> None:
    missing = ClientError(
        {"Error": {"Code": "ResourceNotFoundException", "Message": "no such session"}},
        "GetPaymentSession",
    )
    guard = SpendGuard(ARN, SID, client=SequenceClient(missing, missing), mode="shadow")
    hold = guard.reserve("0.10")
    hold.commit()
    assert guard.would_block_counts == {"session_unavailable": 1}
    with pytest.raises(SessionError):  # a check only answers; it never pretends
        guard.check("0.10")


def test_shadow_lets_through_a_charge_on_an_expired_session() -> None:
    clock = Clock()
    guard = make("shadow", clock)
    clock.advance(2 * 24 * 3600)
    guard.reserve("0.10").release()
    assert guard.would_block_counts == {"session_expired": 1}


def test_shadow_still_raises_for_a_bad_argument() -> None:
    guard = make("shadow", Clock())
    with pytest.raises(InvalidAmountError):
        guard.reserve("-1")
    assert guard.would_block == ()


def test_shadow_async_reserve_records_and_proceeds() -> None:
    async def run() -> None:
        guard = make("shadow", Clock())
        async with guard.areserve("2.00"):
            pass
        hold = await guard.areserve("0.10", tool="x")
        await hold.acommit()
        assert [r.rule for r in guard.would_block] == ["per_call_max"]

    asyncio.run(run())


@dataclass(frozen=True)
class Op:
    kind: str  # "reserve", "commit", "release", "wait"
    amount: str = "0"
    tool: str | None = None
    seconds: float = 0.0


_AMOUNTS = st.sampled_from(["0", "0.05", "0.10", "0.25", "0.50", "0.80", "1.00", "1.60"])
_TOOLS = st.sampled_from([None, "buy_report", "search"])
OPS = st.lists(
    st.one_of(
        st.builds(Op, st.just("reserve"), _AMOUNTS, _TOOLS),
        st.builds(Op, st.just("commit"), _AMOUNTS),
        st.builds(Op, st.just("release")),
        st.builds(Op, st.just("wait"), seconds=st.sampled_from([1.0, 20.0, 59.0, 60.0, 900.0])),
    ),
    max_size=40,
)


def _play(mode: str, ops: list[Op]) -> list[str | None]:
    """Play ``ops`` and return, per reserve, the rule that refused it (None: granted)."""
    clock = Clock()
    guard = make(mode, clock)
    decisions: list[str | None] = []
    open_holds = []
    for op in ops:
        if op.kind == "reserve":
            seen = len(guard.would_block)
            try:
                hold = guard.reserve(op.amount, tool=op.tool)
            except SpendGuardError as error:
                decisions.append(error.rule)
                continue
            blocked = guard.would_block[seen:]
            decisions.append(blocked[0].rule if blocked else None)
            if not blocked:  # a call shadow mode let through is not one enforcement ran
                open_holds.append(hold)
        elif op.kind == "wait":
            clock.advance(op.seconds)
        elif open_holds:
            hold = open_holds.pop(0)
            if op.kind == "release":
                hold.release()
            else:
                hold.commit(min(Money.of(op.amount), hold.amount))
    return decisions


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_shadow_decides_exactly_as_enforcement_on_the_same_sequence(ops: list[Op]) -> None:
    assert _play("shadow", ops) == _play("enforce", ops)
