"""Shared fixtures, built on spendguard's pytest plugin (``spendguard.pytest_plugin``).

The plugin starts one local AgentCore payments emulator for the whole test run; these
fixtures keep the names the suite has always used and add helpers around its sessions.

``emulator``
    The running :class:`~spendguard.emulator.PaymentsEmulator` (one per test session).
    After each test that used it, injected faults are cleared and its clock is put back;
    sessions stay (each test makes its own, so they never collide). Call
    ``emulator.reset()`` to also forget every session.

``payment_session``
    A fresh session with a 10.00 USD budget owned by ``user-1``, plus a boto3 client
    pointed at the emulator: ``.arn``, ``.session_id``, ``.user_id``, ``.instrument_id``,
    ``.client``, ``.emulator``, ``.available()``, ``.get()``, ``.pay(amount)`` (ProcessPayment
    over HTTP) and ``.guard(**kwargs)`` (a SpendGuard on the session).

``new_payment_session``
    A factory for sessions with other budgets, users or lifetimes:
    ``new_payment_session(budget="0.50", user_id="alice", expiry_minutes=15)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from spendguard import SpendGuard
from spendguard.emulator import EmulatorSession, Faults, PaymentsEmulator, x402_payment_input
from spendguard.pytest_plugin import AgentCoreClock

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agentcore import BedrockAgentCoreClient
    from mypy_boto3_bedrock_agentcore.type_defs import ProcessPaymentResponseTypeDef

# Property tests check behaviour, not speed: on a loaded machine (CI, two cores) hypothesis's
# per-example deadline and its "generation is slow" health check fail tests whose behaviour
# is right. Every other health check stays on.
settings.register_profile("spendguard", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("spendguard")


@dataclass(frozen=True)
class PaymentSessionFixture:
    """A session on the shared emulator and a client to reach it."""

    arn: str
    session_id: str
    user_id: str
    instrument_id: str
    client: BedrockAgentCoreClient
    emulator: PaymentsEmulator

    @classmethod
    def of(
        cls, made: EmulatorSession, client: BedrockAgentCoreClient, emulator: PaymentsEmulator
    ) -> PaymentSessionFixture:
        """Wrap a session the emulator (or the plugin) made."""
        return cls(
            made.payment_manager_arn,
            made.payment_session_id,
            made.user_id,
            made.payment_instrument_id,
            client,
            emulator,
        )

    def available(self) -> Decimal | None:
        """What the server says is left (read directly from the emulator's state)."""
        return self.emulator.available(self.session_id)

    def pay(
        self, amount: str, *, client: BedrockAgentCoreClient | None = None, token: bool = True
    ) -> ProcessPaymentResponseTypeDef:
        """ProcessPayment of an x402 v1 challenge for ``amount`` USD over HTTP, as the owner.

        Args:
            amount: The price in USD.
            client: Another client (e.g. one without retries); default the fixture's.
            token: Send a fresh ``clientToken`` (idempotency) with the request.
        """
        extra = {"clientToken": f"{uuid.uuid4()}-spendguard"} if token else {}
        return (client or self.client).process_payment(
            paymentManagerArn=self.arn,
            paymentSessionId=self.session_id,
            userId=self.user_id,
            paymentInstrumentId=self.instrument_id,
            paymentType="CRYPTO_X402",
            paymentInput=x402_payment_input(amount),  # type: ignore[typeddict-item]
            **extra,
        )

    def guard(self, **kwargs: Any) -> SpendGuard:
        """A SpendGuard on this session (keyword arguments go to :class:`SpendGuard`)."""
        kwargs.setdefault("client", self.client)
        return SpendGuard(self.arn, self.session_id, user_id=self.user_id, **kwargs)

    def get(self) -> dict[str, Any]:
        """GetPaymentSession over HTTP, as the owner; returns ``paymentSession``."""
        response = self.client.get_payment_session(
            paymentManagerArn=self.arn, paymentSessionId=self.session_id, userId=self.user_id
        )
        return dict(response["paymentSession"])


@pytest.fixture
def emulator(
    agentcore_emulator: PaymentsEmulator,
    agentcore_faults: Faults,
    agentcore_clock: AgentCoreClock,
) -> PaymentsEmulator:
    """The plugin's shared emulator; its faults and clock advances are undone after the test."""
    return agentcore_emulator


@pytest.fixture(scope="session")
def emulator_client(agentcore_client: BedrockAgentCoreClient) -> BedrockAgentCoreClient:
    """The plugin's one boto3 client for the shared emulator (botocore clients are thread-safe)."""
    return agentcore_client


@pytest.fixture
def new_payment_session(
    emulator: PaymentsEmulator,
    emulator_client: BedrockAgentCoreClient,
    agentcore_payment_session_factory: Callable[..., EmulatorSession],
) -> Callable[..., PaymentSessionFixture]:
    """Factory: ``new_payment_session(budget="10.00", user_id="user-1", expiry_minutes=60)``."""

    def make(
        budget: str | None = "10.00", *, user_id: str = "user-1", expiry_minutes: int = 60
    ) -> PaymentSessionFixture:
        made = agentcore_payment_session_factory(
            budget, user_id=user_id, expiry_minutes=expiry_minutes
        )
        return PaymentSessionFixture.of(made, emulator_client, emulator)

    return make


@pytest.fixture
def payment_session(
    agentcore_payment_session: EmulatorSession,
    emulator: PaymentsEmulator,
    emulator_client: BedrockAgentCoreClient,
) -> PaymentSessionFixture:
    """The plugin's fresh 10.00 USD session of ``user-1``, with this file's helpers."""
    return PaymentSessionFixture.of(agentcore_payment_session, emulator_client, emulator)
