"""Strict parsing of the amounts a request carries: decimal text and atomic units.

Amounts are parsed as text, never as floats, and bounded so a hostile number cannot
exhaust the server. What each payment type is priced by lives in ``_payments``.
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

from spendguard.emulator._errors import ApiError, FieldError, validation
from spendguard.emulator._state import CONTEXT

#: Decimals of the settlement asset (USDC) when a challenge does not say otherwise.
USDC_DECIMALS = 6
_MAX_ATOMIC_DIGITS = 30
_MAX_AMOUNT = Decimal(10) ** 12
_ATOMIC = re.compile(rf"[0-9]{{1,{_MAX_ATOMIC_DIGITS}}}")
_DECIMAL = re.compile(r"[0-9]{1,13}(\.[0-9]{1,18})?")


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
        raise invalid(field, f"{text!r} is not a plain decimal amount such as '10.00'")
    with localcontext() as ctx:
        ctx.prec = 40
        value = Decimal(text)
    if value > _MAX_AMOUNT:
        raise invalid(field, f"{text} exceeds the largest amount accepted ({_MAX_AMOUNT})")
    return value


def parse_atomic(units: object, decimals: int, field: str) -> Decimal:
    """Convert atomic units of an asset (``"5000"``, 6 decimals) into ``Decimal("0.005")``.

    Raises:
        ApiError: ValidationException for signs, fractions, non-digits, or absurd sizes.
    """
    if isinstance(units, bool) or not isinstance(units, str | int):
        raise invalid(field, "must be a string of atomic units, e.g. '5000'")
    text = str(units)
    if _ATOMIC.fullmatch(text) is None:
        raise invalid(field, f"{text[:40]!r} is not a non-negative integer of at most 30 digits")
    value = Decimal(int(text)).scaleb(-decimals, CONTEXT)
    if value > _MAX_AMOUNT:
        raise invalid(field, f"{text} atomic units exceed the largest amount accepted")
    return value


def invalid(field: str, message: str) -> ApiError:
    """A ValidationException naming ``field``."""
    return validation(f"{field}: {message}", fields=[FieldError(field, message)])
