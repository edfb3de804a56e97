"""SpendGuardCallbackHandler stops tools on every LangChain path and never leaks a hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from spendguard import (
    BudgetExceededError,
    InvalidArgumentError,
    Money,
    NothingSpentError,
    PricingError,
)
from spendguard.pricing import Blocked, from_argument
from spendguard_langchain import SpendGuardCallbackHandler
from tests.integrations.langchain.conftest import (
    Shop,
    ShopFactory,
    ToolCallingModel,
    run_agent,
    tool_calls,
)

PRICES = {"buy_report": from_argument("amount")}

# (how the tool is invoked, whether the tool is async). An async-only tool cannot run under
# `invoke` at all (LangChain raises NotImplementedError), so that pair is not a path.
PATHS = [("invoke", False), ("ainvoke", False), ("ainvoke", True)]


def run(tool: BaseTool, tool_input: Any, handlers: list[BaseCallbackHandler], how: str) -> Any:
    config: Any = {"callbacks": handlers}
    if how == "invoke":
        return tool.invoke(tool_input, config=config)
    return asyncio.run(tool.ainvoke(tool_input, config=config))


@pytest.mark.parametrize(("how", "asynchronous"), PATHS)
def test_runs_what_fits_and_stops_what_does_not(shop: Shop, how: str, asynchronous: bool) -> None:
    handler = SpendGuardCallbackHandler(shop.guard, PRICES)
    tool = shop.buy_report(asynchronous=asynchronous)

    assert run(tool, {"ticker": "ACME", "amount": "6"}, [handler], how) == "report on ACME"
    with pytest.raises(BudgetExceededError) as blocked:
        run(tool, {"ticker": "BIG", "amount": "5"}, [handler], how)

    assert blocked.value.requested == Money.of("5")
    assert blocked.value.available == Money.of("4")
    assert shop.bought == ["ACME"]  # the blocked call never ran
    assert not handler.open_holds  # ...and left no hold behind
    shop.assert_books_balance("4")


class _NaiveAsyncHandler(AsyncCallbackHandler):
    raise_error = True

    async def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
        raise BudgetExceededError(Money.of("5"), Money.zero(), session_id="s")


class _NaiveSyncHandler(BaseCallbackHandler):  # raise_error left False
    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
        raise BudgetExceededError(Money.of("5"), Money.zero(), session_id="s")


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
@pytest.mark.parametrize("naive", [_NaiveAsyncHandler, _NaiveSyncHandler])
def test_langchain_ignores_naive_handlers(
    shop: Shop, how: str, naive: type[BaseCallbackHandler]
) -> None:
    """Why the handler is sync with raise_error: these shapes do NOT stop a sync tool."""
    run(shop.buy_report(), {"ticker": "ACME", "amount": "1"}, [naive()], how)
    assert shop.bought == ["ACME"]


class OutOfStock(Exception):
    """The upstream refused before taking any money."""


def three_orders(shop: Shop, tool: BaseTool, handler: SpendGuardCallbackHandler, how: str) -> None:
    """Three 0.60 orders in a row; each either raises from the tool or is blocked."""
    for ticker in ("A", "B", "C"):
        with pytest.raises(Exception) as raised:  # noqa: PT011 - the tool's or the guard's
            run(tool, {"ticker": ticker, "amount": "0.60"}, [handler], how)
        if ticker not in shop.attempts:
            assert isinstance(raised.value, BudgetExceededError)


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_a_tool_that_raises_keeps_its_charge(make_shop: ShopFactory, how: str) -> None:
    """The API took the money, then timed out: the charge stays, so only one call fits."""
    shop = make_shop("1.00")
    handler = SpendGuardCallbackHandler(shop.guard, PRICES)
    tool = shop.buy_report(raises_after_paying=TimeoutError("upstream timed out"))

    three_orders(shop, tool, handler, how)

    assert shop.attempts == ["A"]
    assert not handler.open_holds
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
    handler = SpendGuardCallbackHandler(shop.guard, PRICES, release_on=release_on)
    tool = shop.buy_report(raises_before_paying=error)

    three_orders(shop, tool, handler, "invoke")

    assert shop.attempts == ["A", "B", "C"]
    assert not handler.open_holds
    shop.assert_books_balance("1.00")


def test_a_handled_tool_error_keeps_its_charge(shop: Shop) -> None:
    """An error ToolMessage means the tool ran, and a tool that ran may have spent."""
    handler = SpendGuardCallbackHandler(shop.guard, PRICES, settlement="external")
    tool = shop.buy_report(fail=True)  # paid elsewhere, if at all: the guard cannot know
    tool.handle_tool_error = True
    call = {"name": "buy_report", "args": {"ticker": "X", "amount": "6"}, "id": "c1"}

    result = run(tool, {**call, "type": "tool_call"}, [handler], "invoke")

    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert not handler.open_holds
    snap = shop.guard.snapshot()
    assert (snap.held, snap.external) == (Money.zero(), Money.of("6"))


def test_open_holds_shows_the_call_in_flight(shop: Shop) -> None:
    handler = SpendGuardCallbackHandler(shop.guard, {"peek": "2"})
    seen: list[list[Money]] = []

    @tool
    def peek() -> str:
        """Report what the handler holds while this call runs."""
        seen.append([hold.amount for hold in handler.open_holds.values()])
        return "ok"

    run(peek, {}, [handler], "invoke")

    assert seen == [[Money.of("2")]]
    assert not handler.open_holds


def test_prices_is_a_deprecated_alias_of_pricing(shop: Shop) -> None:
    with pytest.warns(DeprecationWarning, match="pricing"):
        handler = SpendGuardCallbackHandler(shop.guard, prices=PRICES)
    with pytest.raises(BudgetExceededError):
        run(shop.buy_report(), {"ticker": "BIG", "amount": "20"}, [handler], "invoke")
    with pytest.raises(InvalidArgumentError, match="pricing"):
        SpendGuardCallbackHandler(shop.guard, PRICES, prices=PRICES)
    with pytest.raises(InvalidArgumentError, match="pricing"):
        SpendGuardCallbackHandler(shop.guard)


def test_on_blocked_sees_every_blocked_call(shop: Shop) -> None:
    blocked: list[Blocked] = []
    handler = SpendGuardCallbackHandler(shop.guard, PRICES, on_blocked=blocked.append)
    with pytest.raises(BudgetExceededError) as raised:
        run(shop.buy_report(), {"ticker": "BIG", "amount": "20"}, [handler], "invoke")
    assert [b.error for b in blocked] == [raised.value]


def test_unpriceable_call_is_blocked(shop: Shop) -> None:
    handler = SpendGuardCallbackHandler(shop.guard, PRICES)
    with pytest.raises(PricingError):
        run(shop.buy_report(), {"ticker": "ACME", "amount": "lots"}, [handler], "invoke")
    assert shop.bought == []


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_second_guard_blocking_releases_the_first_guards_hold(
    make_shop: ShopFactory, how: str
) -> None:
    """A blocked tool never runs, so on_tool_error never fires: nothing may stay held."""
    roomy, tight = make_shop("10"), make_shop("1")
    handlers: list[BaseCallbackHandler] = [
        SpendGuardCallbackHandler(roomy.guard, PRICES),
        SpendGuardCallbackHandler(tight.guard, PRICES),
    ]
    with pytest.raises(BudgetExceededError):
        run(roomy.buy_report(), {"ticker": "ACME", "amount": "3"}, handlers, how)
    assert roomy.bought == []
    roomy.assert_books_balance("10")
    tight.assert_books_balance("1")


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_inside_create_agent_a_block_aborts_the_run(shop: Shop, how: str) -> None:
    model = ToolCallingModel(
        responses=[
            tool_calls(
                ("buy_report", {"ticker": "ACME", "amount": "6"}),
                ("buy_report", {"ticker": "BIG", "amount": "5"}),
            ),
            AIMessage(content="never reached"),
        ]
    )
    agent = create_agent(model, tools=[shop.buy_report()])
    handler = SpendGuardCallbackHandler(shop.guard, PRICES)
    with pytest.raises(BudgetExceededError):
        run_agent(agent, "buy both", how, config={"callbacks": [handler]})

    # The two calls raced for one budget: exactly one ran and paid, the other never ran.
    assert len(shop.bought) == 1
    assert not handler.open_holds
    shop.assert_books_balance("4" if shop.bought == ["ACME"] else "5")


@pytest.mark.parametrize("tool_call_id", ["call_0", ""], ids=["repeated", "blank"])
def test_repeated_or_blank_tool_call_ids_cannot_run_uncharged(
    make_shop: ShopFactory, tool_call_id: str
) -> None:
    """Holds are keyed by LangChain's run_id, never by the model's tool call id."""
    shop = make_shop("1.00")
    orders = [
        {"name": "buy_report", "args": {"ticker": t, "amount": "0.90"}, "id": tool_call_id}
        for t in ("A", "B")
    ]
    model = ToolCallingModel(responses=[AIMessage("", tool_calls=orders), AIMessage("unreached")])
    agent = create_agent(model, tools=[shop.buy_report()])
    handler = SpendGuardCallbackHandler(shop.guard, PRICES)

    with pytest.raises(BudgetExceededError):
        run_agent(agent, "buy both", "invoke", config={"callbacks": [handler]})

    assert len(shop.bought) == 1
    assert not handler.open_holds
    shop.assert_books_balance("0.10")
