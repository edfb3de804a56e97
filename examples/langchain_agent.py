"""A LangChain agent that cannot overspend its payment session, run offline.

Starts the local AgentCore payments emulator, gives a session 10 USD and lets a scripted model
(no network, no API key) buy reports. The tool pays with ProcessPayment through the session;
spendguard admits each call before it runs.

    uv run python examples/langchain_agent.py
"""

from __future__ import annotations

import logging
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from spendguard import BudgetExceededError, SpendGuard
from spendguard.emulator import PaymentsEmulator, x402_payment_input
from spendguard.pricing import from_argument
from spendguard_langchain import SpendGuardCallbackHandler, SpendLimitMiddleware


class ScriptedModel(FakeMessagesListChatModel):
    """Replays the AIMessages below; a real chat model goes here."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


def turn(*orders: tuple[str, str]) -> AIMessage:
    calls = [
        {"name": "buy_report", "args": {"ticker": t, "amount": a}, "id": f"call-{t}"}
        for t, a in orders
    ]
    return AIMessage(content="", tool_calls=calls)


def main() -> None:
    # LangChain logs every raising callback at WARNING before re-raising it; the example
    # prints the outcome itself.
    logging.getLogger("langchain_core.callbacks.manager").setLevel(logging.ERROR)
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
            print(f"  tool ran: paid {amount} USD for the {ticker} report")
            return f"The {ticker} report: revenue up 12%."

        pricing = {"buy_report": from_argument("amount")}

        print("1. Middleware: the model asks for three reports at once (4 + 4 + 4 > 10)")
        model = ScriptedModel(
            responses=[turn(("ACME", "4"), ("GLOBEX", "4"), ("INITECH", "4")), AIMessage("Done.")]
        )
        agent = create_agent(
            model, tools=[buy_report], middleware=[SpendLimitMiddleware(guard, pricing)]
        )
        result = agent.invoke({"messages": [HumanMessage("Buy the three reports")]})
        for message in result["messages"][2:]:
            print(f"  {type(message).__name__}: {message.content}")

        print("2. Callback handler: a direct tool call that does not fit raises")
        handler = SpendGuardCallbackHandler(guard, pricing)
        try:
            buy_report.invoke({"ticker": "HOOLI", "amount": "3"}, config={"callbacks": [handler]})
        except BudgetExceededError as err:
            print(f"  blocked: requested {err.requested}, available {err.available}")

        guard.refresh()
        snap = guard.snapshot()
        print(f"3. Server says {emulator.available(session.payment_session_id)} USD left;")
        print(f"   guard says {snap.effective_available} available, {snap.held} held.")


if __name__ == "__main__":
    main()
