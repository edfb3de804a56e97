"""SpendLimitMiddleware inside a real create_agent, against the emulator."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from spendguard import BudgetExceededError, InvalidArgumentError, Money, NothingSpentError
from spendguard.pricing import Blocked, from_argument
from spendguard_langchain import ExitBehavior, SpendLimitMiddleware
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
def test_a_call_answered_with_an_error_message_keeps_its_charge(shop: Shop, how: str) -> None:
    """An error ToolMessage may come from a tool that failed after paying; LangChain answers a
    call whose arguments fail validation the same way, so that one is charged too (the safe
    side: the guard cannot tell them apart)."""
    bad = tool_calls(("buy_report", {"amount": "6"}))  # no ticker: the tool cannot run
    model = ToolCallingModel(responses=[bad, AIMessage("done")])
    middleware = SpendLimitMiddleware(shop.guard, PRICES, settlement="external")
    agent = create_agent(model, tools=[shop.buy_report()], middleware=[middleware])

    messages = run_agent(agent, "buy", how)["messages"]

    assert [m.status for m in tool_messages(messages)] == ["error"]
    assert shop.attempts == []
    assert not middleware.open_holds
    snap = shop.guard.snapshot()
    assert (snap.held, snap.external) == (Money.zero(), Money.of("6"))


class OutOfStock(Exception):
    """The upstream refused before taking any money."""


def order_three_times(shop: Shop, middleware: SpendLimitMiddleware, tool: Any, how: str) -> None:
    """Three agent runs, each ordering one 0.60 report; a tool error ends its run."""
    for ticker in ("A", "B", "C"):
        model = ToolCallingModel(responses=[buy((ticker, "0.60")), AIMessage("done")])
        agent = create_agent(model, tools=[tool], middleware=[middleware])
        try:
            messages = run_agent(agent, "buy", how)["messages"]
        except Exception:
            assert ticker in shop.attempts
        else:
            assert "Payment blocked" in str(tool_messages(messages)[0].content)


@pytest.mark.parametrize("how", HOW)
def test_a_tool_that_raises_keeps_its_charge(make_shop: ShopFactory, how: str) -> None:
    """The API took the money, then timed out: the charge stays, so only one call fits."""
    shop = make_shop("1.00")
    middleware = SpendLimitMiddleware(shop.guard, PRICES)
    tool = shop.buy_report(raises_after_paying=TimeoutError("upstream timed out"))

    order_three_times(shop, middleware, tool, how)

    assert shop.attempts == ["A"]
    assert not middleware.open_holds
    shop.assert_books_balance("0.40")


@pytest.mark.parametrize(
    ("error", "release_on"),
    [(NothingSpentError("out of stock"), ()), (OutOfStock("out of stock"), (OutOfStock,))],
    ids=["NothingSpentError", "release_on"],
)
def test_a_tool_that_says_it_spent_nothing_is_released(
    make_shop: ShopFactory, error: Exception, release_on: tuple[type[BaseException], ...]
) -> None:
    shop = make_shop("1.00")
    middleware = SpendLimitMiddleware(shop.guard, PRICES, release_on=release_on)
    tool = shop.buy_report(raises_before_paying=error)

    order_three_times(shop, middleware, tool, "invoke")

    assert shop.attempts == ["A", "B", "C"]
    assert not middleware.open_holds
    shop.assert_books_balance("1.00")


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("tool_call_id", ["call_0", ""], ids=["repeated", "blank"])
def test_repeated_or_blank_tool_call_ids_cannot_run_uncharged(
    make_shop: ShopFactory, tool_call_id: str, how: str
) -> None:
    """Each call's hold lives in its own wrap_tool_call, whatever id the model gave it."""
    shop = make_shop("1.00")
    orders = [
        {"name": "buy_report", "args": {"ticker": t, "amount": "0.90"}, "id": tool_call_id}
        for t in ("A", "B")
    ]
    middleware = SpendLimitMiddleware(shop.guard, PRICES)
    model = ToolCallingModel(responses=[AIMessage("", tool_calls=orders), AIMessage("done")])
    agent = create_agent(model, tools=[shop.buy_report()], middleware=[middleware])

    messages = run_agent(agent, "buy both", how)["messages"]

    assert sorted(m.status for m in tool_messages(messages)) == ["error", "success"]
    assert len(shop.bought) == 1
    assert not middleware.open_holds
    shop.assert_books_balance("0.10")


def test_prices_is_a_deprecated_alias_and_on_blocked_sees_blocks(shop: Shop) -> None:
    blocked: list[Blocked] = []
    with pytest.warns(DeprecationWarning, match="pricing"):
        middleware = SpendLimitMiddleware(shop.guard, prices=PRICES, on_blocked=blocked.append)
    model = ToolCallingModel(responses=[buy(("BIG", "20")), AIMessage("done")])
    agent = create_agent(model, tools=[shop.buy_report()], middleware=[middleware])

    messages = run_agent(agent, "buy", "invoke")["messages"]

    assert [b.tool_name for b in blocked] == ["buy_report"]
    assert tool_messages(messages)[0].content == blocked[0].message


def test_free_tools_pass_untouched(shop: Shop) -> None:
    model = ToolCallingModel(responses=[buy(("ACME", "6")), AIMessage("done")])
    middleware = SpendLimitMiddleware(shop.guard, {})  # no rule: buy_report is free
    agent = create_agent(model, tools=[shop.buy_report()], middleware=[middleware])
    run_agent(agent, "buy", "invoke")
    assert shop.bought == ["ACME"]
    assert shop.server_available() == 4  # it paid; the guard did not hold anything for it


def test_unknown_exit_behavior_is_rejected(shop: Shop) -> None:
    with pytest.raises(InvalidArgumentError, match="exit_behavior"):
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


@pytest.mark.parametrize("exit_behavior", ["continue", "error"])
def test_a_call_blocked_by_a_stacked_guard_never_ran_so_the_other_releases(
    make_shop: ShopFactory, exit_behavior: ExitBehavior
) -> None:
    roomy, tight = make_shop("10"), make_shop("1")
    model = ToolCallingModel(responses=[buy(("BIG", "4")), AIMessage("ok")])
    agent = create_agent(
        model,
        tools=[roomy.buy_report()],
        middleware=[
            SpendLimitMiddleware(roomy.guard, PRICES),
            SpendLimitMiddleware(tight.guard, PRICES, exit_behavior=exit_behavior),
        ],
    )

    with contextlib.suppress(BudgetExceededError):  # raised out of the run with "error"
        run_agent(agent, "buy", "invoke")

    assert roomy.attempts == []
    roomy.assert_books_balance("10")
    tight.assert_books_balance("1")
