"""ToolGate with a resolver: the guard is found per call from the run context."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest
from support import ARN, Clock, Session
from test_pool import Sessions, sid

from spendguard import InvalidArgumentError, SpendGuard
from spendguard.gate import GuardResolutionError, ToolGate
from spendguard.pool import GuardPool
from spendguard.pricing import Blocked, Pricing


def pool() -> GuardPool:
    return GuardPool(client=Sessions(Session(max_spend="1.00", available="1.00")), **Clock().kwargs)


def test_each_call_spends_from_the_guard_its_context_resolves() -> None:
    guards = pool()
    gate = ToolGate(lambda ctx: guards.get(ARN, ctx["session"]), {"buy": "0.40"})
    assert gate.guard is None
    assert gate.admit("a1", "buy", {}, {"session": sid(1)}) is None
    assert gate.admit("a2", "buy", {}, {"session": sid(1)}) is None
    blocked = gate.admit("a3", "buy", {}, {"session": sid(1)})
    assert isinstance(blocked, Blocked)
    assert blocked.error.rule == "session_limit"
    assert gate.admit("b1", "buy", {}, {"session": sid(2)}) is None  # another budget
    for key in ("a1", "a2", "b1"):
        gate.settle(key, ran=True)
    assert gate.open_holds == {}
    one = guards.get(ARN, sid(1)).snapshot()
    two = guards.get(ARN, sid(2)).snapshot()
    assert (one.pending_session.amount, two.pending_session.amount) == (
        Decimal("0.80"),
        Decimal("0.40"),
    )


def test_a_hold_settles_against_the_guard_that_admitted_it() -> None:
    guards = pool()
    current = {"session": sid(1)}
    gate = ToolGate(lambda ctx: guards.get(ARN, current["session"]), {"buy": "0.40"})
    assert gate.admit("k", "buy", {}) is None
    current["session"] = sid(2)  # the resolver now answers another session
    asyncio.run(gate.asettle("k", ran=True))
    assert guards.get(ARN, sid(1)).snapshot().pending_session.amount == Decimal("0.40")
    assert guards.get(ARN, sid(2)).snapshot().pending_session.amount == Decimal(0)


def test_free_calls_never_ask_the_resolver() -> None:
    asked: list[object] = []

    def resolver(ctx: object) -> SpendGuard:
        asked.append(ctx)
        raise LookupError("no session")

    gate = ToolGate(resolver, {"buy": "0.40"})
    assert gate.admit("k", "search", {}, "ctx") is None
    assert asked == []
    strict = ToolGate(resolver, Pricing({"buy": "0.40"}, strict=True))
    blocked = strict.admit("k", "search", {}, "ctx")
    assert isinstance(blocked, Blocked)
    assert asked == ["ctx"]


@pytest.mark.parametrize(
    ("resolver", "detail"),
    [
        (lambda ctx: None, "returned NoneType"),
        (lambda ctx: "guard", "returned str"),
        (lambda ctx: ctx["session"], "KeyError"),
        (lambda ctx: pool().get(ARN, None), "InvalidArgumentError"),  # type: ignore[arg-type]
    ],
)
def test_an_unresolvable_call_is_blocked_without_ids_for_the_model(
    resolver: Any, detail: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Blocked] = []
    gate = ToolGate(resolver, {"buy": "0.40"}, on_blocked=seen.append)
    with caplog.at_level(logging.INFO, logger="spendguard"):
        blocked = gate.admit("k", "buy", {}, {"user": "u-1"})
        ablocked = asyncio.run(gate.aadmit("k", "buy", {}, {"user": "u-1"}))
    for outcome in (blocked, ablocked):
        assert isinstance(outcome, Blocked)
        assert isinstance(outcome.error, GuardResolutionError)
        assert outcome.error.rule == "session_unresolved"
        assert outcome.message == (
            "Payment blocked: no payment session is available for this request. "
            "Do not retry this call."
        )
        assert detail in str(outcome.error)  # the operator's detail
    assert seen == [blocked, ablocked]
    assert gate.open_holds == {}
    assert [r.spendguard_rule for r in caplog.records] == ["session_unresolved"] * 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("guard", [None, "guard", 3])
def test_the_guard_must_be_a_guard_or_callable(guard: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        ToolGate(guard, {"buy": "1"})  # type: ignore[arg-type]
    assert info.value.argument == "guard"


def test_an_adopted_hold_is_settled_as_its_call_and_a_second_one_released() -> None:
    guards = pool()
    guard = guards.get(ARN, sid(1))
    gate = ToolGate(guard, {"buy": "0.40"})
    taken = guard.reserve("0.40", tool="buy")
    gate.adopt("k", taken)
    assert gate.held("k") is taken
    again = guard.reserve("0.30", tool="buy")
    gate.adopt("k", again)  # the call holds once: the second hold goes back
    assert again.state == "released"
    gate.settle("k", ran=True)
    assert taken.state == "committed"
    snapshot = guard.snapshot()
    assert (snapshot.held.amount, snapshot.pending_session.amount) == (0, Decimal("0.40"))
