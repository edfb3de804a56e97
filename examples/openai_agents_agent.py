"""An OpenAI Agents SDK agent that cannot overspend its payment session, run offline.

Starts the local AgentCore payments emulator, gives a session 10 USD and lets the SDK's own
``ScriptedModel`` (no network, no API key) ask for three 4 USD reports in one turn. The tool
input guardrail holds each price before its call runs, so only two fit; the third is rejected
with a message the model reads, and the run goes on.

    uv run python examples/openai_agents_agent.py
"""

from __future__ import annotations

import asyncio

from agents import Agent, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from spendguard import SpendGuard
from spendguard.emulator import PaymentsEmulator, x402_payment_input
from spendguard.pricing import Pricing, from_argument
from spendguard_openai_agents import SpendGuardToolGuardrails


async def main() -> None:
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
        spend = SpendGuardToolGuardrails(guard, Pricing({"buy_report": from_argument("amount")}))

        @function_tool(**spend.tool_options())
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

        calls = [
            function_call("buy_report", {"ticker": t, "amount": "4"}, call_id=f"call-{t}")
            for t in ("ACME", "GLOBEX", "INITECH")
        ]
        model = ScriptedModel([calls, [assistant_message("Bought what the budget allowed.")]])
        agent = Agent(name="buyer", model=model, tools=[buy_report])
        result = await Runner.run(
            agent, "Buy the three reports", run_config=RunConfig(tracing_disabled=True)
        )

        print("What the model was told (three calls in one turn, 4 + 4 + 4 > 10):")
        last_call = model.last_call
        sent = last_call.input if last_call is not None else []
        for item in sent if isinstance(sent, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                print(f"  {item['call_id']}: {item['output']}")
        print(f"Model: {result.final_output}")
        guard.refresh()
        snap = guard.snapshot()
        print(
            f"Server: {emulator.available(session.payment_session_id)} USD left; "
            f"guard: {snap.effective_available} available, {snap.held} held."
        )


if __name__ == "__main__":
    asyncio.run(main())
