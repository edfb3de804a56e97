"""Approval above an amount in the core: money held while a person decides, with its own
lease; a rejection releases it; an answer is bound to amount, tool, arguments and call, and
used once."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import InvalidArgumentError, Money, SpendGuard
from spendguard.approval import ApprovalRejectedError, ApprovalRequest, Approvals


def make(available: str = "10.00", clock: Clock | None = None, **kwargs: Any) -> SpendGuard:
    clock = clock or Clock()
    return SpendGuard(
        ARN,
        SID,
        client=ScriptedClient(Session(available=available)),
        settlement="external",
        **clock.kwargs,
        **kwargs,
    )


def held(guard: SpendGuard) -> Decimal:
    return guard.snapshot().held.amount


def spent(guard: SpendGuard) -> Decimal:
    return guard.snapshot().external.amount


class Person:
    """An approver that records what it was asked, and what was held while it decided."""

    def __init__(self, guard: SpendGuard, answer: object = True) -> None:
        self.guard = guard
        self.answer = answer
        self.asked: list[ApprovalRequest] = []
        self.held_meanwhile: list[Decimal] = []

    def __call__(self, request: ApprovalRequest) -> Any:
        self.asked.append(request)
        self.held_meanwhile.append(held(self.guard))
        return self.answer


# -- the rule ----------------------------------------------------------------------------------


def test_at_or_below_the_threshold_nobody_is_asked() -> None:
    guard = make()
    person = Person(guard)
    approvals = Approvals(above="1.00", approver=person)
    with approvals.reserve(guard, "1.00", tool="search"):
        pass
    assert person.asked == []
    assert spent(guard) == Decimal("1.00")


def test_a_tool_threshold_replaces_the_guard_wide_one() -> None:
    approvals = Approvals(above="1.00", tools={"buy_report": "0.10", "search": "5"})
    assert approvals.required(Money.of("0.11"), "buy_report")
    assert not approvals.required(Money.of("4.00"), "search")
    assert approvals.required(Money.of("1.01"), "other")
    assert approvals.required(Money.of("1.01"), None)
    assert not Approvals(tools={"x": "0"}).required(Money.of("0"), "x")
    assert not Approvals(tools={"x": "1"}).required(Money.of("9"), "y")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"above": "abc"}, None),
        ({"tools": {"": "1"}}, "tools"),
        ({"tools": ["x"]}, "tools"),
        ({"approver": "yes"}, "approver"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict[str, Any], argument: str | None) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Approvals(**kwargs)
    assert argument is None or caught.value.argument == argument


# -- approve and reject ------------------------------------------------------------------------


def test_money_is_held_while_the_person_decides_and_the_approved_call_is_charged() -> None:
    guard = make()
    person = Person(guard)
    approvals = Approvals(above="1.00", approver=person)
    with approvals.reserve(
        guard, "2.50", tool="buy_report", arguments={"topic": "tea"}, call="c1"
    ) as hold:
        assert hold.state == "held"
    (request,) = person.asked
    assert (request.amount, request.tool, dict(request.arguments), request.call) == (
        Money.of("2.50"),
        "buy_report",
        {"topic": "tea"},
        "c1",
    )
    assert person.held_meanwhile == [Decimal("2.50")]
    assert spent(guard) == Decimal("2.50")


@pytest.mark.parametrize("answer", [False, None, "yes", 1, {"approved": True}])
def test_anything_but_exactly_true_rejects_and_releases_the_money(answer: object) -> None:
    guard = make()
    person = Person(guard, answer)
    approvals = Approvals(above="1.00", approver=person)
    with pytest.raises(ApprovalRejectedError) as caught:
        approvals.reserve(guard, "2.50", tool="buy_report", arguments={"topic": "tea"})
    error = caught.value
    assert error.rule == "approval_rejected"
    assert error.request is person.asked[0]
    assert person.held_meanwhile == [Decimal("2.50")]
    assert held(guard) == spent(guard) == 0
    assert "declined" in error.model_message
    assert SID not in error.model_message
    assert error.request.id not in error.model_message


def test_an_approver_that_raises_releases_the_money_and_the_error_propagates() -> None:
    guard = make()

    def broken(request: ApprovalRequest) -> bool:
        raise ConnectionError("the approval service is down")

    with pytest.raises(ConnectionError):
        Approvals(above="1", approver=broken).reserve(guard, "2")
    assert held(guard) == spent(guard) == 0


def test_a_charge_needing_approval_without_an_approver_holds_nothing() -> None:
    guard = make()
    with pytest.raises(InvalidArgumentError, match="no approver"):
        Approvals(above="1").reserve(guard, "2")
    assert held(guard) == 0


def test_an_async_approver_on_the_sync_path_is_refused_and_releases() -> None:
    guard = make()

    async def approve(request: ApprovalRequest) -> bool:
        return True

    with pytest.raises(InvalidArgumentError, match="async"):
        Approvals(above="1", approver=approve).reserve(guard, "2")
    assert held(guard) == spent(guard) == 0


# -- the approval lease ------------------------------------------------------------------------


def test_a_hold_awaiting_approval_has_the_approval_timeout_as_its_lease() -> None:
    clock = Clock()
    guard = make(clock=clock, hold_lease=60)

    def slow_yes(request: ApprovalRequest) -> bool:
        clock.advance(600)  # longer than hold_lease, shorter than the approval timeout
        assert held(guard) == Decimal("2")
        return True

    with Approvals(above="1", approver=slow_yes, timeout=900, timer=clock.timer).reserve(
        guard, "2"
    ):
        pass
    assert held(guard) == 0
    assert spent(guard) == Decimal("2")


def test_an_answer_after_the_timeout_is_refused_and_the_lapsed_hold_stays_counted() -> None:
    clock = Clock()
    guard = make(clock=clock)

    def late_yes(request: ApprovalRequest) -> bool:
        clock.advance(61)
        return True

    approvals = Approvals(above="1", approver=late_yes, timeout=60, timer=clock.timer)
    with pytest.raises(ApprovalRejectedError) as caught:
        approvals.reserve(guard, "2")
    assert caught.value.rule == "approval_timeout"
    assert "in time" in caught.value.model_message
    # The hold lapsed at 60 s: the ledger counts it, as it counts any lapsed hold.
    assert held(guard) == 0
    assert spent(guard) == Decimal("2")


def test_the_approval_lease_never_outlives_the_session() -> None:
    clock = Clock()
    guard = make(clock=clock)  # the session expires 50 minutes after T0

    def after_the_session(request: ApprovalRequest) -> bool:
        clock.advance(3001)
        return True

    approvals = Approvals(above="1", approver=after_the_session, timeout=36_000, timer=clock.timer)
    hold = approvals.reserve(guard, "2")
    assert held(guard) == 0  # lapsed with the session, not ten hours later
    assert spent(guard) == Decimal("2")
    hold.release()


def test_reserve_validates_an_explicit_lease_and_holds_nothing_on_a_bad_one() -> None:
    guard = make()
    for bad in (0, -1, float("nan"), "60"):
        with pytest.raises(InvalidArgumentError, match="lease"):
            guard.reserve("1", lease=bad)  # type: ignore[arg-type]
    assert held(guard) == 0


# -- async -------------------------------------------------------------------------------------


def test_async_approver_approves_and_rejects() -> None:
    guard = make()

    async def decide(request: ApprovalRequest) -> bool:
        await asyncio.sleep(0)
        return request.arguments["topic"] == "tea"

    approvals = Approvals(above="1", approver=decide)

    async def run() -> None:
        async with await approvals.areserve(guard, "2", arguments={"topic": "tea"}):
            assert held(guard) == 2
        with pytest.raises(ApprovalRejectedError):
            await approvals.areserve(guard, "3", arguments={"topic": "coffee"})

    asyncio.run(run())
    assert held(guard) == 0
    assert spent(guard) == Decimal("2")


def test_a_sync_approver_on_the_async_path_runs_in_a_worker_thread() -> None:
    guard = make()
    threads: list[threading.Thread] = []

    def decide(request: ApprovalRequest) -> bool:
        threads.append(threading.current_thread())
        return True

    async def run() -> None:
        hold = await Approvals(above="1", approver=decide).areserve(guard, "2")
        await hold.acommit()

    asyncio.run(run())
    assert len(threads) == 1
    assert threads[0] is not threading.main_thread()


def test_an_async_approver_that_never_answers_times_out_and_releases() -> None:
    guard = make()
    never = asyncio.Event

    async def silent(request: ApprovalRequest) -> bool:
        await never().wait()
        return True

    async def run() -> None:
        with pytest.raises(ApprovalRejectedError) as caught:
            await Approvals(above="1", approver=silent, timeout=0.01).areserve(guard, "2")
        assert caught.value.rule == "approval_timeout"

    asyncio.run(run())
    assert held(guard) == spent(guard) == 0


# -- the decorator -----------------------------------------------------------------------------


def test_the_decorator_binds_the_call_arguments_and_asks_every_call() -> None:
    guard = make()
    person = Person(guard)
    approvals = Approvals(tools={"buy_report": "1"}, approver=person)
    ran: list[str] = []

    @guard.charges("2", approvals=approvals)
    def buy_report(topic: str, pages: int = 3) -> str:
        ran.append(topic)
        return topic

    assert buy_report("tea") == "tea"
    assert buy_report("tea") == "tea"
    first, second = person.asked
    assert dict(first.arguments) == {"topic": "tea", "pages": 3}
    assert first.tool == "buy_report"
    assert first.id != second.id  # each call is its own call: an approval is used once
    person.answer = False
    with pytest.raises(ApprovalRejectedError):
        buy_report("coffee")
    assert ran == ["tea", "tea"]
    assert spent(guard) == Decimal("4")
    assert held(guard) == 0


def test_the_async_decorator_asks_and_a_rejection_never_runs_the_call() -> None:
    guard = make()
    answers = iter([True, False])
    ran: list[str] = []

    async def decide(request: ApprovalRequest) -> bool:
        return next(answers)

    @guard.charges(lambda topic: "2", approvals=Approvals(above="1", approver=decide))
    async def buy_report(topic: str) -> str:
        ran.append(topic)
        return topic

    async def run() -> None:
        assert await buy_report("tea") == "tea"
        with pytest.raises(ApprovalRejectedError):
            await buy_report("coffee")

    asyncio.run(run())
    assert ran == ["tea"]
    assert spent(guard) == Decimal("2")


# -- answers: bound and used once --------------------------------------------------------------


def test_an_answer_is_bound_to_amount_tool_arguments_and_call() -> None:
    approvals = Approvals(above="1")
    base = {"amount": Money.of("2"), "tool": "buy", "arguments": {"q": "tea"}, "call": "c1"}
    request = approvals.request(**base)  # type: ignore[arg-type]
    assert approvals.request(**base).id == request.id  # type: ignore[arg-type]
    for change in (
        {"amount": Money.of("2.01")},
        {"tool": "sell"},
        {"arguments": {"q": "coffee"}},
        {"arguments": {"q": "tea", "n": 1}},
        {"call": "c2"},
    ):
        other = approvals.request(**{**base, **change})  # type: ignore[arg-type]
        assert other.id != request.id
        assert approvals.decide(request, other.approve()) is None  # ask again
    assert approvals.decide(request, request.approve()) is True


def test_an_approval_is_used_once() -> None:
    approvals = Approvals(above="1")
    request = approvals.request(Money.of("2"), tool="buy", arguments={}, call="c1")
    assert approvals.decide(request, request.approve()) is True
    assert approvals.decide(request, request.approve()) is False


@pytest.mark.parametrize(
    "answer",
    [
        None,
        True,
        "yes",
        {"approved": True},
        {"request_id": None, "approved": True},
        {"request_id": "{id}", "approved": "true"},
        {"request_id": "{id}"},
    ],
)
def test_a_malformed_answer_rejects(answer: object) -> None:
    approvals = Approvals(above="1")
    request = approvals.request(Money.of("2"), tool="buy", arguments={}, call="c1")
    if isinstance(answer, dict) and answer.get("request_id") == "{id}":
        answer = {**answer, "request_id": request.id}
    assert approvals.decide(request, answer) is False
    assert approvals.decide(request, request.reject()) is False


def test_the_payload_is_json_and_names_what_is_asked() -> None:
    approvals = Approvals(above="1")
    request = approvals.request(
        Money.of("2.50"), tool="buy", arguments={"q": "tea", "d": Decimal("1.5")}, call="c1"
    )
    assert request.payload() == {
        "type": "spendguard_approval",
        "request_id": request.id,
        "tool": "buy",
        "amount": "2.50",
        "currency": "USD",
        "arguments": {"d": "1.5", "q": "tea"},
    }
