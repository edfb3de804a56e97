"""One MPP challenge, two readers: the pre-sign policy never prices it below what the emulator
charges. The allowlist is the only source of an asset's decimals; a challenge whose own
``decimals`` disagree with it, or whose currency is not on it, is blocked."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import PaymentSessionFixture

from spendguard.pricing import Blocked
from spendguard_agentcore import ChallengeError, SpendGuardPreSignPolicy

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


def www_authenticate(request: dict[str, object]) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
    return (
        'Payment id="ch-1", realm="api.example.com", method="evm", intent="charge", '
        f'request="{encoded}"'
    )


def emulator_charge(session: PaymentSessionFixture, header: str) -> Decimal | None:
    """What ProcessPayment debits for the challenge (None: the emulator refuses it)."""
    before = session.available()
    assert before is not None
    try:
        session.client.process_payment(
            paymentManagerArn=session.arn,
            paymentSessionId=session.session_id,
            userId=session.user_id,
            paymentInstrumentId=session.instrument_id,
            paymentType="MPP",
            paymentInput={"mpp": {"version": "1", "wwwAuthenticateHeaders": [header]}},
        )
    except ClientError:
        return None
    after = session.available()
    assert after is not None
    return before - after


def usdc(amount: str, **extra: object) -> dict[str, object]:
    return {"amount": amount, "currency": BASE_USDC, "recipient": "0xabc", **extra}


@pytest.mark.parametrize(
    ("request_", "policy_price", "charged"),
    [
        pytest.param(usdc("5"), Decimal("0.000005"), Decimal("0.000005"), id="no decimals"),
        pytest.param(usdc("5", decimals=6), Decimal("0.000005"), Decimal("0.000005"), id="6"),
        pytest.param(usdc("5", decimals=0), None, Decimal("5"), id="0 disagrees"),
        pytest.param(usdc("5000000", decimals=18), None, Decimal("5E-12"), id="18 disagrees"),
        pytest.param(usdc("5", decimals="6"), None, None, id="decimals as text"),
        pytest.param(usdc("5", decimals=6.0), None, None, id="decimals as float"),
        pytest.param(usdc("5", decimals=True), None, None, id="decimals as bool"),
        pytest.param(
            {"amount": "5", "currency": "usd"}, None, Decimal("0.000005"), id="unknown currency"
        ),
    ],
)
def test_the_policy_prices_an_mpp_challenge_as_the_emulator_charges_it_or_blocks(
    new_payment_session: Callable[..., PaymentSessionFixture],
    request_: dict[str, object],
    policy_price: Decimal | None,
    charged: Decimal | None,
) -> None:
    header = www_authenticate(request_)
    challenge = {"statusCode": 402, "headers": {"WWW-Authenticate": header}, "body": {}}
    blocked: list[Blocked] = []
    session = new_payment_session("10.00")
    policy = SpendGuardPreSignPolicy(session.guard(), on_blocked=blocked.append)

    allowed = policy(challenge)

    assert emulator_charge(new_payment_session("10.00"), header) == charged
    if policy_price is None:
        assert allowed is False
        (refusal,) = blocked
        assert isinstance(refusal.error, ChallengeError)
        assert refusal.message.startswith("Payment blocked")
        with pytest.raises(ChallengeError):
            policy.price(challenge)
    else:
        assert allowed is True
        assert policy.price(challenge).amount == policy_price == charged


def test_disagreeing_decimals_are_named_in_the_refusal(
    payment_session: PaymentSessionFixture,
) -> None:
    header = www_authenticate(usdc("5", decimals=0))
    policy = SpendGuardPreSignPolicy(payment_session.guard())
    challenge: dict[str, Any] = {"headers": {"www-authenticate": [header]}, "body": {}}
    with pytest.raises(ChallengeError, match=r"decimals 0 .* allowlist .* 6"):
        policy.price(challenge)
