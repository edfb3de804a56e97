"""Fixtures for the OpenAI Agents adapter tests: a local payments emulator and a guard on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spendguard import SpendGuard
from spendguard.emulator import EmulatorSession, PaymentsEmulator


@pytest.fixture(scope="module")
def emulator() -> Iterator[PaymentsEmulator]:
    # Module scope: stopping the server takes half a second; sessions keep tests apart.
    with PaymentsEmulator() as server:
        yield server


@pytest.fixture
def session(emulator: PaymentsEmulator) -> EmulatorSession:
    return emulator.create_session(budget="1.00")


@pytest.fixture
def guard(emulator: PaymentsEmulator, session: EmulatorSession) -> SpendGuard:
    return SpendGuard(
        session.payment_manager_arn,
        session.payment_session_id,
        user_id=session.user_id,
        client=emulator.client(),
    )
