"""The official SDK's LangGraph middleware, end to end: a fake chat model calls the
middleware's own ``http_request`` tool on a paid API on 127.0.0.1; the middleware signs with
ProcessPayment on the emulator and retries with the payment header, or is refused when the
payment is over budget (by SpendGuardPreSignPolicy before signing, or else by the emulator's
session limit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from bedrock_agentcore.payments.integrations.config import AgentCorePaymentsPluginConfig
from bedrock_agentcore.payments.integrations.langgraph import AgentCorePaymentsMiddleware
from conftest import PaymentSessionFixture
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from spendguard import BudgetExceededError
from spendguard.emulator import DEFAULT_CONNECTOR_ID, mpp_challenge, x402_challenge
from spendguard_agentcore import SpendGuardPreSignPolicy

CHALLENGES = {  # each asks 0.25 USD
    "x402 v1": x402_challenge("0.25"),
    "x402 v2": x402_challenge("0.25", version=2),
    "MPP": mpp_challenge("0.25", challenge_id="ch-1"),
}


class FakeChatModel(FakeMessagesListChatModel):
    """Replays scripted messages; tools are bound by the agent, the script ignores them."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeChatModel:
        return self


@pytest.fixture
def payment(
    new_payment_session: Callable[..., PaymentSessionFixture], agentcore_env: dict[str, str]
) -> PaymentSessionFixture:
    """A 1.00 USD session; the middleware's own PaymentManager finds the emulator by the env."""
    return new_payment_session("1.00")


def agent(payment: PaymentSessionFixture, tool: str, args: dict[str, Any], **config: Any) -> Any:
    """An agent whose model calls ``tool`` once, then answers "done"."""
    middleware = AgentCorePaymentsMiddleware(
        AgentCorePaymentsPluginConfig(
            payment_manager_arn=payment.arn,
            user_id=payment.user_id,
            payment_instrument_id=payment.instrument_id,
            payment_session_id=payment.session_id,
            payment_connector_id=DEFAULT_CONNECTOR_ID,
            region="us-east-1",
            post_payment_retry_delay_seconds=0,  # the default sleeps 3 s after signing
            **config,
        )
    )
    call = AIMessage(content="", tool_calls=[{"name": tool, "args": args, "id": "c1"}])
    model = FakeChatModel(responses=[call, AIMessage(content="done")])
    return create_agent(model=model, tools=[], middleware=[middleware])


def tool_message(messages: list[BaseMessage]) -> ToolMessage:
    (found,) = [m for m in messages if isinstance(m, ToolMessage)]
    return found


@pytest.mark.parametrize("kind", list(CHALLENGES))
def test_the_middleware_pays_the_402_on_the_emulator_and_the_retry_succeeds(
    payment: PaymentSessionFixture, seller: Any, kind: str
) -> None:
    seller.asks(CHALLENGES[kind])
    calls = payment.emulator.faults.calls("ProcessPayment")

    out = agent(payment, "http_request", {"url": seller.url}).invoke({"messages": [("user", "go")]})

    result = json.loads(str(tool_message(out["messages"]).content))
    assert (result["statusCode"], result["body"]) == (200, {"data": "the paid data"})
    assert len(seller.requests) == 2  # the 402, then the retry with the payment header
    assert seller.paid() == seller.requests[1:]
    assert payment.emulator.faults.calls("ProcessPayment") == calls + 1
    assert payment.available() == Decimal("0.75")


def test_spendguard_admits_an_affordable_payment_on_the_async_path(
    payment: PaymentSessionFixture, seller: Any
) -> None:
    seller.asks(mpp_challenge("0.40"))
    policy = SpendGuardPreSignPolicy(payment.guard())
    built = agent(payment, "http_request", {"url": seller.url}, pre_sign_policy=policy)

    out = asyncio.run(built.ainvoke({"messages": [("user", "go")]}))

    assert json.loads(str(tool_message(out["messages"]).content))["statusCode"] == 200
    assert [m.amount for m in policy.signed] == [Decimal("0.40")]
    assert payment.available() == Decimal("0.60")


def test_spendguard_blocks_an_over_budget_payment_before_it_is_signed(
    payment: PaymentSessionFixture, seller: Any
) -> None:
    seller.asks(x402_challenge("1.50", version=2))
    calls = payment.emulator.faults.calls("ProcessPayment")
    blocked: list[Any] = []
    policy = SpendGuardPreSignPolicy(payment.guard(), on_blocked=blocked.append)
    built = agent(payment, "http_request", {"url": seller.url}, pre_sign_policy=policy)

    out = built.invoke({"messages": [("user", "go")]})

    message = tool_message(out["messages"])
    assert message.status == "error"
    assert "pre_sign_policy" in str(message.content)
    assert payment.emulator.faults.calls("ProcessPayment") == calls  # never signed
    assert (len(seller.requests), seller.paid()) == (1, [])
    assert payment.available() == Decimal("1.00")
    (refusal,) = blocked
    assert isinstance(refusal.error, BudgetExceededError)


def test_without_a_policy_the_emulators_session_limit_refuses(
    payment: PaymentSessionFixture, seller: Any
) -> None:
    seller.asks(x402_challenge("1.50"))
    calls = payment.emulator.faults.calls("ProcessPayment")

    out = agent(payment, "http_request", {"url": seller.url}).invoke({"messages": [("user", "go")]})

    message = tool_message(out["messages"])
    assert message.status == "error"
    assert str(message.content).startswith("PAYMENT ERROR: Insufficient budget.")
    assert payment.emulator.faults.calls("ProcessPayment") == calls + 1  # asked, refused
    assert (len(seller.requests), seller.paid()) == (1, [])
    assert payment.available() == Decimal("1.00")


def test_the_middlewares_balance_tool_reads_the_wallet_on_the_emulator(
    payment: PaymentSessionFixture,
) -> None:
    payment.emulator.fund(payment.instrument_id, "5.00", chain="BASE")
    ask = {"payment_instrument_id": payment.instrument_id, "chain": "BASE"}

    out = agent(payment, "get_payment_instrument_balance", ask).invoke(
        {"messages": [("user", "how much is in my wallet?")]}
    )

    message = tool_message(out["messages"])
    assert message.status == "success"
    assert "5000000" in str(message.content)
