"""MPP through ProcessPayment: one Payment challenge in, a credential for that challenge out."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import PaymentSessionFixture

from spendguard.emulator import mpp_challenge, response_problems


def _pay(session: PaymentSessionFixture, header: str, version: str = "1") -> dict[str, Any]:
    return dict(
        session.client.process_payment(
            paymentManagerArn=session.arn,
            paymentSessionId=session.session_id,
            userId=session.user_id,
            paymentInstrumentId=session.instrument_id,
            paymentType="MPP",
            paymentInput={"mpp": {"version": version, "wwwAuthenticateHeaders": [header]}},
        )
    )


def _header(challenge_id: str = "ch-7", amount: str = "0.25", **extra: str) -> str:
    header = str(mpp_challenge(amount, challenge_id=challenge_id)["headers"]["WWW-Authenticate"])  # type: ignore[index]
    return header + "".join(f", {name}={value}" for name, value in extra.items())


def _credential(paid: dict[str, Any]) -> dict[str, Any]:
    scheme, _, token = paid["paymentOutput"]["mpp"]["paymentCredential"].partition(" ")
    assert scheme == "Payment"
    return dict(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))))


@pytest.mark.parametrize("version", ["1", "2"])
def test_the_credential_is_for_the_challenge_that_was_sent(
    payment_session: PaymentSessionFixture, version: str
) -> None:
    header = _header("ch-7")
    paid = _pay(payment_session, header, version)
    assert response_problems("ProcessPayment", paid) == []
    mpp = paid["paymentOutput"]["mpp"]
    assert (mpp["selectedPaymentId"], mpp["version"]) == ("ch-7", version)
    credential = _credential(paid)
    assert credential["challenge"]["id"] == "ch-7"
    assert credential["challenge"]["request"] in header  # echoed byte for byte
    assert credential["payload"]["value"] == "250000"
    assert payment_session.available() == Decimal("9.75")


def test_quoted_auth_params_may_hold_commas_and_escapes(
    payment_session: PaymentSessionFixture,
) -> None:
    request = _header().split('request="')[1].rstrip('"')
    header = (
        r'Payment id="a,b\"c", realm="api", method="evm", intent="charge", '
        rf'request="{request}", description="one, \"two\""'
    )
    paid = _pay(payment_session, header)
    assert paid["paymentOutput"]["mpp"]["selectedPaymentId"] == 'a,b"c'
    assert _credential(paid)["challenge"]["description"] == 'one, "two"'


def _expiring(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h.replace('id="ch-7", ', ""), "no id"),
        (lambda h: h.replace('intent="charge"', 'intent="session"'), "session"),
        (lambda h: h.replace('method="evm"', 'method="solana"'), "solana"),
        (lambda h: h + f', expires="{_expiring(timedelta(seconds=-1))}"', "expired"),
        (lambda h: h + ', expires="tomorrow"', "tomorrow"),
        (lambda h: h + ", " + h, "two challenges"),
        (lambda h: h.replace("Payment ", "Bearer "), "Bearer"),
    ],
    ids=[
        "no id",
        "session intent",
        "solana from an EVM wallet",
        "expired",
        "bad expires",
        "two",
        "not Payment",
    ],
)
def test_a_challenge_that_cannot_be_paid_debits_nothing(
    payment_session: PaymentSessionFixture, change: Callable[[str], str], reason: str
) -> None:
    with pytest.raises(ClientError) as info:
        _pay(payment_session, change(_header("ch-7")))
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "paymentInput.mpp" in info.value.response["Error"]["Message"]
    assert payment_session.available() == Decimal("10.00")


def test_a_challenge_that_expires_later_is_paid(payment_session: PaymentSessionFixture) -> None:
    header = _header("ch-8") + f', expires="{_expiring(timedelta(minutes=5))}"'
    assert _pay(payment_session, header)["paymentOutput"]["mpp"]["selectedPaymentId"] == "ch-8"
    payment_session.emulator.advance(600)  # the emulator's clock decides
    with pytest.raises(ClientError):
        _pay(payment_session, header)
