"""ProcessPayment semantics: pricing, budget, expiry, idempotency, ownership, concurrency."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import PaymentSessionFixture

from spendguard.emulator import PaymentsEmulator, x402_payment_input


def _pay(
    session: PaymentSessionFixture,
    payment_input: dict[str, Any],
    *,
    token: str | None = None,
    payment_type: str = "CRYPTO_X402",
    instrument_id: str | None = None,
    client: Any = None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "paymentManagerArn": session.arn,
        "paymentSessionId": session.session_id,
        "userId": session.user_id,
        "paymentInstrumentId": instrument_id or session.instrument_id,
        "paymentType": payment_type,
        "paymentInput": payment_input,
    }
    if token is not None:
        kwargs["clientToken"] = token
    return dict((client or session.client).process_payment(**kwargs))


def _error(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = info.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


@pytest.mark.parametrize("version", [1, 2])
def test_x402_payment_is_priced_in_atomic_usdc_and_debited(
    payment_session: PaymentSessionFixture, version: int
) -> None:
    before = payment_session.get()["availableLimits"]["updatedAt"]
    paid = _pay(payment_session, x402_payment_input("0.005", version=version))  # type: ignore[arg-type]
    assert paid["status"] == "PROOF_GENERATED"
    assert paid["paymentOutput"]["cryptoX402"]["payload"]["authorization"]["value"] == "5000"
    session = payment_session.get()
    assert session["availableLimits"]["availableSpendAmount"]["value"] == "9.995"
    assert session["availableLimits"]["updatedAt"] == paid["updatedAt"]
    assert session["availableLimits"]["updatedAt"] >= before
    assert session["updatedAt"] == paid["updatedAt"]


def test_payment_over_the_available_amount_is_rejected_and_nothing_moves(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session("0.10")
    _pay(session, x402_payment_input("0.06"))
    with pytest.raises(ClientError) as info:
        _pay(session, x402_payment_input("0.05"))
    code, status, message = _error(info)
    assert (code, status) == ("ValidationException", 400)
    assert "Insufficient budget" in message
    assert session.available() == Decimal("0.04")
    _pay(session, x402_payment_input("0.04"))  # exactly what is left fits
    assert session.get()["availableLimits"]["availableSpendAmount"]["value"] == "0.00"


def test_expired_session_rejects_payments(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session("1.00", expiry_minutes=15)
    session.emulator.advance(15 * 60)
    with pytest.raises(ClientError) as info:
        _pay(session, x402_payment_input("0.01"))
    code, status, message = _error(info)
    assert (code, status) == ("ValidationException", 400)
    assert "expired" in message
    assert session.available() == Decimal("1.00")


def test_client_token_makes_payment_idempotent(payment_session: PaymentSessionFixture) -> None:
    token = str(uuid.uuid4())
    first = _pay(payment_session, x402_payment_input("1.00"), token=token)
    again = _pay(payment_session, x402_payment_input("1.00"), token=token)
    assert again["processPaymentId"] == first["processPaymentId"]
    assert payment_session.available() == Decimal("9.00")
    with pytest.raises(ClientError) as info:
        _pay(payment_session, x402_payment_input("2.00"), token=token)
    assert _error(info)[:2] == ("ValidationException", 400)
    assert info.value.response["reason"] == "IdempotentParameterMismatchException"  # type: ignore[typeddict-item]


def test_concurrent_payments_never_overspend(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session("1.00")

    def pay(_: int) -> bool:
        try:
            _pay(session, x402_payment_input("0.30"))
        except ClientError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(pay, range(8)))
    assert results.count(True) == 3
    assert session.available() == Decimal("0.10")


def test_instrument_must_exist_and_belong_to_the_user(
    payment_session: PaymentSessionFixture,
) -> None:
    with pytest.raises(ClientError) as info:
        _pay(
            payment_session,
            x402_payment_input("0.01"),
            instrument_id="payment-instrument-nope12345678901",
        )
    assert _error(info)[:2] == ("ResourceNotFoundException", 404)
    theirs = payment_session.emulator.create_instrument("someone-else")
    with pytest.raises(ClientError) as info:
        _pay(payment_session, x402_payment_input("0.01"), instrument_id=theirs)
    assert _error(info)[:2] == ("AccessDeniedException", 403)


def test_other_user_cannot_pay_from_the_session(payment_session: PaymentSessionFixture) -> None:
    with pytest.raises(ClientError) as info:
        payment_session.client.process_payment(
            paymentManagerArn=payment_session.arn,
            paymentSessionId=payment_session.session_id,
            userId="mallory",
            paymentInstrumentId=payment_session.instrument_id,
            paymentType="CRYPTO_X402",
            paymentInput=x402_payment_input("0.01"),  # type: ignore[arg-type]
        )
    assert _error(info)[:2] == ("AccessDeniedException", 403)
    assert payment_session.available() == Decimal("10.00")


@pytest.mark.parametrize(
    "amount",
    ["-5", "1.5", "0x10", "1" * 31, "", " 5", "1e6", 12.5, None, True, ["5"]],
)
def test_bad_amounts_are_validation_errors(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture, amount: object
) -> None:
    client = emulator.client(Config(parameter_validation=False))
    accept = dict(x402_payment_input("1")["cryptoX402"]["payload"])  # type: ignore[index]
    accept["maxAmountRequired"] = amount
    with pytest.raises(ClientError) as info:
        _pay(payment_session, {"cryptoX402": {"version": "1", "payload": accept}}, client=client)
    assert _error(info)[:2] == ("ValidationException", 400)
    assert payment_session.available() == Decimal("10.00")


def test_payment_type_must_match_the_input(payment_session: PaymentSessionFixture) -> None:
    with pytest.raises(ClientError) as info:
        _pay(payment_session, x402_payment_input("0.01"), payment_type="MPP")
    assert _error(info)[:2] == ("ValidationException", 400)


def test_mpp_challenge_is_priced_from_its_request(payment_session: PaymentSessionFixture) -> None:
    raw = json.dumps({"amount": "250000", "currency": "usd"}).encode()
    request = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    header = f'Payment id="c1", realm="api", method="evm", intent="charge", request="{request}"'
    paid = _pay(
        payment_session,
        {"mpp": {"version": "1", "wwwAuthenticateHeaders": [header]}},
        payment_type="MPP",
    )
    assert "paymentCredential" in paid["paymentOutput"]["mpp"]
    assert payment_session.available() == Decimal("9.75")


def test_aws_billing_uses_the_service_instrument_and_needs_a_quote(
    payment_session: PaymentSessionFixture,
) -> None:
    accept = {
        "scheme": "exact",
        "network": "aws",
        "amount": "2000000",
        "extra": {"quoteToken": "q"},
    }
    paid = _pay(
        payment_session,
        {"awsBillingX402": {"version": "2", "payload": accept}},
        payment_type="AWS_BILLING_X402",
        instrument_id="aws.agentcorepayments.awsbilling.v1",
    )
    assert paid["paymentOutput"]["awsBillingX402"]["paymentToken"]
    assert payment_session.available() == Decimal("8.00")
    del accept["extra"]
    with pytest.raises(ClientError) as info:
        _pay(
            payment_session,
            {"awsBillingX402": {"version": "2", "payload": accept}},
            payment_type="AWS_BILLING_X402",
            instrument_id="aws.agentcorepayments.awsbilling.v1",
        )
    assert _error(info)[:2] == ("ValidationException", 400)


def test_session_without_limits_accepts_any_payment(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session(None)
    _pay(session, x402_payment_input("500.00"))
    assert session.available() is None


@pytest.mark.parametrize("timeout", ["soon", 60.5, -1, True, None, "1" * 40, 10**12])
@pytest.mark.parametrize("token", [None, "retry-me"])
def test_a_payment_that_cannot_be_completed_debits_nothing_even_when_retried(
    emulator: PaymentsEmulator,
    payment_session: PaymentSessionFixture,
    timeout: object,
    token: str | None,
) -> None:
    # Default retries: a 500 would be retried, and each attempt must not debit again.
    client = emulator.client(Config(parameter_validation=False))
    accept = dict(x402_payment_input("1.00")["cryptoX402"]["payload"])  # type: ignore[index]
    accept["maxTimeoutSeconds"] = timeout
    payment = {"cryptoX402": {"version": "1", "payload": accept}}
    key = None if token is None else f"{token}-{uuid.uuid4()}"
    calls = emulator.faults.calls("ProcessPayment")
    with pytest.raises(ClientError) as info:
        _pay(payment_session, payment, client=client, token=key)
    code, status, message = _error(info)
    assert (code, status) == ("ValidationException", 400)
    assert "maxTimeoutSeconds" in message
    assert payment_session.available() == Decimal("10.00")
    assert emulator.faults.calls("ProcessPayment") == calls + 1  # a 400 is not retried


DEEP = "[" * 5000 + "]" * 5000  # past the recursion limit, within the 16 KiB header limit


@pytest.mark.parametrize(
    "request_json",
    [
        pytest.param(f'{{"amount": "1", "currency": "usd", "x": {DEEP}}}', id="nested too deep"),
        pytest.param('{"amount": 1e99999999999999999999, "currency": "usd"}', id="amount 1e999"),
        pytest.param(f'{{"amount": {"9" * 5000}, "currency": "usd"}}', id="amount 5000 digits"),
        pytest.param(f'{{"amount": {"9" * 4000}, "currency": "usd"}}', id="amount 4000 digits"),
        pytest.param('{"amount": "1", "decimals": 1e999}', id="decimals 1e999"),
        pytest.param(f'{{"amount": "1", "decimals": {"9" * 4000}}}', id="decimals 4000 digits"),
        pytest.param('{"amount": "1", "decimals": -1}', id="negative decimals"),
    ],
)
def test_unreadable_mpp_requests_are_validation_errors(
    emulator: PaymentsEmulator, payment_session: PaymentSessionFixture, request_json: str
) -> None:
    encoded = base64.urlsafe_b64encode(request_json.encode()).decode().rstrip("=")
    header = f'Payment id="c1", realm="api", method="evm", intent="charge", request="{encoded}"'
    client = emulator.client(Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as info:
        _pay(
            payment_session,
            {"mpp": {"version": "1", "wwwAuthenticateHeaders": [header]}},
            payment_type="MPP",
            client=client,
        )
    code, status, message = _error(info)
    assert (code, status) == ("ValidationException", 400)
    assert "paymentInput.mpp" in message
    assert payment_session.available() == Decimal("10.00")
