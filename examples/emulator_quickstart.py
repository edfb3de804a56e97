"""Guard a payment session on the local AgentCore payments emulator (offline, no AWS account).

Run: uv run python examples/emulator_quickstart.py
"""

from __future__ import annotations

import os
import uuid

import boto3

from spendguard import BudgetExceededError, SpendGuard
from spendguard.emulator import ENDPOINT_ENV_VAR, PaymentsEmulator, x402_payment_input


def main() -> None:
    """Create a 0.10 USD session, pay twice through the guard, get blocked the third time."""
    with PaymentsEmulator() as emulator:
        session = emulator.create_session(budget="0.10", user_id="user-1")

        # Unmodified boto3 finds the emulator through the standard environment variable.
        os.environ[ENDPOINT_ENV_VAR] = emulator.endpoint_url
        client = boto3.client(
            "bedrock-agentcore",
            region_name="us-east-1",
            aws_access_key_id="any",
            aws_secret_access_key="any",
        )

        guard = SpendGuard(
            session.payment_manager_arn,
            session.payment_session_id,
            user_id=session.user_id,
            client=client,
            settlement="session",  # paid by ProcessPayment through this session
        )
        for attempt in range(1, 4):
            try:
                hold = guard.reserve("0.04")
            except BudgetExceededError as exc:
                print(f"call {attempt}: blocked -> {exc}")
                continue
            paid = client.process_payment(
                paymentManagerArn=session.payment_manager_arn,
                paymentSessionId=session.payment_session_id,
                userId=session.user_id,
                paymentInstrumentId=session.payment_instrument_id,
                paymentType="CRYPTO_X402",
                paymentInput=x402_payment_input("0.04"),  # type: ignore[arg-type]
                clientToken=str(uuid.uuid4()),
            )
            hold.commit(receipt_time=paid["updatedAt"])
            print(f"call {attempt}: paid 0.04 USD, {guard.snapshot().effective_available} left")

        print(f"server says {emulator.available(session.payment_session_id)} USD left")
        del os.environ[ENDPOINT_ENV_VAR]


if __name__ == "__main__":
    main()
