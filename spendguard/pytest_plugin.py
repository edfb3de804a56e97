"""pytest fixtures for testing code that spends through AgentCore payment sessions.

Installing spendguard registers this module with pytest (entry point ``pytest11`` named
``spendguard``). It does nothing until a test asks for one of its fixtures: none is autouse,
and the emulator (and with it boto3) is imported only inside the fixtures.

Fixtures (scope: what it gives):

- ``agentcore_emulator`` (session): the shared running ``PaymentsEmulator``.
- ``agentcore_emulator_isolated`` (function): a running emulator of this test's own.
- ``agentcore_client`` (session): a boto3 ``bedrock-agentcore`` client for the shared one.
- ``agentcore_payment_session`` (function): a fresh funded ``EmulatorSession`` on it:
  10.00 USD, ``user-1``, 60 minutes.
- ``agentcore_payment_session_factory`` (session): more of them,
  ``(budget="10.00", *, user_id="user-1", expiry_minutes=60, ...)``.
- ``agentcore_payment_instrument`` (function): the wallet ``agentcore_payment_session``
  pays with (its instrument id).
- ``spendguard_guard`` (function): a ``SpendGuard`` on ``agentcore_payment_session``.
- ``agentcore_env`` (function): the AWS environment variables that point boto3 at the
  shared emulator.
- ``agentcore_faults`` (function): the shared emulator's faults, cleared after the test.
- ``agentcore_clock`` (function): the shared emulator's clock, put back after the test.

Sessions stay on the shared emulator for the whole run; each test makes its own, so they
never collide. Faults and clock moves made through ``agentcore_faults`` and
``agentcore_clock`` are undone after the test; made directly on ``agentcore_emulator`` they
last for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from spendguard import SpendGuard

if TYPE_CHECKING:
    from mypy_boto3_bedrock_agentcore import BedrockAgentCoreClient

    from spendguard.emulator import EmulatorSession, Faults, PaymentsEmulator

_REGION = "us-east-1"  # the emulator's clients use it too


class AgentCoreClock:
    """The shared emulator's clock, as ``agentcore_clock`` hands it to a test."""

    def __init__(self, emulator: PaymentsEmulator) -> None:
        """Control ``emulator``'s clock."""
        self._emulator = emulator

    def now(self) -> float:
        """The server's time, epoch seconds."""
        return self._emulator.now()

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward (past an expiry, ahead of the host's clock)."""
        self._emulator.advance(seconds)

    def reset(self) -> None:
        """Undo every advance (done for you after the test)."""
        self._emulator.reset_clock()


@pytest.fixture(scope="session")
def agentcore_emulator() -> Iterator[PaymentsEmulator]:
    """The shared running emulator: started when first asked for, stopped at the end."""
    from spendguard.emulator import PaymentsEmulator  # noqa: PLC0415 - only when asked for

    with PaymentsEmulator() as emulator:
        yield emulator


@pytest.fixture
def agentcore_emulator_isolated() -> Iterator[PaymentsEmulator]:
    """A running emulator for this test alone (its faults and clock need no undoing)."""
    from spendguard.emulator import PaymentsEmulator  # noqa: PLC0415

    with PaymentsEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def agentcore_client(agentcore_emulator: PaymentsEmulator) -> BedrockAgentCoreClient:
    """A boto3 ``bedrock-agentcore`` client for the shared emulator (dummy credentials)."""
    return agentcore_emulator.client()


@pytest.fixture(scope="session")
def agentcore_payment_session_factory(
    agentcore_emulator: PaymentsEmulator,
) -> Callable[..., EmulatorSession]:
    """Makes funded sessions on the shared emulator: ``PaymentsEmulator.create_session``."""
    return agentcore_emulator.create_session


@pytest.fixture
def agentcore_payment_session(
    agentcore_payment_session_factory: Callable[..., EmulatorSession],
) -> EmulatorSession:
    """A fresh session of ``user-1`` with a 10.00 USD budget, expiring in 60 minutes."""
    return agentcore_payment_session_factory()


@pytest.fixture
def agentcore_payment_instrument(agentcore_payment_session: EmulatorSession) -> str:
    """The id of the ACTIVE wallet ``agentcore_payment_session`` pays with."""
    return agentcore_payment_session.payment_instrument_id


@pytest.fixture
def spendguard_guard(
    agentcore_payment_session: EmulatorSession, agentcore_client: BedrockAgentCoreClient
) -> SpendGuard:
    """A ``SpendGuard`` on ``agentcore_payment_session``, reading it with ``agentcore_client``."""
    return SpendGuard(
        agentcore_payment_session.payment_manager_arn,
        agentcore_payment_session.payment_session_id,
        user_id=agentcore_payment_session.user_id,
        client=agentcore_client,
    )


@pytest.fixture
def agentcore_env(
    agentcore_emulator: PaymentsEmulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Point code that builds its own boto3 client at the shared emulator, for this test.

    Sets the endpoint, region and dummy credentials, and removes what would override them
    (a profile, a session token, ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``).

    Returns:
        The variables set, e.g. to pass to a subprocess.
    """
    from spendguard.emulator import ENDPOINT_ENV_VAR  # noqa: PLC0415

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    env = {
        ENDPOINT_ENV_VAR: agentcore_emulator.endpoint_url,
        "AWS_DEFAULT_REGION": _REGION,
        "AWS_REGION": _REGION,
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def agentcore_faults(agentcore_emulator: PaymentsEmulator) -> Iterator[Faults]:
    """The shared emulator's faults; call counts start at zero, faults are cleared after."""
    agentcore_emulator.faults.reset_calls()
    yield agentcore_emulator.faults
    agentcore_emulator.faults.clear()


@pytest.fixture
def agentcore_clock(agentcore_emulator: PaymentsEmulator) -> Iterator[AgentCoreClock]:
    """The shared emulator's clock; every advance is undone after the test."""
    yield AgentCoreClock(agentcore_emulator)
    agentcore_emulator.reset_clock()
