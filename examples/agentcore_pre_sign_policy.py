"""The official AgentCore payments SDK, signing 402 payments only while the budget allows, offline.

``SpendGuardPreSignPolicy`` is the SDK's ``pre_sign_policy``: before the SDK signs a payment it
prices the 402 challenge (x402 v1 and v2, MPP) and holds the price in the guard. Here the SDK's
own LangGraph middleware pays a 402 API through the local emulator; a scripted chat model (no
network, no API key) asks for three 4 USD reports from a 10 USD session.

    uv run python examples/agentcore_pre_sign_policy.py
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from bedrock_agentcore.payments.integrations.config import AgentCorePaymentsPluginConfig
from bedrock_agentcore.payments.integrations.langgraph import AgentCorePaymentsMiddleware
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from spendguard import SpendGuard
from spendguard.emulator import ENDPOINT_ENV_VAR, PaymentsEmulator, x402_challenge
from spendguard_agentcore import SpendGuardPreSignPolicy


class ScriptedModel(FakeMessagesListChatModel):
    """Replays the AIMessages below; a real chat model goes here."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


def mpp_challenge(amount: str) -> dict[str, Any]:
    """A 402 with one MPP ``WWW-Authenticate: Payment`` challenge (amount in base units)."""
    request = {"amount": amount, "currency": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"}
    encoded = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
    value = f'Payment id="1", realm="api", method="evm", intent="charge", request="{encoded}"'
    return {"statusCode": 402, "headers": {"WWW-Authenticate": value}, "body": {}}


def main() -> None:
    with PaymentsEmulator() as emulator:
        session = emulator.create_session(budget="10.00")
        # The SDK builds its own boto3 client; boto3 reads the endpoint from the environment.
        os.environ[ENDPOINT_ENV_VAR] = emulator.endpoint_url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "emulator")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "emulator")
        guard = SpendGuard(
            session.payment_manager_arn,
            session.payment_session_id,
            user_id=session.user_id,
            client=emulator.client(),
        )
        policy = SpendGuardPreSignPolicy(guard)

        print("1. What the policy reads from each challenge shape:")
        v1_string = {**x402_challenge("0.01"), "body": json.dumps(x402_challenge("0.01")["body"])}
        shapes = {
            "x402 v1, body dict": x402_challenge("0.01"),
            "x402 v1, body JSON string": v1_string,
            "x402 v2, Payment-Required header": x402_challenge("0.02", version=2),
            "MPP, WWW-Authenticate: Payment": mpp_challenge("30000"),
        }
        for name, challenge in shapes.items():
            print(f"   {name}: {policy.price(challenge)}")

        @tool
        def fetch_report(ticker: str, headers: dict[str, str] | None = None) -> str:
            """Fetch the market report on `ticker` from a paid API."""
            if headers and {"X-PAYMENT", "PAYMENT-SIGNATURE"} & {k.upper() for k in headers}:
                return f"The {ticker} report: revenue up 12%."
            return "PAYMENT_REQUIRED: " + json.dumps(x402_challenge("4.00"))

        config = AgentCorePaymentsPluginConfig(
            payment_manager_arn=session.payment_manager_arn,
            user_id=session.user_id,
            payment_instrument_id=session.payment_instrument_id,
            payment_session_id=session.payment_session_id,
            region="us-east-1",
            post_payment_retry_delay_seconds=0,
            pre_sign_policy=policy,
        )
        calls = [
            {"name": "fetch_report", "args": {"ticker": t}, "id": f"call-{t}"}
            for t in ("ACME", "GLOBEX", "INITECH")
        ]
        model = ScriptedModel(
            responses=[AIMessage(content="", tool_calls=calls), AIMessage("Done.")]
        )
        agent = create_agent(
            model, tools=[fetch_report], middleware=[AgentCorePaymentsMiddleware(config)]
        )
        print("2. The SDK's LangGraph middleware pays three 4 USD challenges from 10 USD:")
        result = agent.invoke({"messages": [HumanMessage("Get the three reports")]})
        for message in result["messages"]:
            if isinstance(message, ToolMessage):
                print(f"   {message.tool_call_id}: {message.content}")
        print(
            f"3. Signed: {[str(m) for m in policy.signed]}; "
            f"server says {emulator.available(session.payment_session_id)} USD left."
        )


if __name__ == "__main__":
    main()
