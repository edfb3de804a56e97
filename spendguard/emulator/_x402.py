"""Builders for x402 and MPP payment challenges and ProcessPayment inputs, priced in USD.

Handy for tests, examples and the demo: an HTTP 402 response a paid API would send
(the shape ``PaymentManager.generate_payment_header`` consumes) and the matching
``paymentInput`` for a direct ``ProcessPayment`` call.
"""

from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal
from typing import Literal

from spendguard._errors import InvalidArgumentError
from spendguard._money import CONTEXT
from spendguard.emulator._pricing import USDC_DECIMALS

#: USDC on Base mainnet (the asset x402 challenges usually ask for).
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
Scheme = Literal["exact", "upto"]


def atomic_units(amount: str | Decimal, decimals: int = USDC_DECIMALS) -> str:
    """``"0.005"`` -> ``"5000"`` (atomic units of a 6-decimal asset).

    Raises:
        InvalidArgumentError: When the amount is not a number, is negative, or has more
            decimals than the asset.
    """
    try:
        value = Decimal(str(amount))
        scaled = value.scaleb(decimals, CONTEXT)
        exact = (
            value.is_finite() and value >= 0 and scaled == scaled.to_integral_value(context=CONTEXT)
        )
    except (ArithmeticError, TypeError):
        exact = False
    if not exact:
        raise InvalidArgumentError(
            f"{amount} is not a non-negative amount with at most {decimals} decimals",
            argument="amount",
        )
    return str(int(scaled))


def x402_accept(
    amount: str | Decimal,
    *,
    version: Literal[1, 2] = 1,
    resource: str = "https://api.example.com/data",
    scheme: Scheme = "exact",
) -> dict[str, object]:
    """One x402 ``accepts`` entry asking for ``amount`` USD in USDC on Base.

    With ``scheme="upto"``, ``amount`` is the ceiling the buyer signs (Permit2).
    """
    units = atomic_units(amount)
    accept: dict[str, object] = {
        "scheme": scheme,
        "network": "base" if version == 1 else "eip155:8453",
        "asset": USDC_BASE,
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 60,
        "extra": {"name": "USD Coin", "version": "2"},
    }
    if version == 1:
        accept.update(maxAmountRequired=units, resource=resource, mimeType="application/json")
        accept["description"] = "Paid API call"
    else:
        accept["amount"] = units
    return accept


def x402_challenge(
    amount: str | Decimal,
    *,
    version: Literal[1, 2] = 1,
    resource: str = "https://api.example.com/data",
    scheme: Scheme = "exact",
) -> dict[str, object]:
    """An HTTP 402 response as ``{"statusCode", "headers", "body"}`` asking for ``amount``.

    Version 1 carries the requirement in the JSON body; version 2 in the base64
    ``PAYMENT-REQUIRED`` header.
    """
    accept = x402_accept(amount, version=version, resource=resource, scheme=scheme)
    if version == 1:
        body = {"x402Version": 1, "error": "Payment required", "accepts": [accept]}
        return {"statusCode": 402, "headers": {"content-type": "application/json"}, "body": body}
    required = {"x402Version": 2, "resource": {"url": resource}, "accepts": [accept]}
    header = base64.b64encode(json.dumps(required).encode()).decode()
    return {"statusCode": 402, "headers": {"PAYMENT-REQUIRED": header}, "body": {}}


def x402_payment_input(
    amount: str | Decimal, *, version: Literal[1, 2] = 1, scheme: Scheme = "exact"
) -> dict[str, object]:
    """The ``paymentInput`` of a CRYPTO_X402 ProcessPayment paying ``amount`` USD."""
    accept = x402_accept(amount, version=version, scheme=scheme)
    return {"cryptoX402": {"version": str(version), "payload": accept}}


def mpp_challenge(
    amount: str | Decimal, *, challenge_id: str | None = None, realm: str = "api.example.com"
) -> dict[str, object]:
    """An HTTP 402 response with one MPP ``WWW-Authenticate: Payment`` challenge.

    It asks for ``amount`` USD in USDC on Base (``method="evm"``, ``intent="charge"``,
    fees sponsored by the seller); ``challenge_id`` defaults to a fresh random id.
    """
    request = {
        "amount": atomic_units(amount),
        "currency": USDC_BASE,
        "recipient": PAY_TO,
        "methodDetails": {"chainId": 8453, "feePayer": True},
    }
    encoded = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
    header = (
        f'Payment id="{challenge_id or uuid.uuid4().hex}", realm="{realm}", method="evm", '
        f'intent="charge", request="{encoded}"'
    )
    return {"statusCode": 402, "headers": {"WWW-Authenticate": header}, "body": {}}
