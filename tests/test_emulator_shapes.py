"""Every response the emulator sends passes botocore's validation of the model's shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import PaymentSessionFixture

from spendguard.emulator import response_problems, x402_payment_input
from spendguard.emulator._model import OPERATIONS, service_model
from spendguard.emulator._validation import collect

WALLET = {"embeddedCryptoWallet": {"network": "SOLANA", "linkedAccounts": []}}
CONNECTOR = "emulator-connector-0123456789"  # the connector of the emulator's own wallets


def _calls(session: PaymentSessionFixture) -> dict[str, Callable[[], Any]]:
    c, arn, user = session.client, session.arn, session.user_id
    ids = {"paymentManagerArn": arn, "userId": user}
    sid = {**ids, "paymentSessionId": session.session_id}
    wallet = {**ids, "paymentConnectorId": CONNECTOR, "paymentInstrumentId": session.instrument_id}
    return {
        "CreatePaymentSession": lambda: c.create_payment_session(
            **ids,
            expiryTimeInMinutes=60,
            limits={"maxSpendAmount": {"value": "3.00", "currency": "USD"}},
        ),
        "GetPaymentSession": lambda: c.get_payment_session(**sid),
        "ListPaymentSessions": lambda: c.list_payment_sessions(**ids, maxResults=1),
        "ProcessPayment": lambda: c.process_payment(
            **sid,
            paymentInstrumentId=session.instrument_id,
            paymentType="CRYPTO_X402",
            paymentInput=x402_payment_input("0.01"),  # type: ignore[arg-type]
        ),
        "CreatePaymentInstrument": lambda: c.create_payment_instrument(
            **ids,
            paymentConnectorId="connector-1-abcdefghij",
            paymentInstrumentType="EMBEDDED_CRYPTO_WALLET",
            paymentInstrumentDetails=WALLET,  # type: ignore[arg-type]
        ),
        "GetPaymentInstrument": lambda: c.get_payment_instrument(
            **ids, paymentInstrumentId=session.instrument_id
        ),
        "ListPaymentInstruments": lambda: c.list_payment_instruments(
            paymentManagerArn=arn, userId=user
        ),
        "DeletePaymentSession": lambda: c.delete_payment_session(**sid),
        "GetPaymentInstrumentBalance": lambda: c.get_payment_instrument_balance(
            **wallet, chain="BASE", token="USDC"
        ),
        "DeletePaymentInstrument": lambda: c.delete_payment_instrument(**wallet),
        "GetResourcePaymentToken": lambda: c.get_resource_payment_token(
            workloadIdentityToken="workload-token",
            resourceCredentialProviderName="my-cdp-provider",
            paymentTokenRequest={
                "coinbaseCdpTokenRequest": {"requestMethod": "POST", "requestPath": "/v2/x"}
            },
        ),
    }


def test_every_served_operation_is_covered(payment_session: PaymentSessionFixture) -> None:
    assert set(_calls(payment_session)) == set(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_response_passes_output_shape_validation(
    new_payment_session: Callable[..., PaymentSessionFixture], operation: str
) -> None:
    session = new_payment_session()
    session.emulator.create_session("1.00", user_id=session.user_id)  # so lists paginate
    response = _calls(session)[operation]()
    assert response_problems(operation, response) == []


def test_list_with_more_pages_returns_a_valid_token(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session(user_id="shape-pages")
    session.emulator.create_session("1.00", user_id="shape-pages")
    response = _calls(session)["ListPaymentSessions"]()
    assert "nextToken" in response
    assert response_problems("ListPaymentSessions", response) == []


@pytest.mark.parametrize(
    "make_error",
    [
        lambda s: s.client.get_payment_session(
            paymentManagerArn=s.arn, paymentSessionId=s.session_id, userId="other"
        ),
        lambda s: s.client.get_payment_session(
            paymentManagerArn=s.arn, paymentSessionId="payment-session-000000000000000", userId="u"
        ),
        lambda s: s.client.process_payment(
            paymentManagerArn=s.arn,
            paymentSessionId=s.session_id,
            userId=s.user_id,
            paymentInstrumentId=s.instrument_id,
            paymentType="CRYPTO_X402",
            paymentInput=x402_payment_input("99"),
        ),
    ],
    ids=["AccessDenied", "NotFound", "Validation"],
)
def test_error_bodies_pass_the_error_shape(
    payment_session: PaymentSessionFixture, make_error: Callable[[PaymentSessionFixture], Any]
) -> None:
    with pytest.raises(ClientError) as info:
        make_error(payment_session)
    response = info.value.response
    shape = service_model().shape_for(response["Error"]["Code"])
    body = {k: v for k, v in response.items() if k in shape.members}  # type: ignore[attr-defined]
    assert body["message"]
    assert collect(body, shape) == []


def test_the_shape_check_itself_catches_bad_responses() -> None:
    bad = {"paymentSession": {"paymentSessionId": "short", "createdAt": "not a time"}}
    names = {p.name for p in response_problems("GetPaymentSession", bad)}
    assert {"paymentSession.paymentSessionId", "paymentSession.userId"} <= names
    assert "paymentSession.createdAt" in names
