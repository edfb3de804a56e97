"""x402 schemes and AWS Billing x402 through ProcessPayment: what is debited, what is signed."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import PaymentSessionFixture

from spendguard.emulator import (
    PaymentsEmulator,
    response_problems,
    x402_accept,
    x402_payment_input,
)

BILLING = "aws.agentcorepayments.awsbilling.v1"
PERMIT2_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"


def _pay(
    session: PaymentSessionFixture,
    payment_input: dict[str, Any],
    payment_type: str = "CRYPTO_X402",
    instrument_id: str | None = None,
) -> dict[str, Any]:
    paid = session.client.process_payment(
        paymentManagerArn=session.arn,
        paymentSessionId=session.session_id,
        userId=session.user_id,
        paymentInstrumentId=instrument_id or session.instrument_id,
        paymentType=payment_type,
        paymentInput=payment_input,  # type: ignore[arg-type]
    )
    assert response_problems("ProcessPayment", paid) == []
    return dict(paid)


def _error(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["Error"]["Code"] == "ValidationException"
    return str(info.value.response["Error"]["Message"])


@pytest.mark.parametrize("version", [1, 2])
def test_upto_debits_the_signed_ceiling_and_signs_permit2(
    payment_session: PaymentSessionFixture, version: int
) -> None:
    payment = x402_payment_input("2.00", version=version, scheme="upto")  # type: ignore[arg-type]
    payload = _pay(payment_session, payment)["paymentOutput"]["cryptoX402"]["payload"]
    assert payment_session.available() == Decimal("8.00")  # the ceiling, not what settles
    permit = payload["permit2Authorization"]
    accept = x402_accept("2.00", scheme="upto")
    assert permit["permitted"] == {"token": accept["asset"], "amount": "2000000"}
    assert permit["spender"] == PERMIT2_PROXY
    assert permit["witness"]["to"] == accept["payTo"]
    assert int(permit["deadline"]) - int(permit["witness"]["validAfter"]) == 60 + 60
    assert "authorization" not in payload
    assert payload["signature"].startswith("0x")


def test_upto_over_what_is_available_is_refused_though_less_may_settle(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session("1.00")
    message = _error(lambda: _pay(session, x402_payment_input("1.01", scheme="upto")))
    assert "Insufficient budget" in message
    assert session.available() == Decimal("1.00")


def test_permit2_allowance_is_for_upto_only(payment_session: PaymentSessionFixture) -> None:
    for scheme in ("upto", "exact"):
        payment = x402_payment_input("0.10", scheme=scheme)  # type: ignore[arg-type]
        payment["cryptoX402"]["permit2AllowanceLimit"] = "5000000"  # type: ignore[index]
        if scheme == "upto":
            _pay(payment_session, payment)
        else:
            assert "permit2AllowanceLimit" in _error(lambda p=payment: _pay(payment_session, p))
    assert payment_session.available() == Decimal("9.90")


def test_exact_still_signs_an_eip3009_authorization(payment_session: PaymentSessionFixture) -> None:
    payload = _pay(payment_session, x402_payment_input("0.10"))["paymentOutput"]["cryptoX402"]
    authorization = payload["payload"]["authorization"]
    wallet = payment_session.client.get_payment_instrument(
        paymentManagerArn=payment_session.arn,
        userId=payment_session.user_id,
        paymentInstrumentId=payment_session.instrument_id,
    )["paymentInstrument"]["paymentInstrumentDetails"]["embeddedCryptoWallet"]
    assert authorization["from"] == wallet["walletAddress"]  # the paying wallet's address
    assert authorization["value"] == "100000"


def test_the_value_signed_is_the_value_debited(payment_session: PaymentSessionFixture) -> None:
    payment = x402_payment_input("0.10", version=2)
    payment["cryptoX402"]["payload"]["maxAmountRequired"] = "999999999"  # type: ignore[index]
    payload = _pay(payment_session, payment)["paymentOutput"]["cryptoX402"]["payload"]
    assert payload["authorization"]["value"] == "100000"  # v2 prices by amount only
    assert payment_session.available() == Decimal("9.90")


@pytest.mark.parametrize(
    ("scheme", "network"), [("upto", "SOLANA"), ("deferred", "ETHEREUM")], ids=["upto", "unknown"]
)
def test_schemes_the_wallet_cannot_sign_are_refused(
    emulator: PaymentsEmulator, emulator_client: Any, scheme: str, network: str
) -> None:
    made = emulator.create_session("1.00", user_id="schemes", network=network)
    session = PaymentSessionFixture.of(made, emulator_client, emulator)
    payment = x402_payment_input("0.10")
    payment["cryptoX402"]["payload"]["scheme"] = scheme  # type: ignore[index]
    assert "scheme" in _error(lambda: _pay(session, payment))
    assert session.available() == Decimal("1.00")


def _billing(version: str = "2", **extra: Any) -> dict[str, Any]:
    accept: dict[str, Any] = {
        "scheme": "exact",
        "network": "aws",
        "payTo": "seller-123",
        "extra": {"quoteToken": "signed-quote"},
    }
    accept["maxAmountRequired" if version == "1" else "amount"] = "2000000"
    return {"awsBillingX402": {"version": version, "payload": accept, **extra}}


def _jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    assert len(parts) == 3
    head, claims = (
        json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]
    )
    return head, claims


@pytest.mark.parametrize("version", ["1", "2"])
def test_aws_billing_returns_a_jwt_payment_token_and_echoes_the_version(
    payment_session: PaymentSessionFixture, version: str
) -> None:
    paid = _pay(payment_session, _billing(version), "AWS_BILLING_X402", BILLING)
    output = paid["paymentOutput"]["awsBillingX402"]
    assert output["version"] == version
    head, claims = _jwt(output["paymentToken"])
    assert head["alg"] == "ES256"
    assert claims["aud"] == "seller-123"
    assert claims["exp"] - claims["iat"] == 300  # maxTimeoutSeconds' default
    digest = hashlib.sha256(b"signed-quote").digest()
    assert claims["quoteTokenHash"] == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert "cnf" not in claims
    assert payment_session.available() == Decimal("8.00")


def test_aws_billing_token_is_bound_to_the_dpop_key(payment_session: PaymentSessionFixture) -> None:
    key = {"kty": "EC", "crv": "P-256", "x": "x" * 43, "y": "y" * 43}
    options = {"options": {"dpopJwk": key}}
    paid = _pay(payment_session, _billing(**options), "AWS_BILLING_X402", BILLING)
    _, claims = _jwt(paid["paymentOutput"]["awsBillingX402"]["paymentToken"])
    canonical = (
        '{"crv":"P-256","kty":"EC","x":"' + "x" * 43 + '","y":"' + "y" * 43 + '"}'
    )  # RFC 7638
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert claims["cnf"] == {"jkt": thumbprint.decode().rstrip("=")}


@pytest.mark.parametrize(
    ("payment_input", "payment_type", "instrument"),
    [
        (_billing(), "AWS_BILLING_X402", None),  # a wallet cannot pay AWS Billing
        (x402_payment_input("0.10"), "CRYPTO_X402", BILLING),  # nor AWS Billing pay crypto
        (_billing(), "CRYPTO_X402", None),  # the input must be the type's
    ],
    ids=["wallet for billing", "billing for crypto", "input of another type"],
)
def test_aws_billing_and_wallets_do_not_mix(
    payment_session: PaymentSessionFixture,
    payment_input: dict[str, Any],
    payment_type: str,
    instrument: str | None,
) -> None:
    _error(lambda: _pay(payment_session, payment_input, payment_type, instrument))
    assert payment_session.available() == Decimal("10.00")
