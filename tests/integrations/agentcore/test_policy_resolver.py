"""The pre-sign policy follows the SDK config's current session through a GuardPool: one
LangGraph agent of the official SDK serves two users with separate budgets, switched with
``update_payment_session_id()``; a config with no session yet is blocked before signing."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from bedrock_agentcore.payments.integrations.config import AgentCorePaymentsPluginConfig
from bedrock_agentcore.payments.integrations.langgraph import AgentCorePaymentsMiddleware
from conftest import PaymentSessionFixture
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage

from spendguard import InvalidArgumentError
from spendguard.emulator import DEFAULT_CONNECTOR_ID, x402_challenge
from spendguard.pool import GuardPool
from spendguard.pricing import Blocked
from spendguard_agentcore import SpendGuardPreSignPolicy, follow_config


class FakeChatModel(FakeMessagesListChatModel):
    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeChatModel:
        return self


def config_for(payment: PaymentSessionFixture, **extra: Any) -> AgentCorePaymentsPluginConfig:
    return AgentCorePaymentsPluginConfig(
        payment_manager_arn=payment.arn,
        user_id=payment.user_id,
        payment_instrument_id=payment.instrument_id,
        payment_session_id=payment.session_id,
        payment_connector_id=DEFAULT_CONNECTOR_ID,
        region="us-east-1",
        post_payment_retry_delay_seconds=0,
        **extra,
    )


def switch(config: AgentCorePaymentsPluginConfig, payment: PaymentSessionFixture) -> None:
    """What a service does between two users' requests on one agent."""
    config.user_id = payment.user_id
    config.update_payment_instrument_id(payment.instrument_id)
    config.update_payment_session_id(payment.session_id)


def fetch(middleware: AgentCorePaymentsMiddleware, url: str) -> ToolMessage:
    call = AIMessage(
        content="", tool_calls=[{"name": "http_request", "args": {"url": url}, "id": "c1"}]
    )
    model = FakeChatModel(responses=[call, AIMessage(content="done")])
    agent = create_agent(model=model, tools=[], middleware=[middleware])
    out = agent.invoke({"messages": [("user", "go")]})
    (message,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    return message


@pytest.fixture
def users(
    new_payment_session: Callable[..., PaymentSessionFixture], agentcore_env: dict[str, str]
) -> tuple[PaymentSessionFixture, PaymentSessionFixture]:
    return new_payment_session("1.00", user_id="alice"), new_payment_session("0.50", user_id="bob")


def test_one_agent_two_users_the_policy_follows_the_session(
    users: tuple[PaymentSessionFixture, PaymentSessionFixture], seller: Any
) -> None:
    alice, bob = users
    seller.asks(x402_challenge("0.40"))
    pool = GuardPool(client=alice.client)
    blocked: list[Blocked] = []
    config = config_for(alice)
    config.pre_sign_policy = SpendGuardPreSignPolicy(
        follow_config(pool, config), on_blocked=blocked.append
    )
    middleware = AgentCorePaymentsMiddleware(config)

    assert fetch(middleware, seller.url).status == "success"
    switch(config, bob)
    assert fetch(middleware, seller.url).status == "success"
    calls = bob.emulator.faults.calls("ProcessPayment")
    refused = fetch(middleware, seller.url)  # bob has 0.10 left
    assert refused.status == "error"
    assert "pre_sign_policy" in str(refused.content)
    assert bob.emulator.faults.calls("ProcessPayment") == calls  # never signed
    switch(config, alice)
    assert fetch(middleware, seller.url).status == "success"

    assert (alice.available(), bob.available()) == (Decimal("0.20"), Decimal("0.10"))
    assert [b.error.rule for b in blocked] == ["session_limit"]
    assert blocked[0].error.session_id == bob.session_id


def test_no_session_yet_is_blocked_before_signing(
    users: tuple[PaymentSessionFixture, PaymentSessionFixture], seller: Any
) -> None:
    alice, _ = users
    seller.asks(x402_challenge("0.40"))
    pool = GuardPool(client=alice.client)
    blocked: list[Blocked] = []
    config = config_for(alice, auto_session=True)
    config.payment_session_id = None
    config.pre_sign_policy = SpendGuardPreSignPolicy(
        follow_config(pool, config), on_blocked=blocked.append
    )
    calls = alice.emulator.faults.calls("ProcessPayment")

    message = fetch(AgentCorePaymentsMiddleware(config), seller.url)

    assert message.status == "error"
    assert config.payment_session_id is None  # the SDK created no session either
    assert alice.emulator.faults.calls("ProcessPayment") == calls
    (refusal,) = blocked
    assert refusal.error.rule == "session_unresolved"
    assert refusal.message == (
        "Payment blocked: no payment session is available for this request. Do not retry this call."
    )
    assert "update_payment_session_id" in str(refusal.error)


@pytest.mark.parametrize("returned", [None, "a guard", 42])
def test_a_resolver_that_returns_no_guard_blocks(
    users: tuple[PaymentSessionFixture, PaymentSessionFixture], returned: object
) -> None:
    blocked: list[Blocked] = []
    policy = SpendGuardPreSignPolicy(lambda request: returned, on_blocked=blocked.append)
    assert policy(x402_challenge("0.01")) is False
    assert [b.error.rule for b in blocked] == ["session_unresolved"]
    assert policy.signed == []


def test_the_guard_argument_is_checked() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        SpendGuardPreSignPolicy("not a guard")  # type: ignore[arg-type]
    assert info.value.argument == "guard"
