"""Approval above an amount in SpendLimitMiddleware, through a real LangGraph interrupt: the
money is held while the run is paused, the answer resumes it with ``Command(resume=...)``."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from redis_server import (  # noqa: F401 - fixtures
    redis_binary,
    redis_server_fixture,
    redis_url_fixture,
)

from spendguard import Money, SpendGuard
from spendguard.approval import Approvals, answer
from spendguard.pricing import Blocked, from_argument
from spendguard.redis_ledger import RedisLedger
from spendguard_langchain import SpendLimitMiddleware
from tests.integrations.langchain.conftest import Shop, ToolCallingModel, tool_calls

PRICES = {"buy_report": from_argument("amount")}
HOW = ["invoke", "ainvoke"]


def buy(ticker: str, amount: str) -> AIMessage:
    return tool_calls(("buy_report", {"ticker": ticker, "amount": amount}))


class Run:
    """One agent thread: invoke, resume, and what it holds meanwhile."""

    def __init__(self, shop: Shop, *turns: AIMessage, how: str = "invoke", **kwargs: Any):
        self.shop = shop
        self.how = how
        self.blocked: list[Blocked] = []
        self.approvals = kwargs.pop("approvals", None) or Approvals(above="5")
        middleware = SpendLimitMiddleware(
            shop.guard,
            PRICES,
            approvals=self.approvals,
            on_blocked=self.blocked.append,
            **kwargs,
        )
        self.agent = create_agent(
            ToolCallingModel(responses=list(turns)),
            tools=[shop.buy_report(asynchronous=how == "ainvoke")],
            middleware=[middleware],
            checkpointer=InMemorySaver(),
        )
        self.config: Any = {"configurable": {"thread_id": "thread-1"}}

    def send(self, request: Any) -> dict[str, Any]:
        if self.how == "invoke":
            result: dict[str, Any] = self.agent.invoke(request, self.config)
        else:
            result = asyncio.run(self.agent.ainvoke(request, self.config))
        return result

    def start(self) -> dict[str, Any]:
        return self.send({"messages": [HumanMessage("buy a report")]})

    def resume(self, reply: object) -> dict[str, Any]:
        return self.send(Command(resume=reply))

    def held(self) -> Decimal:
        return self.shop.guard.snapshot().held.amount


def asked(result: dict[str, Any]) -> dict[str, Any]:
    """The approval payload the run paused with."""
    (pause,) = result["__interrupt__"]
    value: dict[str, Any] = pause.value
    assert value["type"] == "spendguard_approval"
    return value


def tool_messages(messages: list[BaseMessage]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


@pytest.mark.parametrize("how", HOW)
def test_an_approved_call_runs_with_the_money_held_while_paused(shop: Shop, how: str) -> None:
    run = Run(shop, buy("ACME", "6"), AIMessage("done"), how=how)

    paused = run.start()
    value = asked(paused)
    assert (value["tool"], value["amount"], value["arguments"]) == (
        "buy_report",
        "6",
        {"ticker": "ACME", "amount": "6"},
    )
    assert run.held() == Decimal("6")
    assert shop.attempts == []

    done = run.resume(answer(value, approved=True))

    (paid,) = tool_messages(done["messages"])
    assert paid.status == "success"
    assert done["messages"][-1].content == "done"
    assert shop.bought == ["ACME"]
    shop.assert_books_balance("4")


@pytest.mark.parametrize("how", HOW)
def test_a_rejected_call_never_runs_and_its_money_is_released(shop: Shop, how: str) -> None:
    run = Run(shop, buy("ACME", "6"), AIMessage("done"), how=how)
    value = asked(run.start())

    done = run.resume(answer(value, approved=False))

    (refused,) = tool_messages(done["messages"])
    assert refused.status == "error"
    assert "declined" in refused.content
    assert value["request_id"] not in refused.content
    assert shop.attempts == []
    assert [b.error.rule for b in run.blocked] == ["approval_rejected"]
    shop.assert_books_balance("10")


def test_a_call_at_or_below_the_threshold_runs_without_a_pause(shop: Shop) -> None:
    run = Run(shop, buy("ACME", "5"), AIMessage("done"))
    done = run.start()
    assert "__interrupt__" not in done
    assert shop.bought == ["ACME"]
    shop.assert_books_balance("5")


def test_an_approval_is_used_once_the_same_call_again_asks_again(shop: Shop) -> None:
    same = buy("ACME", "3")
    again = AIMessage(content="", tool_calls=same.tool_calls)  # the model repeats its call id
    run = Run(shop, same, again, AIMessage("done"), approvals=Approvals(above="2"))
    first = asked(run.start())
    second = asked(run.resume(answer(first, approved=True)))
    assert second["request_id"] != first["request_id"]
    assert shop.bought == ["ACME"]
    assert run.held() == Decimal("3")

    # The first approval replayed does not answer the second request: the run asks again.
    third = asked(run.resume(answer(first, approved=True)))
    assert third["request_id"] == second["request_id"]
    assert shop.bought == ["ACME"]

    run.resume(answer(second, approved=True))
    assert shop.bought == ["ACME", "ACME"]
    shop.assert_books_balance("4")


def test_changed_arguments_need_a_new_approval(shop: Shop) -> None:
    run = Run(shop, buy("ACME", "6"), AIMessage("done"))
    first = asked(run.start())
    assert run.held() == Decimal("6")

    # While the person decides, the pending tool call is edited to ask for more.
    messages = run.agent.get_state(run.config).values["messages"]
    (message,) = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    edited = message.model_copy(
        update={
            "tool_calls": [{**message.tool_calls[0], "args": {"ticker": "ACME", "amount": "8"}}]
        }
    )
    run.agent.update_state(run.config, {"messages": [edited]}, as_node="model")

    second = asked(run.resume(answer(first, approved=True)))

    assert second["request_id"] != first["request_id"]
    assert second["amount"] == "8"
    assert run.held() == Decimal("8")  # the first hold was released
    assert shop.attempts == []
    run.resume(answer(second, approved=True))
    assert shop.bought == ["ACME"]
    shop.assert_books_balance("2")


def test_the_decision_is_pinned_when_asked_not_when_resumed(shop: Shop) -> None:
    run = Run(shop, buy("ACME", "6"), AIMessage("done"))
    value = asked(run.start())

    # Meanwhile the threshold is raised (the call would need no approval now) and the rest
    # of the budget is spent (the call would no longer fit): the answer still decides.
    run.approvals.above = Money.of("100")
    with shop.guard.reserve("4", tool="elsewhere"):
        pass
    done = run.resume(answer(value, approved=False))
    assert shop.attempts == []
    assert "declined" in tool_messages(done["messages"])[0].content
    assert run.held() == 0


def test_an_approval_after_the_timeout_is_refused(shop: Shop) -> None:
    now = [0.0]
    approvals = Approvals(above="5", timeout=60, timer=lambda: now[0])
    run = Run(shop, buy("ACME", "6"), AIMessage("done"), approvals=approvals)
    value = asked(run.start())
    now[0] = 61.0
    done = run.resume(answer(value, approved=True))
    assert shop.attempts == []
    assert "in time" in tool_messages(done["messages"])[0].content
    assert [b.error.rule for b in run.blocked] == ["approval_timeout"]


def test_a_resume_in_another_process_holds_again_and_takes_the_answer(
    new_payment_session: Any,
) -> None:
    session = new_payment_session("10")
    one, other = shop_of(session), shop_of(session)
    first = Run(one, buy("ACME", "6"), AIMessage("done"))
    value = asked(first.start())
    assert first.held() == Decimal("6")

    # Another process: its own guard on the same session, its own middleware and Approvals,
    # the same checkpointer. Nothing is pinned there: it holds again and takes the answer.
    second = Run(other, AIMessage("done"))
    second.agent = create_agent(
        ToolCallingModel(responses=[AIMessage("done")]),
        tools=[other.buy_report()],
        middleware=[SpendLimitMiddleware(other.guard, PRICES, approvals=Approvals(above="5"))],
        checkpointer=first.agent.checkpointer,
    )
    done = second.resume(answer(value, approved=True))

    assert tool_messages(done["messages"])[0].status == "success"
    assert other.bought == ["ACME"]
    assert second.held() == 0
    # The first process's hold is not found from there (an in-memory ledger is per process):
    # it stays counted here until its approval lease lapses.
    assert first.held() == Decimal("6")


@pytest.mark.redis
def test_a_resume_in_another_process_releases_the_first_hold_in_a_shared_ledger(
    new_payment_session: Any, redis_url: str
) -> None:
    session = new_payment_session("20")  # room for the second process's own hold
    prefix = f"t-{uuid.uuid4().hex}"
    one, other = (shop_of(session, RedisLedger.from_url(redis_url, prefix=prefix)) for _ in "12")
    first = Run(one, buy("ACME", "6"), AIMessage("done"))
    value = asked(first.start())
    assert other.guard.snapshot().held.amount == Decimal("6")  # seen from the other process

    second = Run(other, AIMessage("done"))
    second.agent = create_agent(
        ToolCallingModel(responses=[AIMessage("done")]),
        tools=[other.buy_report()],
        middleware=[SpendLimitMiddleware(other.guard, PRICES, approvals=Approvals(above="5"))],
        checkpointer=first.agent.checkpointer,
    )
    done = second.resume(answer(value, approved=True))

    assert tool_messages(done["messages"])[0].status == "success"
    assert other.bought == ["ACME"]
    # The asking process's hold was found in the shared ledger and released: nothing is
    # held, and the 6 is counted once, as the payment.
    snap = one.guard.snapshot()
    assert snap.held == Money.zero()
    assert snap.external == Money.zero()
    other.assert_books_balance("14")


def shop_of(session: Any, ledger: Any = None) -> Shop:
    """A shop with its own guard (as in its own process) on ``session``."""
    guard = SpendGuard(
        session.arn,
        session.session_id,
        user_id=session.user_id,
        client=session.client,
        ledger=ledger,
    )
    return Shop(guard, lambda amount: session.pay(amount, token=False), session.available)
