"""Approval above an amount in a real Strands Agent, through Strands interrupts, with a
scripted model and the emulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from strands import Agent, tool
from strands.types.interrupt import InterruptResponseContent
from strands_model import ScriptedModel

from spendguard import InvalidArgumentError, Money, SpendGuard
from spendguard.approval import Approvals, answer
from spendguard.pricing import Blocked, Pricing
from spendguard_strands import SpendGuardHooks

PRICING = Pricing({"buy_report": "0.40", "search": "0.10"})


class Shop:
    """A Strands agent whose tools spend through ``guard``, with approval above 0.30 USD."""

    def __init__(self, guard: SpendGuard, *turns: Any, approvals: Approvals | None = None):
        self.guard = guard
        self.ran: list[str] = []
        self.blocked: list[Blocked] = []
        self.approvals = approvals or Approvals(above="0.30")

        @tool
        def buy_report(topic: str) -> str:
            """Buy a research report on a topic."""
            self.ran.append(topic)
            return f"report on {topic}"

        @tool
        def search(query: str) -> str:
            """Search."""
            self.ran.append(query)
            return "results"

        hooks = SpendGuardHooks(
            guard, PRICING, approvals=self.approvals, on_blocked=self.blocked.append
        )
        self.agent = Agent(
            model=ScriptedModel(list(turns)),
            tools=[buy_report, search],
            hooks=[hooks],
            callback_handler=None,
        )

    def held(self) -> Decimal:
        return self.guard.snapshot().held.amount

    def spent(self) -> Decimal:
        return self.guard.snapshot().external.amount

    def results(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for message in self.agent.messages:
            for block in message["content"]:
                if "toolResult" in block:
                    result = block["toolResult"]
                    text = " ".join(c.get("text", "") for c in result["content"])
                    found[result["toolUseId"]] = f"{result['status']}: {text}"
        return found


def reply(result: Any, approved: bool, payload: Any = None) -> list[InterruptResponseContent]:
    """Answer every interrupt of ``result`` (with ``payload``'s request when given)."""
    return [
        {
            "interruptResponse": {
                "interruptId": interrupt.id,
                "response": answer(payload or interrupt.reason, approved),
            }
        }
        for interrupt in result.interrupts
    ]


def buy(topic: str, call_id: str = "t1") -> list[Any]:
    return [(call_id, "buy_report", {"topic": topic})]


def test_an_approved_call_runs_with_the_money_held_while_paused(guard: SpendGuard) -> None:
    shop = Shop(guard, buy("tea"), "ok")

    paused = shop.agent("buy a report")
    assert paused.stop_reason == "interrupt"
    (interrupt,) = paused.interrupts
    assert interrupt.name == "spendguard_approval"
    assert interrupt.reason["amount"] == "0.40"
    assert interrupt.reason["arguments"] == {"topic": "tea"}
    assert shop.held() == Decimal("0.40")
    assert shop.ran == []

    done = shop.agent(reply(paused, approved=True))

    assert done.stop_reason == "end_turn"
    assert shop.ran == ["tea"]
    assert shop.results() == {"t1": "success: report on tea"}
    assert (shop.held(), shop.spent()) == (0, Decimal("0.40"))


def test_a_rejected_call_never_runs_and_its_money_is_released(guard: SpendGuard) -> None:
    shop = Shop(guard, buy("tea"), "ok")
    paused = shop.agent("buy a report")
    assert shop.held() == Decimal("0.40")

    shop.agent(reply(paused, approved=False))

    assert shop.ran == []
    assert "declined" in shop.results()["t1"]
    assert [b.error.rule for b in shop.blocked] == ["approval_rejected"]
    assert (shop.held(), shop.spent()) == (0, 0)


def test_a_call_at_or_below_the_threshold_runs_without_a_pause(guard: SpendGuard) -> None:
    shop = Shop(guard, [("t1", "search", {"query": "tea"})], "ok")
    assert shop.agent("search").stop_reason == "end_turn"
    assert shop.ran == ["tea"]
    assert shop.spent() == Decimal("0.10")


def test_an_approval_is_used_once(guard: SpendGuard) -> None:
    # The model repeats its call, with the same toolUseId: it is asked about again.
    shop = Shop(guard, buy("tea"), buy("tea"), "ok")
    first = shop.agent("buy a report")
    second = shop.agent(reply(first, approved=True))
    assert shop.ran == ["tea"]
    assert second.stop_reason == "interrupt"
    assert shop.held() == Decimal("0.40")

    # The first approval, replayed for the second call, does not answer it.
    shop.agent(reply(second, approved=True, payload=first.interrupts[0].reason))
    assert shop.ran == ["tea"]
    assert [b.error.rule for b in shop.blocked] == ["approval_rejected"]
    assert (shop.held(), shop.spent()) == (0, Decimal("0.40"))


def test_other_arguments_need_their_own_approval(guard: SpendGuard) -> None:
    shop = Shop(guard, buy("tea"), buy("coffee", "t2"), "ok")
    first = shop.agent("buy reports")
    second = shop.agent(reply(first, approved=True))
    (interrupt,) = second.interrupts
    assert interrupt.reason["arguments"] == {"topic": "coffee"}
    assert interrupt.reason["request_id"] != first.interrupts[0].reason["request_id"]
    shop.agent(reply(second, approved=True))
    assert shop.ran == ["tea", "coffee"]
    assert (shop.held(), shop.spent()) == (0, Decimal("0.80"))


def test_the_decision_is_pinned_when_asked_not_when_resumed(guard: SpendGuard) -> None:
    shop = Shop(guard, buy("tea"), "ok")
    paused = shop.agent("buy a report")
    shop.approvals.above = Money.of("100")  # the call would need no approval now
    with guard.reserve("0.60"):  # and would no longer fit
        pass
    shop.agent(reply(paused, approved=False))
    assert shop.ran == []
    assert shop.held() == 0


def test_approvals_must_be_approvals(guard: SpendGuard) -> None:
    with pytest.raises(InvalidArgumentError, match="approvals"):
        SpendGuardHooks(guard, PRICING, approvals={"above": "1"})  # type: ignore[arg-type]
