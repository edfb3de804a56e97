"""Payment instruments through boto3: balances per chain and soft deletion."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import PaymentSessionFixture

from spendguard import InvalidArgumentError
from spendguard.emulator import DEFAULT_CONNECTOR_ID, PaymentsEmulator, response_problems


def _wallet(session: PaymentSessionFixture, **overrides: str) -> dict[str, Any]:
    return {
        "paymentManagerArn": session.arn,
        "userId": session.user_id,
        "paymentConnectorId": DEFAULT_CONNECTOR_ID,
        "paymentInstrumentId": session.instrument_id,
        **overrides,
    }


def _code(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    error = info.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_a_new_wallet_has_nothing_and_fund_adds_to_one_chain(
    payment_session: PaymentSessionFixture,
) -> None:
    client = payment_session.client
    empty = client.get_payment_instrument_balance(
        **_wallet(payment_session), chain="BASE_SEPOLIA", token="USDC"
    )
    assert empty["tokenBalance"]["amount"] == "0"
    assert payment_session.emulator.fund(payment_session.instrument_id, "2.50") == Decimal("2.5")
    payment_session.emulator.fund(payment_session.instrument_id, "0.000001", chain="BASE")
    funded = client.get_payment_instrument_balance(
        **_wallet(payment_session), chain="BASE_SEPOLIA", token="USDC"
    )
    assert response_problems("GetPaymentInstrumentBalance", funded) == []
    assert funded["paymentInstrumentId"] == payment_session.instrument_id
    assert funded["tokenBalance"] == {
        "amount": "2500000",  # atomic units: 2.50 USDC
        "decimals": 6,
        "token": "USDC",
        "network": "ETHEREUM",
        "chain": "BASE_SEPOLIA",
    }
    base = client.get_payment_instrument_balance(
        **_wallet(payment_session), chain="BASE", token="USDC"
    )
    assert base["tokenBalance"]["amount"] == "1"


def test_payments_do_not_move_the_wallet_balance(payment_session: PaymentSessionFixture) -> None:
    payment_session.emulator.fund(payment_session.instrument_id, "1.00")
    payment_session.pay("0.40")  # signed, never settled on chain
    balance = payment_session.client.get_payment_instrument_balance(
        **_wallet(payment_session), chain="BASE_SEPOLIA", token="USDC"
    )
    assert balance["tokenBalance"]["amount"] == "1000000"
    assert payment_session.available() == Decimal("9.60")


@pytest.mark.parametrize(
    ("network", "chain", "allowed"),
    [
        ("ETHEREUM", "SOLANA", False),
        ("ETHEREUM", "ETHEREUM", True),
        ("SOLANA", "SOLANA_DEVNET", True),
        ("SOLANA", "BASE", False),
    ],
)
def test_a_balance_is_only_on_a_chain_of_the_wallets_network(
    emulator: PaymentsEmulator, network: str, chain: str, allowed: bool
) -> None:
    made = emulator.create_session("1.00", user_id="chains", network=network)
    wallet = {
        "paymentManagerArn": made.payment_manager_arn,
        "userId": "chains",
        "paymentConnectorId": made.payment_connector_id,
        "paymentInstrumentId": made.payment_instrument_id,
    }
    if allowed:
        got = emulator.client().get_payment_instrument_balance(**wallet, chain=chain, token="USDC")
        assert got["tokenBalance"]["network"] == network
        return
    with pytest.raises(ClientError) as info:
        emulator.client().get_payment_instrument_balance(**wallet, chain=chain, token="USDC")
    assert _code(info) == ("ValidationException", 400)
    assert info.value.response["fieldList"][0]["name"] == "chain"  # type: ignore[typeddict-item]
    with pytest.raises(InvalidArgumentError):
        emulator.fund(made.payment_instrument_id, "1.00", chain=chain)


@pytest.mark.parametrize("amount", ["-1", "0.0000001", "1e3", "lots"])
def test_fund_refuses_amounts_the_wallet_cannot_hold(
    payment_session: PaymentSessionFixture, amount: str
) -> None:
    with pytest.raises(InvalidArgumentError):
        payment_session.emulator.fund(payment_session.instrument_id, amount)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"userId": "mallory"}, ("AccessDeniedException", 403)),
        ({"paymentConnectorId": "other-connector-0123456789"}, ("ResourceNotFoundException", 404)),
        (
            {"paymentInstrumentId": "payment-instrument-nope12345678901"},
            ("ResourceNotFoundException", 404),
        ),
    ],
    ids=["other user", "other connector", "unknown"],
)
def test_balance_and_delete_are_for_the_owner_under_the_connector(
    payment_session: PaymentSessionFixture, overrides: dict[str, str], expected: tuple[str, int]
) -> None:
    client, wallet = payment_session.client, _wallet(payment_session, **overrides)
    with pytest.raises(ClientError) as info:
        client.get_payment_instrument_balance(**wallet, chain="BASE", token="USDC")
    assert _code(info) == expected
    with pytest.raises(ClientError) as info:
        client.delete_payment_instrument(**wallet)
    assert _code(info) == expected
    payment_session.pay("0.01")  # the wallet still pays


def test_a_deleted_instrument_is_not_found_again_and_pays_nothing(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> None:
    session = new_payment_session("1.00", user_id="deleter")
    client, wallet = session.client, _wallet(session)
    deleted = client.delete_payment_instrument(**wallet)
    assert deleted["status"] == "DELETED"
    assert response_problems("DeletePaymentInstrument", deleted) == []
    for attempt in (
        lambda: client.delete_payment_instrument(**wallet),
        lambda: client.get_payment_instrument(
            paymentManagerArn=session.arn,
            userId=session.user_id,
            paymentInstrumentId=session.instrument_id,
        ),
        lambda: client.get_payment_instrument_balance(**wallet, chain="BASE", token="USDC"),
        lambda: session.pay("0.01"),
    ):
        with pytest.raises(ClientError) as info:
            attempt()
        assert _code(info) == ("ResourceNotFoundException", 404)
    listed = client.list_payment_instruments(paymentManagerArn=session.arn, userId="deleter")
    assert session.instrument_id not in [
        i["paymentInstrumentId"] for i in listed["paymentInstruments"]
    ]
    assert session.available() == Decimal("1.00")


def test_the_aws_billing_instrument_is_not_a_wallet(payment_session: PaymentSessionFixture) -> None:
    client = payment_session.client
    billing = _wallet(payment_session, paymentInstrumentId="aws.agentcorepayments.awsbilling.v1")
    for attempt in (
        lambda: client.get_payment_instrument_balance(**billing, chain="BASE", token="USDC"),
        lambda: client.delete_payment_instrument(**billing),
    ):
        with pytest.raises(ClientError) as info:
            attempt()
        assert _code(info) == ("ResourceNotFoundException", 404)
