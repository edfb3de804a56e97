"""Spend policies: per-call maximums, tool caps, rolling windows and soft thresholds."""

from __future__ import annotations

import asyncio
import logging
import threading
from decimal import Decimal

import pytest
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import BudgetExceededError, InMemoryLedger, InvalidArgumentError, Money, SpendGuard
from spendguard.policies import (
    Policies,
    PolicyViolationError,
    ThresholdEvent,
    ToolPolicy,
    Window,
)


def make(
    policies: Policies | None,
    available: str = "10.00",
    clock: Clock | None = None,
    **kwargs: object,
) -> SpendGuard:
    session = Session(max_spend="10.00", available=available, expiry_minutes=3 * 24 * 60)
    client = ScriptedClient(session)
    kwargs.setdefault("settlement", "external")
    return SpendGuard(
        ARN,
        SID,
        client=client,
        policies=policies,
        **(clock or Clock()).kwargs,
        **kwargs,  # type: ignore[arg-type]
    )


def refused(guard: SpendGuard, amount: str, tool: str | None = None) -> PolicyViolationError:
    with pytest.raises(PolicyViolationError) as info:
        guard.reserve(amount, tool=tool)
    return info.value


# -- per-call maximum ---------------------------------------------------------------------------


def test_per_call_max_guard_wide_and_per_tool_the_tightest_applies() -> None:
    policies = Policies(
        per_call_max="1.00",
        tools={"search": ToolPolicy(per_call_max="0.10"), "report": ToolPolicy(per_call_max="5")},
    )
    guard = make(policies)
    guard.reserve("1.00", tool="anything").release()
    error = refused(guard, "1.01", tool="anything")
    assert (error.rule, error.tool, error.limit) == ("per_call_max", None, Money.of("1.00"))
    error = refused(guard, "0.11", tool="search")
    assert (error.rule, error.tool, error.limit) == ("per_call_max", "search", Money.of("0.10"))
    # A per-tool maximum above the guard-wide one does not loosen it.
    assert refused(guard, "1.50", tool="report").limit == Money.of("1.00")
    assert guard.snapshot().held == Money.zero()


def test_a_policy_refusal_is_a_budget_error_with_a_rule_and_a_model_message_without_ids() -> None:
    guard = make(Policies(tools={"buy_report": ToolPolicy(per_call_max="0.50")}))
    error = refused(guard, "0.99", tool="buy_report")
    assert isinstance(error, BudgetExceededError)
    assert error.rule == "per_call_max"
    assert error.requested == Money.of("0.99")
    message = error.model_message
    assert "most one call of this tool may cost is 0.50 USD" in message
    assert "Do not retry" in message
    for secret in (SID, ARN, "arn:", "http"):
        assert secret not in message
    assert SID in str(error)
    assert "buy_report" in str(error)


def test_check_names_the_rule_on_the_decision_and_holds_nothing() -> None:
    guard = make(Policies(per_call_max="0.25", tools={"t": ToolPolicy(cap="0.30")}))
    decision = guard.check("0.30", tool="t")
    assert (decision.allowed, decision.rule, decision.tool) == (False, "per_call_max", "t")
    assert decision.available == Money.of("0.25")
    assert "per_call_max" in decision.reason
    guard.reserve("0.20", tool="t")
    decision = guard.check("0.20", tool="t")
    assert (decision.allowed, decision.rule) == (False, "tool_cap")
    assert decision.available == Money.of("0.10")
    assert guard.check("0.10", tool="t").allowed
    assert guard.snapshot().held == Money.of("0.20")


def test_policies_are_off_unless_configured() -> None:
    guard = make(None)
    assert guard.policies is None
    guard.reserve("9.99", tool="anything")
    with pytest.raises(BudgetExceededError) as info:
        guard.reserve("0.02")
    assert info.value.rule == "session_limit"
    assert not isinstance(info.value, PolicyViolationError)


def test_the_session_limit_still_applies_under_policies() -> None:
    guard = make(Policies(per_call_max="5"), available="1.00")
    with pytest.raises(BudgetExceededError) as info:
        guard.reserve("1.01")
    assert info.value.rule == "session_limit"
    assert guard.check("1.01").rule == "session_limit"


# -- tool caps ----------------------------------------------------------------------------------


