"""A Strands agent that cannot overspend its payment session, run offline.

Starts the local AgentCore payments emulator, gives a session 10 USD and lets a scripted model
(no network, no API key) ask for three 4 USD reports in one turn. Strands runs the three tool
calls concurrently; spendguard holds each price before its call runs, so only two fit and the
third is cancelled with a message the model reads.

    uv run python examples/strands_agent.py
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from strands import Agent, tool
from strands.models import Model

from spendguard import SpendGuard
from spendguard.emulator import PaymentsEmulator, x402_payment_input
from spendguard.pricing import Pricing, from_argument
from spendguard_strands import SpendGuardHooks


class ScriptedModel(Model):
    """Asks for three reports, then answers; a real model (BedrockModel, ...) goes here."""

    def __init__(self) -> None:
        self.turn = 0

    def update_config(self, **model_config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def stream(self, messages: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.turn += 1
        yield {"messageStart": {"role": "assistant"}}
        if self.turn == 1:
            for ticker in ("ACME", "GLOBEX", "INITECH"):
                start = {"toolUse": {"toolUseId": f"call-{ticker}", "name": "buy_report"}}
                tool_input = json.dumps({"ticker": ticker, "amount": "4"})
                yield {"contentBlockStart": {"start": start}}
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": tool_input}}}}
                yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
            return
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": "Bought what the budget allowed."}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}


def main() -> None:
    with PaymentsEmulator() as emulator:
        session = emulator.create_session(budget="10.00")
        client = emulator.client()
        guard = SpendGuard(
            session.payment_manager_arn,
            session.payment_session_id,
            user_id=session.user_id,
            client=client,
            settlement="session",  # the tool pays through this session
        )

        @tool
        def buy_report(ticker: str, amount: str) -> str:
            """Buy the market report on `ticker`; it costs `amount` USD."""
            client.process_payment(
                paymentManagerArn=session.payment_manager_arn,
                paymentSessionId=session.payment_session_id,
                userId=session.user_id,
                paymentInstrumentId=session.payment_instrument_id,
                paymentType="CRYPTO_X402",
                paymentInput=x402_payment_input(amount),  # type: ignore[arg-type]
            )
            return f"The {ticker} report: revenue up 12%."

        hooks = SpendGuardHooks(guard, Pricing({"buy_report": from_argument("amount")}))
        agent = Agent(
            model=ScriptedModel(), tools=[buy_report], hooks=[hooks], callback_handler=None
        )
        result = agent("Buy the ACME, GLOBEX and INITECH reports")

        print("What the model was told (three concurrent calls, 4 + 4 + 4 > 10):")
        for block in agent.messages[2]["content"]:
            tool_result = block.get("toolResult")
            if tool_result is not None:
                text = tool_result["content"][0].get("text", "")
                print(f"  {tool_result['toolUseId']} [{tool_result['status']}]: {text}")
        print(f"Model: {str(result).strip()}")
        guard.refresh()
        snap = guard.snapshot()
        print(
            f"Server: {emulator.available(session.payment_session_id)} USD left; "
            f"guard: {snap.effective_available} available, {snap.held} held."
        )


if __name__ == "__main__":
    main()
