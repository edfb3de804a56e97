"""Fixtures for the OpenAI Agents adapter tests: a guard on a 1.00 USD emulator session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spendguard import SpendGuard


@pytest.fixture
def guard(new_payment_session: Callable[..., Any]) -> SpendGuard:
    payment = new_payment_session(budget="1.00")
    return SpendGuard(
        payment.arn,
        payment.session_id,
        user_id=payment.user_id,
        client=payment.client,
        settlement="external",  # the test tools pay nothing through the session
    )