def test_tool_cap_counts_holds_in_flight_release_gives_back_commit_counts_actual() -> None:
    guard = make(Policies(tools={"buy_report": ToolPolicy(cap="2.00")}))
    first = guard.reserve("1.50", tool="buy_report")
    error = refused(guard, "0.60", tool="buy_report")
    assert (error.rule, error.available, error.limit) == (
        "tool_cap",
        Money.of("0.50"),
        Money.of("2.00"),
    )
    assert "may spend at most 2.00 USD in this session and 0.50 USD is left" in error.model_message
    guard.reserve("0.60", tool="other").commit()  # other tools are not capped
    first.release()
    second = guard.reserve("1.50", tool="buy_report")
    second.commit("0.40")
    guard.reserve("1.60", tool="buy_report").commit()
    assert refused(guard, "0.01", tool="buy_report").available == Money.zero()


def test_a_lapsed_hold_counts_in_full_against_the_tool_cap() -> None:
    clock = Clock()
    guard = make(Policies(tools={"t": ToolPolicy(cap="1.00")}), clock=clock, hold_lease=10)
    hold = guard.reserve("0.70", tool="t")
    clock.advance(11)
    hold.commit("0.10")  # too late: the lease lapsed, the ledger counts it all
    assert refused(guard, "0.31", tool="t").rule == "tool_cap"
    guard.reserve("0.30", tool="t")


# -- rolling windows ----------------------------------------------------------------------------


def test_window_amount_rolls_with_the_timer() -> None:
    clock = Clock()
    guard = make(Policies(windows=[Window("minute", amount="1.00")]), clock=clock)
    guard.reserve("0.60").commit()
    clock.advance(30)
    guard.reserve("0.40").commit()
    error = refused(guard, "0.01")
    assert (error.rule, error.window, error.available) == ("window_amount", 60.0, Money.zero())
    assert "at most 1.00 USD may be spent per minute" in error.model_message
    clock.advance(30)  # the first call is exactly a minute old: out of the window
    guard.reserve("0.60").commit()
    assert refused(guard, "0.01").rule == "window_amount"


def test_window_count_per_tool_ignores_other_tools_and_released_calls() -> None:
    clock = Clock()
    windows = [Window(3600, count=2, tool="search")]
    guard = make(Policies(windows=windows), clock=clock)
    guard.reserve("0.01", tool="search").commit()
    guard.reserve("0.01", tool="search").release()  # spent nothing: not a call
    guard.reserve("0.01", tool="fetch").commit()
    guard.reserve("0", tool="search").commit()  # a free call is still a call
    error = refused(guard, "0.01", tool="search")
    assert (error.rule, error.limit, error.tool) == ("window_count", 2, "search")
    assert "at most 2 paid calls of this tool are allowed per hour" in error.model_message
    guard.reserve("0.01", tool="fetch").commit()
    clock.advance(3600)
    guard.reserve("0.01", tool="search").commit()


def test_window_counts_holds_in_flight_and_their_actual_once_committed() -> None:
    clock = Clock()
    guard = make(Policies(windows=[Window("day", amount="1.00")]), clock=clock)
    hold = guard.reserve("0.90")
    assert refused(guard, "0.20").available == Money.of("0.10")
    hold.commit("0.30")
    guard.reserve("0.70")
    assert refused(guard, "0.01").rule == "window_amount"


def test_windows_are_checked_atomically_with_the_hold_under_concurrency() -> None:
    windows = [Window("hour", amount="1.00", count=7)]
    guard = make(Policies(windows=windows, tools={"t": ToolPolicy(cap="0.50")}))
    barrier = threading.Barrier(32)
    granted: list[str] = []
    rules: list[str] = []

    def worker(index: int) -> None:
        tool = "t" if index % 2 else None
        barrier.wait()
        try:
            guard.reserve("0.10", tool=tool)
            granted.append(tool or "-")
        except PolicyViolationError as error:
            rules.append(error.rule)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 7
    assert granted.count("t") <= 5
    assert guard.snapshot().held == Money.of("0.70")
    assert set(rules) <= {"window_count", "tool_cap"}


def test_async_reserve_applies_the_same_policies() -> None:
    asyncio.run(_async_reserve_applies_the_same_policies())


async def _async_reserve_applies_the_same_policies() -> None:
    guard = make(Policies(per_call_max="0.50", windows=[Window("minute", count=1)]))
    async with guard.areserve("0.50"):
        pass
    with pytest.raises(PolicyViolationError) as info:
        await guard.areserve("0.50")
    assert info.value.rule == "window_count"
    with pytest.raises(PolicyViolationError) as info:
        await guard.areserve("0.51")
    assert info.value.rule == "per_call_max"
    assert (await guard.acheck("0.01")).rule == "window_count"


