"""One Strands agent serving two users, each with their own budget, run offline.

Alice's payment session has 10 USD, Bob's 5 USD. One agent and one ``SpendGuardHooks`` serve
both: a ``GuardPool`` hands out the guard of the session named in the call's invocation state
(``agent(prompt, invocation_state={...})``). Each asks for two 4 USD reports: Alice gets both,
Bob one; his second is cancelled with a message the model reads. A request without a session
is blocked too.

    uv run python examples/two_users_strands.py
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from strands import Agent, ToolContext, tool
from strands.models import Model

from spendguard import SpendGuard
from spendguard.emulator import EmulatorSession, PaymentsEmulator, x402_payment_input
from spendguard.pool import GuardPool
from spendguard.pricing import Pricing, from_argument
from spendguard_strands import SpendGuardHooks


class ScriptedModel(Model):
    """Asks for two reports, one per turn, then answers; a real model goes here."""

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
        if self.turn <= 2:
            ticker = ("ACME", "GLOBEX")[self.turn - 1]
            start = {"toolUse": {"toolUseId": f"call-{ticker}", "name": "buy_report"}}
            tool_input = json.dumps({"ticker": ticker, "amount": "4"})
            yield {"contentBlockStart": {"start": start}}
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": tool_input}}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
            return
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": "Done."}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}


def main() -> None:
    with PaymentsEmulator() as emulator:
        client = emulator.client()
        sessions = {
            "alice": emulator.create_session("10.00", user_id="alice"),
            "bob": emulator.create_session("5.00", user_id="bob"),
        }
        pool = GuardPool(client=client)

        def guard_of(state: dict[str, Any]) -> SpendGuard:
            session: EmulatorSession = sessions[state["user"]]  # KeyError: no session
            return pool.get(
                session.payment_manager_arn, session.payment_session_id, user_id=state["user"]
            )

        hooks = SpendGuardHooks(guard_of, Pricing({"buy_report": from_argument("amount")}))

        @tool(context=True)
        def buy_report(ticker: str, amount: str, tool_context: ToolContext) -> str:
            """Buy the market report on `ticker`; it costs `amount` USD."""
            session = sessions[tool_context.invocation_state["user"]]
            client.process_payment(
                paymentManagerArn=session.payment_manager_arn,
                paymentSessionId=session.payment_session_id,
                userId=session.user_id,
                paymentInstrumentId=session.payment_instrument_id,
                paymentType="CRYPTO_X402",
                paymentInput=x402_payment_input(amount),  # type: ignore[arg-type]
            )
            return f"The {ticker} report: revenue up 12%."

        for user in ("alice", "bob", "carol"):
            agent = Agent(
                model=ScriptedModel(), tools=[buy_report], hooks=[hooks], callback_handler=None
            )
            agent("Buy two reports", invocation_state={"user": user})
            for message in agent.messages:
                for block in message["content"]:
                    if "toolResult" in block:
                        result = block["toolResult"]
                        text = " ".join(c.get("text", "") for c in result["content"])
                        print(f"  {user} {result['toolUseId']}: {text}")
        for user, session in sessions.items():
            left = emulator.available(session.payment_session_id)
            print(f"Server: {user} has {left} USD left.")


if __name__ == "__main__":
    main()
