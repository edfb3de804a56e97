"""The official SDK's Strands plugin, end to end: a scripted model calls the plugin's own
``http_request`` tool on a paid API on 127.0.0.1; the plugin signs with ProcessPayment on the
emulator and retries with the payment header, or is refused when the payment is over budget
(by SpendGuardPreSignPolicy before signing, or else by the emulator's session limit)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from bedrock_agentcore.payments.integrations.config import AgentCorePaymentsPluginConfig
from bedrock_agentcore.payments.integrations.strands import AgentCorePaymentsPlugin
from conftest import PaymentSessionFixture
from strands import Agent
from strands_model import ScriptedModel

from spendguard import BudgetExceededError
from spendguard.emulator import DEFAULT_CONNECTOR_ID, mpp_challenge, x402_challenge
from spendguard_agentcore import SpendGuardPreSignPolicy

Call = tuple[str, str, dict[str, Any]]  # toolUseId, tool name, input
CHALLENGES = {  # each asks 0.25 USD
    "x402 v1": x402_challenge("0.25"),
    "x402 v2": x402_challenge("0.25", version=2),
    "MPP": mpp_challenge("0.25", challenge_id="ch-1"),
}


@pytest.fixture
def payment(
    new_payment_session: Callable[..., PaymentSessionFixture], agentcore_env: dict[str, str]
) -> PaymentSessionFixture:
    """A 1.00 USD session; the plugin's own PaymentManager finds the emulator by the env."""
    return new_payment_session("1.00")


def plugin(payment: PaymentSessionFixture, **config: Any) -> AgentCorePaymentsPlugin:
    return AgentCorePaymentsPlugin(
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


def fetch(url: str, tool_use_id: str = "t1") -> list[Call]:
    return [(tool_use_id, "http_request", {"url": url})]


def tool_results(agent: Agent) -> dict[str, str]:
    """The text of every toolResult the model was sent, by toolUseId."""
    return {
        block["toolResult"]["toolUseId"]: " ".join(
            c.get("text", "") for c in block["toolResult"]["content"]
        )
        for message in agent.messages
        for block in message["content"]
        if "toolResult" in block
    }


@pytest.mark.parametrize("kind", list(CHALLENGES))
def test_the_plugin_pays_the_402_on_the_emulator_and_the_retry_succeeds(
    payment: PaymentSessionFixture, seller: Any, kind: str
) -> None:
    seller.asks(CHALLENGES[kind])
    calls = payment.emulator.faults.calls("ProcessPayment")
    agent = Agent(
        model=ScriptedModel([fetch(seller.url), "done"]),
        plugins=[plugin(payment)],
        callback_handler=None,
    )

    agent("get the paid data")

    result = json.loads(tool_results(agent)["t1"])
    assert (result["statusCode"], result["body"]) == (200, {"data": "the paid data"})
    assert len(seller.requests) == 2  # the 402, then the retry with the payment header
    assert seller.paid() == seller.requests[1:]
    assert payment.emulator.faults.calls("ProcessPayment") == calls + 1
    assert payment.available() == Decimal("0.75")


def test_spendguard_admits_an_affordable_payment_on_the_plugins_path(
    payment: PaymentSessionFixture, seller: Any
) -> None:
    seller.asks(x402_challenge("0.40", version=2))
    policy = SpendGuardPreSignPolicy(payment.guard())
    agent = Agent(
        model=ScriptedModel([fetch(seller.url), "done"]),
        plugins=[plugin(payment, pre_sign_policy=policy)],
        callback_handler=None,
    )

    agent("get the paid data")

    assert json.loads(tool_results(agent)["t1"])["statusCode"] == 200
    assert [m.amount for m in policy.signed] == [Decimal("0.40")]
    assert payment.available() == Decimal("0.60")


def _refused(agent: Agent, seller: Any) -> dict[str, Any]:
    """Run two fetches; the plugin reports the first one's failure before the second."""
    result = agent("get the paid data")
    assert tool_results(agent)["t1"].startswith("PAYMENT_REQUIRED: ")  # the 402, unpaid
    assert seller.paid() == []
    assert len(seller.requests) == 1
    assert result.stop_reason == "interrupt"
    (interrupt,) = result.interrupts
    return dict(interrupt.reason)


def test_spendguard_blocks_an_over_budget_payment_before_it_is_signed(
    payment: PaymentSessionFixture, seller: Any
) -> None:
    seller.asks(x402_challenge("1.50"))
    calls = payment.emulator.faults.calls("ProcessPayment")
    blocked: list[Any] = []
    policy = SpendGuardPreSignPolicy(payment.guard(), on_blocked=blocked.append)
    agent = Agent(
        model=ScriptedModel([fetch(seller.url), fetch(seller.url, "t2")]),
        plugins=[plugin(payment, pre_sign_policy=policy)],
        callback_handler=None,
    )

    reason = _refused(agent, seller)

    assert reason["exceptionType"] == "PaymentError"
    assert "pre_sign_policy" in reason["exceptionMessage"]
    assert payment.emulator.faults.calls("ProcessPayment") == calls  # never signed
    assert payment.available() == Decimal("1.00")
    (refusal,) = blocked
    assert isinstance(refusal.error, BudgetExceededError)


def test_without_a_policy_the_emulators_session_limit_refuses(
    payment: PaymentSessionFixture, seller: Any
) -> None:
    seller.asks(x402_challenge("1.50"))
    calls = payment.emulator.faults.calls("ProcessPayment")
    agent = Agent(
        model=ScriptedModel([fetch(seller.url), fetch(seller.url, "t2")]),
        plugins=[plugin(payment)],
        callback_handler=None,
    )

    reason = _refused(agent, seller)

    assert reason["exceptionType"] == "InsufficientBudget"
    assert payment.emulator.faults.calls("ProcessPayment") == calls + 1  # asked, refused
    assert payment.available() == Decimal("1.00")


def test_the_plugins_balance_tool_reads_the_wallet_on_the_emulator(
    payment: PaymentSessionFixture,
) -> None:
    payment.emulator.fund(payment.instrument_id, "5.00")
    ask = {"payment_instrument_id": payment.instrument_id, "chain": "BASE_SEPOLIA"}
    agent = Agent(
        model=ScriptedModel([[("t1", "get_payment_instrument_balance", ask)], "done"]),
        plugins=[plugin(payment)],
        callback_handler=None,
    )

    agent("how much is in my wallet?")

    text = tool_results(agent)["t1"]
    assert "5000000" in text
    assert "UnknownOperation" not in text
