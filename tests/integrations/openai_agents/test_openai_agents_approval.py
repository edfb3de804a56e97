"""Approval above an amount in an OpenAI Agents SDK run, through the SDK's own
``needs_approval`` interruptions, with ScriptedModel and the emulator."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from spendguard import InvalidArgumentError, SpendGuard
from spendguard.approval import Approvals
from spendguard.pricing import Blocked, Pricing
from spendguard_openai_agents import SpendGuardToolGuardrails

PRICING = Pricing({"buy_report": "0.40", "search": "0.10"})


class Shop:
    """An agent whose tools spend through ``guard``, with approval above 0.30 USD."""

    def __init__(self, guard: SpendGuard, *steps: list[Any], **approvals: Any) -> None:
        self.guard = guard
        self.ran: list[str] = []
        self.blocked: list[Blocked] = []
        self.spend = SpendGuardToolGuardrails(
            guard,
            PRICING,
            approvals=Approvals(**({"above": "0.30"} | approvals)),
            on_blocked=self.blocked.append,
        )
        self.model = ScriptedModel(list(steps))
        self.config = RunConfig(
            tracing_disabled=True, tool_error_formatter=self.spend.tool_error_formatter()
        )

        @function_tool(
            **self.spend.tool_options(), needs_approval=self.spend.needs_approval("buy_report")
        )
        async def buy_report(topic: str) -> str:
            """Buy a research report."""
            self.ran.append(topic)
            return f"report on {topic}"

        @function_tool(
            **self.spend.tool_options(), needs_approval=self.spend.needs_approval("search")
        )
        def search(query: str) -> str:
            """Search."""
            self.ran.append(query)
            return f"results for {query}"

        self.agent: Agent[Any] = Agent(name="buyer", model=self.model, tools=[buy_report, search])

    def run(self, start: Any = "go") -> Any:
        return asyncio.run(Runner.run(self.agent, start, run_config=self.config))

    def held(self) -> Decimal:
        return self.guard.snapshot().held.amount

    def spent(self) -> Decimal:
        return self.guard.snapshot().external.amount

    def model_saw(self) -> dict[str, str]:
        last = self.model.last_call
        assert last is not None
        items = last.input if isinstance(last.input, list) else []
        return {
            item["call_id"]: str(item["output"])
            for item in items
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        }


def answer(shop: Shop, result: Any, approved: bool, **kwargs: Any) -> Any:
    """Approve or reject every interruption of ``result`` on its state, then run again."""
    state = result.to_state()
    for item in result.interruptions:
        (state.approve if approved else state.reject)(item, **kwargs)
    return shop.run(state)


def buy(topic: str, call_id: str) -> list[Any]:
    return [function_call("buy_report", {"topic": topic}, call_id=call_id)]


def test_an_approved_call_runs_with_the_money_held_while_paused(guard: SpendGuard) -> None:
    shop = Shop(guard, buy("tea", "c1"), [assistant_message("ok")])

    paused = shop.run()
    (item,) = paused.interruptions
    assert item.name == "buy_report"
    assert shop.held() == Decimal("0.40")
    assert shop.ran == []

    done = answer(shop, paused, approved=True)

    assert done.final_output == "ok"
    assert shop.ran == ["tea"]
    assert shop.model_saw() == {"c1": "report on tea"}
    assert (shop.held(), shop.spent()) == (0, Decimal("0.40"))


def test_a_rejected_call_never_runs_and_its_money_is_released(guard: SpendGuard) -> None:
    shop = Shop(guard, buy("tea", "c1"), [assistant_message("ok")])
    paused = shop.run()
    assert shop.held() == Decimal("0.40")

    done = answer(shop, paused, approved=False)

    assert done.final_output == "ok"
    assert shop.ran == []
    assert "declined" in shop.model_saw()["c1"]
    assert (shop.held(), shop.spent()) == (0, 0)


def test_a_call_at_or_below_the_threshold_runs_without_a_pause(guard: SpendGuard) -> None:
    shop = Shop(
        guard, [function_call("search", {"query": "tea"}, call_id="c1")], [assistant_message("ok")]
    )
    done = shop.run()
    assert not done.interruptions
    assert shop.ran == ["tea"]
    assert shop.spent() == Decimal("0.10")


@pytest.mark.parametrize("always", [False, True])
def test_an_approval_is_used_once(guard: SpendGuard, always: bool) -> None:
    # The model repeats its call id, then makes a new call: the first approval runs one call
    # only, even when given with always_approve.
    shop = Shop(
        guard, buy("tea", "c1"), buy("tea", "c1"), buy("tea", "c2"), [assistant_message("ok")]
    )
    done = answer(shop, shop.run(), approved=True, always_approve=always)

    assert shop.ran == ["tea"]
    if always:  # the SDK would run c2 unasked: the guard refuses it
        assert [b.error.rule for b in shop.blocked] == ["approval_missing"]
        assert "needs a person's approval" in shop.model_saw()["c2"]
    else:  # the new call is asked about afresh, with its money held
        assert [(i.name, i.call_id) for i in done.interruptions] == [("buy_report", "c2")]
        assert shop.held() == Decimal("0.40")
        done = answer(shop, done, approved=True)
        assert shop.ran == ["tea", "tea"]
    assert done.final_output == "ok"
    assert shop.held() == 0


def test_other_arguments_are_another_call_and_need_their_own_approval(guard: SpendGuard) -> None:
    shop = Shop(guard, buy("tea", "c1"), buy("coffee", "c2"), [assistant_message("ok")])
    second = answer(shop, shop.run(), approved=True)
    assert shop.ran == ["tea"]
    (item,) = second.interruptions
    assert '"coffee"' in str(item.arguments)
    answer(shop, second, approved=False)
    assert shop.ran == ["tea"]
    assert (shop.held(), shop.spent()) == (0, Decimal("0.40"))


def test_approval_hooks_need_approvals(guard: SpendGuard) -> None:
    spend = SpendGuardToolGuardrails(guard, PRICING)
    with pytest.raises(InvalidArgumentError, match="approvals"):
        spend.needs_approval("buy_report")
    with pytest.raises(InvalidArgumentError, match="approvals"):
        SpendGuardToolGuardrails(guard, PRICING, approvals="above 1")  # type: ignore[arg-type]
