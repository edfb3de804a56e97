"""One agent on the official AgentCore payments SDK serving two users with separate budgets,
run offline.

Alice's payment session has 10 USD, Bob's 5 USD. The service keeps one agent (the SDK's
LangGraph middleware) and switches its config to the user of each request
(``update_payment_session_id()`` and friends). ``SpendGuardPreSignPolicy`` follows the config's
current session through a ``GuardPool`` (``follow_config``), so each payment is checked
against the budget of the session that pays it. Each user asks for two 4 USD reports behind a
402 paywall: Alice gets both, Bob one; his second payment is refused before it is signed. A
request whose config has no session yet is refused too.

    uv run python examples/two_users_agentcore.py
"""

from __future__ import annotations

import json
import os
from typing import Any

from bedrock_agentcore.payments.integrations.config import AgentCorePaymentsPluginConfig
from bedrock_agentcore.payments.integrations.langgraph import AgentCorePaymentsMiddleware
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from spendguard.emulator import ENDPOINT_ENV_VAR, EmulatorSession, PaymentsEmulator, x402_challenge
from spendguard.pool import GuardPool
from spendguard_agentcore import SpendGuardPreSignPolicy, follow_config


class ScriptedModel(FakeMessagesListChatModel):
    """Replays the AIMessages below; a real chat model goes here."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


@tool
def fetch_report(ticker: str, headers: dict[str, str] | None = None) -> str:
    """Fetch the market report on `ticker` from a paid API."""
    if headers and {"X-PAYMENT", "PAYMENT-SIGNATURE"} & {k.upper() for k in headers}:
        return f"The {ticker} report: revenue up 12%."
    return "PAYMENT_REQUIRED: " + json.dumps(x402_challenge("4.00"))


def switch(config: AgentCorePaymentsPluginConfig, session: EmulatorSession | None) -> None:
    """Point the SDK's config at the user of the next request."""
    if session is None:  # a user whose session is not created yet
        config.payment_session_id = None
        return
    config.user_id = session.user_id
    config.update_payment_instrument_id(session.payment_instrument_id)
    config.update_payment_session_id(session.payment_session_id)


def main() -> None:
    with PaymentsEmulator() as emulator:
        # The SDK builds its own boto3 client; boto3 reads the endpoint from the environment.
        os.environ[ENDPOINT_ENV_VAR] = emulator.endpoint_url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "emulator")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "emulator")
        users = {
            "alice": emulator.create_session("10.00", user_id="alice"),
            "bob": emulator.create_session("5.00", user_id="bob"),
            "carol": None,
        }
        alice = users["alice"]
        assert alice is not None
        config = AgentCorePaymentsPluginConfig(
            payment_manager_arn=alice.payment_manager_arn,
            user_id=alice.user_id,
            region="us-east-1",
            post_payment_retry_delay_seconds=0,
        )
        pool = GuardPool(client=emulator.client())
        config.pre_sign_policy = SpendGuardPreSignPolicy(
            follow_config(pool, config),
            on_blocked=lambda blocked: print(f"  spendguard refused: {blocked.message}"),
        )
        middleware = AgentCorePaymentsMiddleware(config)

        for name, session in users.items():
            switch(config, session)
            turns = [
                AIMessage(
                    content="",
                    tool_calls=[{"name": "fetch_report", "args": {"ticker": t}, "id": t}],
                )
                for t in ("ACME", "GLOBEX")
            ]
            model = ScriptedModel(responses=[*turns, AIMessage("Done.")])
            agent = create_agent(model, tools=[fetch_report], middleware=[middleware])
            result = agent.invoke({"messages": [HumanMessage("Get two reports")]})
            for message in result["messages"]:
                if isinstance(message, ToolMessage):
                    print(f"  {name} {message.tool_call_id}: {message.content}")
        for name, session in users.items():
            if session is not None:
                left = emulator.available(session.payment_session_id)
                print(f"Server: {name} has {left} USD left.")


if __name__ == "__main__":
    main()