# -- soft thresholds ----------------------------------------------------------------------------


def test_thresholds_fire_once_each_for_the_session_and_a_tool_cap() -> None:
    events: list[ThresholdEvent] = []
    policies = Policies(tools={"t": ToolPolicy(cap="2.00")}, on_threshold=events.append)
    guard = make(policies)
    guard.reserve("1.00", tool="t").commit()
    assert events == []
    guard.reserve("0.60", tool="t").release()  # crosses 0.8 of the cap while held
    assert [(e.rule, e.fraction, e.tool) for e in events] == [("tool_cap", Decimal("0.8"), "t")]
    guard.reserve("0.90", tool="t").commit()  # 1.90 of 2.00: 0.95 of the cap
    guard.reserve("6.09").commit()  # 7.99 of 10.00
    assert len(events) == 2
    guard.reserve("0.01").commit()  # 8.00: 0.8 of the session
    guard.reserve("1.50").commit()  # 9.50: 0.95 of the session
    guard.reserve("0.01").commit()
    fired = [(e.rule, str(e.fraction), str(e.limit)) for e in events]
    assert fired == [
        ("tool_cap", "0.8", "2.00 USD"),
        ("tool_cap", "0.95", "2.00 USD"),
        ("session_limit", "0.8", "10.00 USD"),
        ("session_limit", "0.95", "10.00 USD"),
    ]


def test_a_threshold_fires_once_for_every_guard_sharing_the_ledger() -> None:
    events: list[ThresholdEvent] = []
    ledger = InMemoryLedger()
    policies = Policies(thresholds=["0.5"], on_threshold=events.append)
    first, second = make(policies, ledger=ledger), make(policies, ledger=ledger)
    first.reserve("4.00").commit()
    second.reserve("1.00").commit()
    first.reserve("1.00").commit()
    assert [(e.rule, e.fraction) for e in events] == [("session_limit", Decimal("0.5"))]


def test_a_failing_threshold_callback_is_logged_and_the_charge_goes_ahead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(event: ThresholdEvent) -> None:
        raise RuntimeError("pager down")

    guard = make(Policies(thresholds=["0.1"], on_threshold=broken))
    with caplog.at_level(logging.WARNING, logger="spendguard"):
        hold = guard.reserve("2.00")
    assert hold.state == "held"
    assert "on_threshold raised" in caplog.text
    assert "spend threshold crossed" in caplog.text


def test_thresholds_are_off_without_a_callback() -> None:
    guard = make(Policies(thresholds=["0.1"]))
    assert guard.policies is not None
    assert guard.policies._resolve(None, Decimal(10)).limits.marks == ()


# -- start-up checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda: Policies(per_call_max="-1"), "per_call_max"),
        (lambda: Policies(per_call_max=0.5), "per_call_max"),  # type: ignore[arg-type]
        (lambda: Policies(tools={"t": "1.00"}), "tools.t"),  # type: ignore[dict-item]
        (lambda: ToolPolicy(cap="ten"), "cap"),
        (lambda: Window("fortnight", amount="1"), "per"),
        (lambda: Window(0, amount="1"), "per"),
        (lambda: Window("hour"), "amount"),
        (lambda: Window("hour", count=0), "count"),
        (lambda: Policies(thresholds=["1.5"]), "thresholds[0]"),
        (lambda: Policies(thresholds=["0.5", "zero"]), "thresholds[1]"),
        (lambda: Policies(on_threshold="alert"), "on_threshold"),  # type: ignore[arg-type]
        (lambda: Policies(windows=["hour"]), "windows[0]"),  # type: ignore[list-item]
    ],
)
def test_an_invalid_policy_fails_when_built_naming_the_key(build: object, argument: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        build()  # type: ignore[operator]
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}: ")


def test_the_guard_refuses_bad_policies_mode_or_ledger_at_start_up() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        make({"per_call_max": "1"})  # type: ignore[arg-type]
    assert info.value.argument == "policies"
    with pytest.raises(InvalidArgumentError) as info:
        make(Policies(per_call_max="1", currency="EUR"))
    assert info.value.argument == "policies"
    with pytest.raises(InvalidArgumentError) as info:
        make(None, mode="dry-run")
    assert info.value.argument == "mode"

    class PlainLedger:
        reserve = commit = release = totals = InMemoryLedger().reserve

    with pytest.raises(InvalidArgumentError) as info:
        make(Policies(per_call_max="1"), ledger=PlainLedger())
    assert info.value.argument == "ledger"
