"""A local AgentCore payments server for tests, demos and benchmarks.

Unmodified boto3 (and the official ``bedrock-agentcore`` ``PaymentManager``) talk to it
over HTTP through ``endpoint_url=`` or ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE``::

    from spendguard.emulator import PaymentsEmulator

    with PaymentsEmulator() as emulator:
        session = emulator.create_session(budget="10.00", user_id="user-1")
        client = emulator.client()
"""

from spendguard.emulator._emulator import (
    DEFAULT_CONNECTOR_ID,
    DEFAULT_MANAGER_ARN,
    ENDPOINT_ENV_VAR,
    EmulatorSession,
    PaymentsEmulator,
)
from spendguard.emulator._faults import Fault, Faults
from spendguard.emulator._validation import response_problems
from spendguard.emulator._x402 import (
    atomic_units,
    mpp_challenge,
    x402_accept,
    x402_challenge,
    x402_payment_input,
)

__all__ = [
    "DEFAULT_CONNECTOR_ID",
    "DEFAULT_MANAGER_ARN",
    "ENDPOINT_ENV_VAR",
    "EmulatorSession",
    "Fault",
    "Faults",
    "PaymentsEmulator",
    "atomic_units",
    "mpp_challenge",
    "response_problems",
    "x402_accept",
    "x402_challenge",
    "x402_payment_input",
]
