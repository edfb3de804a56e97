"""LangChain test helpers: a tool-calling fake chat model and a paid tool against a session.

``Shop`` is what every test needs from the payments side: a guard on a session, a tool whose
body pays through that session, and the server's own figure to compare the guard with.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from spendguard import Money, SpendGuard

if TYPE_CHECKING:
    from tests.conftest import PaymentSessionFixture

_ids = itertools.count(1)


class ToolCallingModel(FakeMessagesListChatModel):
    """Replays scripted AIMessages (some carrying tool calls); binding tools is a no-op."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingModel:
        return self


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> AIMessage:
    """One model turn asking for ``calls`` (name, args) in parallel."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}
            for name, args in calls
        ],
    )


def run_agent(agent: Any, prompt: str, how: str, config: Any = None) -> dict[str, Any]:
    """``agent.invoke`` or ``agent.ainvoke`` (``how``) with one user message."""
    request = {"messages": [HumanMessage(prompt)]}
    if how == "invoke":
        result: dict[str, Any] = agent.invoke(request, config=config)
    else:
        result = asyncio.run(agent.ainvoke(request, config=config))
    return result


@dataclass
class Shop:
    """A guard on one payment session and a ``buy_report`` tool that pays through it."""

    guard: SpendGuard
    pay: Callable[[str], None]
    server_available: Callable[[], Decimal]
    bought: list[str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)  # every call that ran, paid or not

    def buy_report(
        self,
        *,
        asynchronous: bool = False,
        fail: bool = False,
        raises_before_paying: BaseException | None = None,
        raises_after_paying: BaseException | None = None,
    ) -> BaseTool:
        """``buy_report(ticker, amount)``: pays ``amount`` through the session, then returns.

        With ``fail`` it raises a ToolException before paying; the ``raises_*`` errors are
        raised before paying or after (a paid API that took the money, then timed out).
        """

        def buy(ticker: str, amount: str) -> str:
            self.attempts.append(ticker)
            if fail:
                raise ToolException(f"no report for {ticker}")
            if raises_before_paying is not None:
                raise raises_before_paying
            self.pay(amount)
            if raises_after_paying is not None:
                raise raises_after_paying
            self.bought.append(ticker)
            return f"report on {ticker}"

        async def abuy(ticker: str, amount: str) -> str:
            return buy(ticker, amount)

        return StructuredTool.from_function(
            func=None if asynchronous else buy,
            coroutine=abuy if asynchronous else None,
            name="buy_report",
            description="Buy a market report.",
        )

    def assert_books_balance(self, available: str) -> None:
        """Server and guard agree on what is left, with nothing held or pending."""
        assert self.server_available() == Decimal(available)
        self.guard.refresh()
        snap = self.guard.snapshot()
        assert snap.held == Money.zero()
        assert snap.pending_session == Money.zero()
        assert snap.server_available == Money.of(available)
        assert snap.effective_available == Money.of(available)


ShopFactory = Callable[[str], Shop]


@pytest.fixture
def make_shop(new_payment_session: Callable[..., PaymentSessionFixture]) -> ShopFactory:
    """Build shops on fresh emulator sessions with the given budget (USD)."""

    def make(budget: str) -> Shop:
        session = new_payment_session(budget)
        guard = SpendGuard(
            session.arn,
            session.session_id,
            user_id=session.user_id,
            client=session.client,
            settlement="session",  # the tool pays with ProcessPayment through this session
        )

        def pay(amount: str) -> None:
            session.pay(amount, token=False)

        def server_available() -> Decimal:
            available = session.available()
            assert available is not None
            return available

        return Shop(guard, pay, server_available)

    return make


@pytest.fixture
def shop(make_shop: ShopFactory) -> Shop:
    """A shop with a budget of 10 USD."""
    return make_shop("10")
