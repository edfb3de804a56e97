"""The official bedrock-agentcore PaymentManager, unmodified, against the emulator."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from bedrock_agentcore.payments import (
    InsufficientBudget,
    PaymentInstrumentNotFound,
    PaymentManager,
    PaymentSessionExpired,
)

from spendguard.emulator import (
    DEFAULT_MANAGER_ARN,
    ENDPOINT_ENV_VAR,
    PaymentsEmulator,
    mpp_challenge,
    x402_challenge,
)

USER = "sdk-user"
CONNECTOR = "connector-1-abcdefghij"


@pytest.fixture
def manager(
    emulator: PaymentsEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PaymentManager]:
    monkeypatch.setenv(ENDPOINT_ENV_VAR, emulator.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/spendguard-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/spendguard-credentials")
    return PaymentManager(payment_manager_arn=DEFAULT_MANAGER_ARN, region_name="us-east-1")


def _wallet(manager: PaymentManager) -> str:
    instrument = manager.create_payment_instrument(
        payment_connector_id=CONNECTOR,
        payment_instrument_type="EMBEDDED_CRYPTO_WALLET",
        payment_instrument_details={
            "embeddedCryptoWallet": {"network": "ETHEREUM", "linkedAccounts": []}
        },
        user_id=USER,
    )
    return str(instrument["paymentInstrumentId"])


def _session(manager: PaymentManager, budget: str, minutes: int = 60) -> str:
    session = manager.create_payment_session(
        expiry_time_in_minutes=minutes,
        user_id=USER,
        limits={"maxSpendAmount": {"value": budget, "currency": "USD"}},
    )
    return str(session["paymentSessionId"])


def _available(manager: PaymentManager, session_id: str) -> Decimal:
    session = manager.get_payment_session(session_id, user_id=USER)
    return Decimal(session["availableLimits"]["availableSpendAmount"]["value"])


@pytest.mark.parametrize(("version", "header"), [(1, "X-PAYMENT"), (2, "PAYMENT-SIGNATURE")])
def test_generate_payment_header_pays_from_the_session(
    manager: PaymentManager, version: int, header: str
) -> None:
    instrument_id = _wallet(manager)
    session_id = _session(manager, "1.00")
    assert _available(manager, session_id) == Decimal("1.00")
    paid = manager.generate_payment_header(
        payment_instrument_id=instrument_id,
        payment_session_id=session_id,
        payment_required_request=x402_challenge("0.005", version=version),  # type: ignore[arg-type]
        user_id=USER,
    )
    assert list(paid) == [header]
    assert _available(manager, session_id) == Decimal("0.995")


def test_sdk_sees_insufficient_budget_and_expiry(
    manager: PaymentManager, emulator: PaymentsEmulator
) -> None:
    instrument_id = _wallet(manager)
    session_id = _session(manager, "0.01", minutes=15)
    with pytest.raises(InsufficientBudget):
        manager.generate_payment_header(
            payment_instrument_id=instrument_id,
            payment_session_id=session_id,
            payment_required_request=x402_challenge("0.02"),
            user_id=USER,
        )
    assert _available(manager, session_id) == Decimal("0.01")
    emulator.advance(15 * 60)
    with pytest.raises(PaymentSessionExpired):
        manager.generate_payment_header(
            payment_instrument_id=instrument_id,
            payment_session_id=session_id,
            payment_required_request=x402_challenge("0.001"),
            user_id=USER,
        )


def test_list_and_delete_through_the_sdk(manager: PaymentManager) -> None:
    session_id = _session(manager, "1.00")
    listed = manager.list_payment_sessions(user_id=USER)
    assert session_id in [s["paymentSessionId"] for s in listed["paymentSessions"]]
    manager.delete_payment_session(session_id, user_id=USER)


def test_sdk_pays_an_mpp_challenge_and_gets_the_credential_for_it(
    manager: PaymentManager,
) -> None:
    instrument_id = _wallet(manager)
    session_id = _session(manager, "1.00")
    paid = manager.generate_payment_header(
        payment_instrument_id=instrument_id,
        payment_session_id=session_id,
        payment_required_request=mpp_challenge("0.25", challenge_id="ch-42"),
        user_id=USER,
    )
    scheme, _, token = paid["Authorization"].partition(" ")
    assert scheme == "Payment"
    credential = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert credential["challenge"]["id"] == "ch-42"
    assert _available(manager, session_id) == Decimal("0.75")  # debited once


@pytest.mark.parametrize(("version", "header"), [(1, "X-PAYMENT"), (2, "PAYMENT-SIGNATURE")])
def test_sdk_signs_upto_for_the_ceiling_with_a_permit2_allowance(
    manager: PaymentManager, version: int, header: str
) -> None:
    instrument_id = _wallet(manager)
    session_id = _session(manager, "1.00")
    paid = manager.generate_payment_header(
        payment_instrument_id=instrument_id,
        payment_session_id=session_id,
        payment_required_request=x402_challenge("0.30", version=version, scheme="upto"),  # type: ignore[arg-type]
        user_id=USER,
        permit2_allowance_limit="1000000",
    )
    signed = json.loads(base64.b64decode(paid[header]))
    assert signed["payload"]["permit2Authorization"]["permitted"]["amount"] == "300000"
    assert _available(manager, session_id) == Decimal("0.70")


def test_sdk_reads_a_wallet_balance_and_deletes_the_wallet(
    manager: PaymentManager, emulator: PaymentsEmulator
) -> None:
    instrument_id = _wallet(manager)
    emulator.fund(instrument_id, "3.00", chain="BASE")
    balance = manager.get_payment_instrument_balance(
        payment_connector_id=CONNECTOR,
        payment_instrument_id=instrument_id,
        chain="BASE",
        token="USDC",
        user_id=USER,
    )
    assert balance["tokenBalance"]["amount"] == "3000000"
    deleted = manager.delete_payment_instrument(instrument_id, CONNECTOR, user_id=USER)
    assert deleted["status"] == "DELETED"
    with pytest.raises(PaymentInstrumentNotFound):
        manager.delete_payment_instrument(instrument_id, CONNECTOR, user_id=USER)
    with pytest.raises(PaymentInstrumentNotFound):
        manager.get_payment_instrument(instrument_id, user_id=USER)
