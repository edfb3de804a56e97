"""SpendGuardPreSignPolicy inside the SDK's own LangGraph middleware, with a fake chat model,
a paid tool that answers 402, and the emulator as the AgentCore payments service."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from bedrock_agentcore.payments.integrations.config import AgentCorePaymentsPluginConfig
from bedrock_agentcore.payments.integrations.langgraph import AgentCorePaymentsMiddleware
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from spendguard import BudgetExceededError, Money, SpendGuard
from spendguard.emulator import x402_accept, x402_challenge
from spendguard_agentcore import SpendGuardPreSignPolicy

SOLANA_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


class FakeChatModel(FakeMessagesListChatModel):
    """Replays scripted messages; tools are bound by the agent, the script ignores them."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeChatModel:
        return self


def paid_api(challenge: dict[str, Any], calls: list[dict[str, str] | None]) -> BaseTool:
    """A tool that answers 402 until it is called with a payment header."""

    @tool
    def fetch_data(url: str, headers: dict[str, str] | None = None) -> str:
        """Fetch a paid URL."""
        calls.append(headers)
        if headers and {"X-PAYMENT", "PAYMENT-SIGNATURE"} & {k.upper() for k in headers}:
            return "the data"
        return "PAYMENT_REQUIRED: " + json.dumps(challenge)

    return fetch_data


def fetch_call() -> AIMessage:
    args = {"url": "https://api.example.com/data"}
    return AIMessage(content="", tool_calls=[{"name": "fetch_data", "args": args, "id": "c1"}])


@pytest.fixture
def payment(new_payment_session: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    made = new_payment_session(budget="1.00")
    # The SDK's PaymentManager builds its own boto3 client: point it at the emulator.
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", made.emulator.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator")
    return made


@pytest.fixture
def guard(payment: Any) -> SpendGuard:
    return SpendGuard(
        payment.arn, payment.session_id, user_id=payment.user_id, client=payment.client
    )


def build_agent(payment: Any, policy: SpendGuardPreSignPolicy, tool_: BaseTool) -> Any:
    config = AgentCorePaymentsPluginConfig(
        payment_manager_arn=payment.arn,
        user_id=payment.user_id,
        payment_instrument_id=payment.instrument_id,
        payment_session_id=payment.session_id,
        region="us-east-1",
        post_payment_retry_delay_seconds=0,
        pre_sign_policy=policy,
    )
    model = FakeChatModel(responses=[fetch_call(), AIMessage(content="done")])
    middleware = AgentCorePaymentsMiddleware(config)
    return create_agent(model=model, tools=[tool_], middleware=[middleware])


def tool_message(messages: list[BaseMessage]) -> ToolMessage:
    (found,) = [m for m in messages if isinstance(m, ToolMessage)]
    return found


def test_an_affordable_payment_is_signed_and_charged_once(payment: Any, guard: SpendGuard) -> None:
    calls: list[dict[str, str] | None] = []
    policy = SpendGuardPreSignPolicy(guard)
    agent = build_agent(payment, policy, paid_api(x402_challenge("0.25"), calls))

    out = agent.invoke({"messages": [("user", "get the data")]})

    assert tool_message(out["messages"]).content == "the data"
    assert len(calls) == 2  # retried with the signed payment
    assert calls[1] is not None
    assert payment.available() == Decimal("0.75")  # ProcessPayment ran on the emulator
    assert [m.amount for m in policy.signed] == [Decimal("0.25")]
    snap = guard.snapshot()  # committed as a session charge, before the server showed it
    assert (snap.held.amount, snap.pending_session.amount) == (Decimal(0), Decimal("0.25"))
    assert snap.effective_available.amount == Decimal("0.75")
    guard.refresh()
    snap = guard.snapshot()  # the server absorbed it: counted once, not twice
    assert (snap.pending_session.amount, snap.effective_available.amount) == (
        Decimal(0),
        Decimal("0.75"),
    )


def test_a_payment_over_budget_is_never_signed(payment: Any, guard: SpendGuard) -> None:
    calls: list[dict[str, str] | None] = []
    process_before = payment.emulator.faults.calls("ProcessPayment")
    blocked: list[Any] = []
    policy = SpendGuardPreSignPolicy(guard, on_blocked=blocked.append)
    agent = build_agent(payment, policy, paid_api(x402_challenge("1.50", version=2), calls))

    out = agent.invoke({"messages": [("user", "get the data")]})

    message = tool_message(out["messages"])
    assert message.status == "error"
    assert str(message.content).startswith("PAYMENT ERROR:")
    assert "pre_sign_policy" in str(message.content)
    assert "Do not retry" in str(message.content)
    assert calls == [None]
    assert payment.emulator.faults.calls("ProcessPayment") == process_before
    assert payment.available() == Decimal("1.00")
    (refusal,) = blocked
    assert isinstance(refusal.error, BudgetExceededError)
    assert refusal.error.requested == Money.of("1.50")
    assert refusal.message.startswith("Payment blocked by spend limit")
    snap = guard.snapshot()
    assert (snap.held.amount, snap.committed_unreflected.amount) == (Decimal(0), Decimal(0))


def test_the_most_expensive_option_is_gated(payment: Any, guard: SpendGuard) -> None:
    cheap = x402_accept("0.10")  # what the SDK would pick for an ETHEREUM wallet
    dear = {**x402_accept("0.90"), "asset": SOLANA_USDC, "network": "solana"}
    challenge = {
        "statusCode": 402,
        "headers": {},
        "body": {"x402Version": 1, "accepts": [cheap, dear]},
    }
    payment.emulator.spend(payment.session_id, "0.50")  # someone else spent half
    calls: list[dict[str, str] | None] = []
    agent = build_agent(payment, SpendGuardPreSignPolicy(guard), paid_api(challenge, calls))

    out = agent.invoke({"messages": [("user", "get the data")]})

    # The SDK would have paid the cheap option, which fits; the policy cannot know that.
    assert tool_message(out["messages"]).status == "error"
    assert calls == [None]
    assert payment.available() == Decimal("0.50")


def test_the_async_agent_path_runs_the_policy_too(payment: Any, guard: SpendGuard) -> None:
    calls: list[dict[str, str] | None] = []
    policy = SpendGuardPreSignPolicy(guard)
    agent = build_agent(payment, policy, paid_api(x402_challenge("0.40", version=2), calls))

    out = asyncio.run(agent.ainvoke({"messages": [("user", "get the data")]}))

    assert tool_message(out["messages"]).content == "the data"
    assert payment.available() == Decimal("0.60")
    assert [m.amount for m in policy.signed] == [Decimal("0.40")]


def test_missing_sdk_raises_import_error_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bedrock_agentcore.payments", None)
    monkeypatch.delitem(sys.modules, "spendguard_agentcore")
    with pytest.raises(ImportError, match=r'pip install "spendguard\[agentcore\]"'):
        importlib.import_module("spendguard_agentcore")
