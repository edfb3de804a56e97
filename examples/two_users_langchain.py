"""One LangChain agent serving two users, each with their own budget, run offline.

Alice's payment session has 10 USD, Bob's 5 USD. One ``create_agent`` agent and one
``SpendLimitMiddleware`` serve both: a ``GuardPool`` hands out the guard of the session named
by the run's context (``agent.invoke(..., context=...)``, read by the middleware as
``runtime.context``). Each asks for two 4 USD reports: Alice gets both, Bob one; his second
gets an error ``ToolMessage`` the model reads. A run without a session is blocked too.

    uv run python examples/two_users_langchain.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from spendguard import SpendGuard
from spendguard.emulator import EmulatorSession, PaymentsEmulator, x402_payment_input
from spendguard.pool import GuardPool
from spendguard.pricing import from_argument
from spendguard_langchain import SpendLimitMiddleware


class ScriptedModel(FakeMessagesListChatModel):
    """Replays the AIMessages below; a real chat model goes here."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


@dataclass
class UserContext:
    """What the service knows about the user of a run: the agent's context schema."""

    user_id: str
    session: EmulatorSession | None


def main() -> None:
    with PaymentsEmulator() as emulator:
        client = emulator.client()
        pool = GuardPool(client=client)

        def guard_of(ctx: UserContext) -> SpendGuard:
            if ctx.session is None:
                raise LookupError(f"{ctx.user_id} has no payment session")
            session = ctx.session
            return pool.get(
                session.payment_manager_arn, session.payment_session_id, user_id=ctx.user_id
            )

        @tool
        def buy_report(ticker: str, amount: str, runtime: ToolRuntime[UserContext]) -> str:
            """Buy the market report on `ticker`; it costs `amount` USD."""
            session = runtime.context.session
            assert session is not None
            client.process_payment(
                paymentManagerArn=session.payment_manager_arn,
                paymentSessionId=session.payment_session_id,
                userId=session.user_id,
                paymentInstrumentId=session.payment_instrument_id,
                paymentType="CRYPTO_X402",
                paymentInput=x402_payment_input(amount),  # type: ignore[arg-type]
            )
            return f"The {ticker} report: revenue up 12%."

        middleware = SpendLimitMiddleware(guard_of, {"buy_report": from_argument("amount")})
        users = [
            UserContext("alice", emulator.create_session("10.00", user_id="alice")),
            UserContext("bob", emulator.create_session("5.00", user_id="bob")),
            UserContext("carol", None),
        ]
        for user in users:
            turns = [
                AIMessage(
                    content="",
                    tool_calls=[
                        {"name": "buy_report", "args": {"ticker": t, "amount": "4"}, "id": t}
                    ],
                )
                for t in ("ACME", "GLOBEX")
            ]
            agent = create_agent(
                ScriptedModel(responses=[*turns, AIMessage("Done.")]),
                tools=[buy_report],
                middleware=[middleware],
                context_schema=UserContext,
            )
            result = agent.invoke({"messages": [HumanMessage("Buy two reports")]}, context=user)
            for message in result["messages"]:
                if isinstance(message, ToolMessage):
                    print(f"  {user.user_id} {message.tool_call_id}: {message.content}")
        for user in users[:2]:
            assert user.session is not None
            left = emulator.available(user.session.payment_session_id)
            print(f"Server: {user.user_id} has {left} USD left.")


if __name__ == "__main__":
    main()
