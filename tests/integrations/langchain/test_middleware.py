"""SpendLimitMiddleware inside a real create_agent, against the emulator."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from spendguard import BudgetExceededError, Money
from spendguard.pricing import from_argument
from spendguard_langchain import SpendLimitMiddleware
from tests.integrations.langchain.conftest import (
    Shop,
    ShopFactory,
    ToolCallingModel,
    run_agent,
    tool_calls,
)

PRICES = {"buy_report": from_argument("amount")}
HOW = ["invoke", "ainvoke"]


def buy(*orders: tuple[str, str]) -> AIMessage:
    """One model turn buying each (ticker, amount) in parallel."""
    return tool_calls(*(("buy_report", {"ticker": t, "amount": a}) for t, a in orders))


def agent_for(shop: Shop, *turns: AIMessage, asynchronous: bool = False, **kw: Any) -> Any:
    model = ToolCallingModel(responses=list(turns))
    middleware = SpendLimitMiddleware(shop.guard, PRICES, **kw)
    return create_agent(
        model, tools=[shop.buy_report(asynchronous=asynchronous)], middleware=[middleware]
    )


def tool_messages(messages: list[BaseMessage]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


def mentions(text: object, amount: str) -> bool:
    """Whether ``text`` names ``amount`` USD (in any number of trailing zeros)."""
    return re.search(rf"\b{re.escape(amount)}(\.0+)? USD", str(text)) is not None


# (how the agent is invoked, whether the tool is async); an async-only tool cannot run under
# `invoke` at all (LangChain raises NotImplementedError), so that pair is not a path.
@pytest.mark.parametrize(
    ("how", "asynchronous"), [("invoke", False), ("ainvoke", False), ("ainvoke", True)]
)
def test_fits_runs_and_pays_the_rest_is_told_not_to_retry(
    shop: Shop, how: str, asynchronous: bool
) -> None:
    agent = agent_for(
        shop, buy(("ACME", "6")), buy(("BIG", "5")), AIMessage("done"), asynchronous=asynchronous
    )

    messages = run_agent(agent, "buy reports", how)["messages"]

    paid, blocked = tool_messages(messages)
    assert paid.status == "success"
    assert paid.content == "report on ACME"
    assert blocked.status == "error"
    assert mentions(blocked.content, "5")  # what was requested
    assert mentions(blocked.content, "4")  # what is available
    assert "Do not retry" in blocked.content
    assert messages[-1].content == "done"  # the model carried on
    assert shop.bought == ["ACME"]
    shop.assert_books_balance("4")


@pytest.mark.parametrize("how", HOW)
def test_parallel_calls_are_admitted_against_one_budget(shop: Shop, how: str) -> None:
    orders = [("A", "4"), ("B", "4"), ("C", "4"), ("D", "4")]
    turn = buy(*orders)
    agent = agent_for(shop, turn, AIMessage("done"))

    messages = run_agent(agent, "buy four", how)["messages"]

    answers = {m.tool_call_id: m for m in tool_messages(messages)}
    assert set(answers) == {call["id"] for call in turn.tool_calls}  # none left unanswered
    statuses = sorted(m.status for m in answers.values())
    assert statuses == ["error", "error", "success", "success"]
    assert len(shop.bought) == 2
    shop.assert_books_balance("2")


@pytest.mark.parametrize("how", HOW)
def test_error_behavior_raises_and_nothing_runs(shop: Shop, how: str) -> None:
    agent = agent_for(shop, buy(("BIG", "20")), AIMessage("unreached"), exit_behavior="error")

    with pytest.raises(BudgetExceededError) as blocked:
        run_agent(agent, "buy", how)

    assert blocked.value.requested == Money.of("20")
    assert shop.bought == []
    shop.assert_books_balance("10")


@pytest.mark.parametrize("how", HOW)
def test_end_behavior_stops_with_a_final_message(shop: Shop, how: str) -> None:
    agent = agent_for(
        shop, buy(("ACME", "3")), buy(("BIG", "8")), AIMessage("unreached"), exit_behavior="end"
    )

    messages = run_agent(agent, "buy", how)["messages"]

    assert [m.status for m in tool_messages(messages)] == ["success", "error"]
    final = messages[-1]
    assert isinstance(final, AIMessage)
    assert str(final.content).startswith("Stopped to stay within the payment budget.")
    assert mentions(final.content, "8")
    assert shop.bought == ["ACME"]
    shop.assert_books_balance("7")


@pytest.mark.parametrize("how", HOW)
def test_call_that_fails_validation_releases_its_hold(shop: Shop, how: str) -> None:
    bad = tool_calls(("buy_report", {"amount": "6"}))  # no ticker: the tool cannot run
    agent = agent_for(shop, bad, AIMessage("done"))

    messages = run_agent(agent, "buy", how)["messages"]

    assert [m.status for m in tool_messages(messages)] == ["error"]
    shop.assert_books_balance("10")


def test_free_tools_pass_untouched(shop: Shop) -> None:
    model = ToolCallingModel(responses=[buy(("ACME", "6")), AIMessage("done")])
    middleware = SpendLimitMiddleware(shop.guard, {})  # no rule: buy_report is free
    agent = create_agent(model, tools=[shop.buy_report()], middleware=[middleware])
    run_agent(agent, "buy", "invoke")
    assert shop.bought == ["ACME"]
    assert shop.server_available() == 4  # it paid; the guard did not hold anything for it


def test_unknown_exit_behavior_is_rejected(shop: Shop) -> None:
    with pytest.raises(ValueError, match="exit_behavior"):
        SpendLimitMiddleware(shop.guard, PRICES, exit_behavior="stop")  # type: ignore[arg-type]


@pytest.mark.parametrize("how", HOW)
def test_two_guards_stack_and_a_block_by_either_leaves_nothing_held(
    make_shop: ShopFactory, how: str
) -> None:
    roomy, tight = make_shop("10"), make_shop("5")
    model = ToolCallingModel(responses=[buy(("ACME", "4")), buy(("BIG", "4")), AIMessage("ok")])
    agent = create_agent(
        model,
        tools=[roomy.buy_report()],
        middleware=[
            SpendLimitMiddleware(roomy.guard, PRICES),  # e.g. the user's session
            SpendLimitMiddleware(tight.guard, PRICES),  # e.g. this agent's session
        ],
    )

    messages = run_agent(agent, "buy", how)["messages"]

    assert [m.status for m in tool_messages(messages)] == ["success", "error"]
    assert roomy.bought == ["ACME"]
    roomy.assert_books_balance("6")  # the tool paid through the roomy session only
    tight.guard.refresh()
    assert tight.guard.snapshot().held == Money.zero()
