"""One LangChain agent (middleware) or tool (callback) serving two users: the guard comes from
the run's ``runtime.context`` or its config metadata."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool

from spendguard import BudgetExceededError
from spendguard.gate import GuardResolutionError
from spendguard.pool import GuardPool
from spendguard.pricing import Blocked
from spendguard_langchain import SpendGuardCallbackHandler, SpendLimitMiddleware
from tests.integrations.langchain.conftest import ToolCallingModel, tool_calls

PRICES = {"buy_report": "0.40"}


@dataclass
class UserContext:
    user_id: str
    session_id: str | None


@pytest.fixture
def setup(new_payment_session: Callable[..., Any]) -> tuple[Any, Any, GuardPool]:
    alice = new_payment_session("1.00", user_id="alice")
    bob = new_payment_session("0.50", user_id="bob")
    return alice, bob, GuardPool(client=alice.client, settlement="external")


def report_tool(ran: list[str]) -> StructuredTool:
    def buy_report(topic: str) -> str:
        ran.append(topic)
        return f"report on {topic}"

    return StructuredTool.from_function(buy_report, description="Buy a report.")


def tool_messages(result: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


@pytest.mark.parametrize("how", ["invoke", "ainvoke"])
def test_middleware_two_users_share_one_agent(setup: tuple[Any, Any, GuardPool], how: str) -> None:
    alice, bob, pool = setup
    ran: list[str] = []
    middleware = SpendLimitMiddleware(
        lambda ctx: pool.get(alice.arn, ctx.session_id, user_id=ctx.user_id), PRICES
    )

    def run(context: UserContext) -> list[ToolMessage]:
        model = ToolCallingModel(
            responses=[
                tool_calls(("buy_report", {"topic": "a"})),
                tool_calls(("buy_report", {"topic": "b"})),
                AIMessage("done"),
            ]
        )
        agent = create_agent(
            model=model,
            tools=[report_tool(ran)],
            middleware=[middleware],
            context_schema=UserContext,
        )
        request = {"messages": [HumanMessage("go")]}
        if how == "invoke":
            result = agent.invoke(request, context=context)
        else:
            result = asyncio.run(agent.ainvoke(request, context=context))
        return tool_messages(result)

    first, second = run(UserContext("alice", alice.session_id))
    assert (first.status, second.status) == ("success", "success")
    first, second = run(UserContext("bob", bob.session_id))
    assert first.status == "success"
    assert second.status == "error"
    assert "Payment blocked by spend limit" in str(second.content)
    assert ran == ["a", "b", "a"]
    snap = pool.get(alice.arn, alice.session_id, user_id="alice").snapshot()
    assert snap.effective_available.amount == Decimal("0.20")
    snap = pool.get(alice.arn, bob.session_id, user_id="bob").snapshot()
    assert snap.effective_available.amount == Decimal("0.10")
    assert middleware.open_holds == {}


def test_middleware_blocks_a_run_without_a_session(setup: tuple[Any, Any, GuardPool]) -> None:
    alice, _, pool = setup
    ran: list[str] = []
    blocked: list[Blocked] = []
    middleware = SpendLimitMiddleware(
        lambda ctx: pool.get(alice.arn, ctx.session_id, user_id=ctx.user_id),
        PRICES,
        on_blocked=blocked.append,
    )
    model = ToolCallingModel(
        responses=[tool_calls(("buy_report", {"topic": "a"})), AIMessage("done")]
    )
    agent = create_agent(model=model, tools=[report_tool(ran)], middleware=[middleware])
    result = agent.invoke({"messages": [HumanMessage("go")]})  # no context at all

    (message,) = tool_messages(result)
    assert message.status == "error"
    assert "no payment session is available" in str(message.content)
    assert alice.arn not in str(message.content)
    assert ran == []
    assert [b.error.rule for b in blocked] == ["session_unresolved"]
    assert "AttributeError" in str(blocked[0].error)


def test_middleware_names_itself_after_the_resolver(setup: tuple[Any, Any, GuardPool]) -> None:
    alice, _, pool = setup

    def per_user(ctx: UserContext) -> Any:
        return pool.get(alice.arn, ctx.session_id, user_id=ctx.user_id)

    assert SpendLimitMiddleware(per_user, PRICES).name == "SpendLimitMiddleware[" + (
        per_user.__qualname__ + "]"
    )


def test_callback_two_users_share_one_tool(setup: tuple[Any, Any, GuardPool]) -> None:
    alice, bob, pool = setup
    ran: list[str] = []
    handler = SpendGuardCallbackHandler(
        lambda meta: pool.get(alice.arn, meta["session_id"], user_id=meta["user_id"]), PRICES
    )
    tool = report_tool(ran)

    def call(user: Any, topic: str) -> Any:
        metadata = {"session_id": user.session_id, "user_id": user.user_id}
        return tool.invoke({"topic": topic}, config={"callbacks": [handler], "metadata": metadata})

    assert call(alice, "a") == "report on a"
    assert call(alice, "b") == "report on b"
    assert call(bob, "c") == "report on c"
    with pytest.raises(BudgetExceededError):
        call(bob, "d")
    assert ran == ["a", "b", "c"]
    snap = pool.get(alice.arn, bob.session_id, user_id="bob").snapshot()
    assert snap.effective_available.amount == Decimal("0.10")
    assert handler.open_holds == {}


def test_callback_blocks_a_run_without_a_session(setup: tuple[Any, Any, GuardPool]) -> None:
    alice, _, pool = setup
    ran: list[str] = []
    handler = SpendGuardCallbackHandler(
        lambda meta: pool.get(alice.arn, meta["session_id"], user_id="alice"), PRICES
    )
    with pytest.raises(GuardResolutionError) as info:
        report_tool(ran).invoke({"topic": "a"}, config={"callbacks": [handler]})
    assert info.value.rule == "session_unresolved"
    assert "no payment session is available" in info.value.model_message
    assert ran == []
