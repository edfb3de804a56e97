"""What a ProcessPayment request costs, and strict parsing of the amounts it carries.

x402 v1 prices an accept by ``maxAmountRequired``, x402 v2 (and AWS Billing x402) by
``amount``, MPP by the ``amount`` of the challenge's base64url ``request``; all are
atomic units of the asset (USDC: 6 decimals). Amounts are parsed as text, never as
floats, and bounded so a hostile number cannot exhaust the server.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, localcontext

from spendguard.emulator._errors import ApiError, FieldError, validation
from spendguard.emulator._state import CONTEXT
from spendguard.emulator._validation import load_json

#: Decimals of the settlement asset (USDC) when a challenge does not say otherwise.
USDC_DECIMALS = 6
_MAX_ATOMIC_DIGITS = 30
_MAX_AMOUNT = Decimal(10) ** 12
_ATOMIC = re.compile(rf"[0-9]{{1,{_MAX_ATOMIC_DIGITS}}}")
_DECIMAL = re.compile(r"[0-9]{1,13}(\.[0-9]{1,18})?")
_MPP_REQUEST = re.compile(r'(?:^|[\s,])request="?([A-Za-z0-9_-]+)"?')


def parse_amount(text: object, field: str) -> Decimal:
    """Parse a plain non-negative decimal string such as ``"10.00"`` (no sign, no exponent).

    Args:
        text: The wire value.
        field: Member path, reported in the ValidationException.

    Returns:
        The exact amount.

    Raises:
        ApiError: ValidationException when the text is not such an amount or exceeds 10**12.
    """
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
        raise _bad(field, f"{text!r} is not a plain decimal amount such as '10.00'")
    with localcontext() as ctx:
        ctx.prec = 40
        value = Decimal(text)
    if value > _MAX_AMOUNT:
        raise _bad(field, f"{text} exceeds the largest amount accepted ({_MAX_AMOUNT})")
    return value


def parse_atomic(units: object, decimals: int, field: str) -> Decimal:
    """Convert atomic units of an asset (``"5000"``, 6 decimals) into ``Decimal("0.005")``.

    Raises:
        ApiError: ValidationException for signs, fractions, non-digits, or absurd sizes.
    """
    if isinstance(units, bool) or not isinstance(units, str | int):
        raise _bad(field, "must be a string of atomic units, e.g. '5000'")
    text = str(units)
    if _ATOMIC.fullmatch(text) is None:
        raise _bad(field, f"{text[:40]!r} is not a non-negative integer of at most 30 digits")
    value = Decimal(int(text)).scaleb(-decimals, CONTEXT)
    if value > _MAX_AMOUNT:
        raise _bad(field, f"{text} atomic units exceed the largest amount accepted")
    return value


def price(payment_type: str, payment_input: dict[str, object], decimals: int) -> Decimal:
    """The amount ``payment_input`` would pay, in units of the session currency.

    Args:
        payment_type: ``CRYPTO_X402``, ``AWS_BILLING_X402`` or ``MPP``.
        payment_input: The (already shape-validated) ``paymentInput`` union.
        decimals: Decimals of the asset the atomic units count.

    Raises:
        ApiError: ValidationException when the input does not match the type or has no price.
    """
    member = {"CRYPTO_X402": "cryptoX402", "AWS_BILLING_X402": "awsBillingX402", "MPP": "mpp"}
    wanted = member[payment_type]
    body = payment_input.get(wanted)
    if not isinstance(body, dict):
        raise _bad("paymentInput", f"paymentType {payment_type} requires paymentInput.{wanted}")
    if payment_type == "MPP":
        return _price_mpp(body, decimals)
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise _bad(f"paymentInput.{wanted}.payload", "must be the selected x402 accept object")
    if payment_type == "AWS_BILLING_X402":
        extra = payload.get("extra")
        if not isinstance(extra, dict) or not extra.get("quoteToken"):
            raise _bad(f"paymentInput.{wanted}.payload.extra.quoteToken", "quote token missing")
    key = "maxAmountRequired" if str(body.get("version")) == "1" else "amount"
    if key not in payload:
        raise _bad(f"paymentInput.{wanted}.payload.{key}", "missing: the accept has no price")
    return parse_atomic(payload[key], decimals, f"paymentInput.{wanted}.payload.{key}")


def _price_mpp(body: dict[str, object], decimals: int) -> Decimal:
    headers = body.get("wwwAuthenticateHeaders")
    field = "paymentInput.mpp.wwwAuthenticateHeaders"
    header = headers[0] if isinstance(headers, list) and headers else ""
    match = _MPP_REQUEST.search(str(header))
    if match is None:
        raise _bad(field, "no request auth-param in the Payment challenge")
    encoded = match.group(1)
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        request = load_json(raw)
    except (binascii.Error, ValueError) as exc:
        raise _bad(field, f"challenge request is not base64url JSON: {exc}") from exc
    except RecursionError as exc:
        raise _bad(field, "challenge request is JSON nested too deeply") from exc
    if not isinstance(request, dict) or "amount" not in request:
        raise _bad(field, "challenge request has no amount")
    places = request.get("decimals", decimals)
    if not isinstance(places, int) or isinstance(places, bool) or not 0 <= places <= 18:
        raise _bad(field, "challenge request decimals must be an integer from 0 to 18")
    return parse_atomic(request["amount"], places, f"{field}[0].request.amount")


def _bad(field: str, message: str) -> ApiError:
    return validation(f"{field}: {message}", fields=[FieldError(field, message)])
