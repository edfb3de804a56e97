"""One OpenAI Agents SDK agent serving two users, each with their own budget, run offline.

Alice's payment session has 10 USD, Bob's 5 USD. One agent and one set of tool guardrails serve
both: a ``GuardPool`` hands out the guard of the session named by the run's context
(``Runner.run(..., context=...)``). Each asks for two 4 USD reports: Alice gets both, Bob one;
his second is blocked with a message the model reads. A run without a session is blocked too.

    uv run python examples/two_users_openai_agents.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agents import Agent, RunConfig, RunContextWrapper, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from spendguard import SpendGuard
from spendguard.emulator import EmulatorSession, PaymentsEmulator, x402_payment_input
from spendguard.pool import GuardPool
from spendguard.pricing import Pricing, from_argument
from spendguard_openai_agents import SpendGuardToolGuardrails


@dataclass
class User:
    """What the service knows about the user of a run: the run's context."""

    name: str
    session: EmulatorSession | None


async def main() -> None:
    with PaymentsEmulator() as emulator:
        client = emulator.client()
        alice = User("alice", emulator.create_session("10.00", user_id="alice"))
        bob = User("bob", emulator.create_session("5.00", user_id="bob"))
        pool = GuardPool(client=client)

        def guard_of(user: User) -> SpendGuard:
            if user.session is None:
                raise LookupError(f"{user.name} has no payment session")
            return pool.get(
                user.session.payment_manager_arn,
                user.session.payment_session_id,
                user_id=user.name,
            )

        spend = SpendGuardToolGuardrails(guard_of, Pricing({"buy_report": from_argument("amount")}))

        @function_tool(**spend.tool_options())
        def buy_report(ctx: RunContextWrapper[User], ticker: str, amount: str) -> str:
            """Buy the market report on `ticker`; it costs `amount` USD."""
            session = ctx.context.session
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

        async def run(user: User) -> None:
            calls = [
                function_call("buy_report", {"ticker": t, "amount": "4"}, call_id=f"call-{t}")
                for t in ("ACME", "GLOBEX")
            ]
            model = ScriptedModel([calls, [assistant_message("Done.")]])
            agent: Agent[User] = Agent(name="buyer", model=model, tools=[buy_report])
            config = RunConfig(tracing_disabled=True)
            await Runner.run(agent, "Buy two reports", context=user, run_config=config)
            last = model.last_call
            sent = last.input if last is not None and isinstance(last.input, list) else []
            for item in sent:
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    print(f"  {user.name} {item['call_id']}: {item['output']}")

        for user in (alice, bob, User("carol", None)):
            await run(user)
        for user in (alice, bob):
            assert user.session is not None
            left = emulator.available(user.session.payment_session_id)
            print(f"Server: {user.name} has {left} USD left.")


if __name__ == "__main__":
    asyncio.run(main())
