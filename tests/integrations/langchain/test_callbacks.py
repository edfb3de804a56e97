"""SpendGuardCallbackHandler stops tools on every LangChain path and never leaks a hold."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool

from spendguard import BudgetExceededError, Money, PricingError
from spendguard.pricing import from_argument
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
    assert handler.open_holds == 0  # ...and left no hold behind
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


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_tool_that_raises_releases_its_hold(shop: Shop, how: str) -> None:
    handler = SpendGuardCallbackHandler(shop.guard, PRICES)
    with pytest.raises(Exception, match="no report for ACME"):
        run(shop.buy_report(fail=True), {"ticker": "ACME", "amount": "6"}, [handler], how)
    assert handler.open_holds == 0
    shop.assert_books_balance("10")


def test_handled_tool_error_releases_its_hold(shop: Shop) -> None:
    handler = SpendGuardCallbackHandler(shop.guard, PRICES)
    tool = shop.buy_report(fail=True)
    tool.handle_tool_error = True
    call = {"name": "buy_report", "args": {"ticker": "X", "amount": "6"}, "id": "c1"}
    result = run(tool, {**call, "type": "tool_call"}, [handler], "invoke")
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert handler.open_holds == 0
    shop.assert_books_balance("10")


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
    assert handler.open_holds == 0
    shop.assert_books_balance("4" if shop.bought == ["ACME"] else "5")
