"""Exact money: the :class:`Money` value type and the library's own decimal context."""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Union

from spendguard._errors import CurrencyMismatchError, InvalidAmountError

__all__ = ["CONTEXT", "MAX_AMOUNT", "MAX_PLACES", "Amount", "Money"]

#: Largest amount accepted anywhere (a trillion units of the currency).
MAX_AMOUNT = Decimal(10) ** 12
#: Most decimal places accepted: 18 covers the atomic unit of every common token.
MAX_PLACES = 18

#: Every computation in spendguard runs in this context. Rounding of any kind is an error, so a
#: sum can never lose a digit silently, and the caller's ``decimal.getcontext()`` has no say.
CONTEXT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999,
    Emax=999,
    traps=[
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
        decimal.Underflow,
        decimal.Inexact,
        decimal.Rounded,
        decimal.Subnormal,
    ],
)

# ASCII only: str.isdigit() and Decimal() accept other scripts' digits, this does not.
_AMOUNT_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,18})?\Z")  # below MAX_AMOUNT by construction
_CURRENCY_RE = re.compile(r"[A-Z]{3}\Z")
_MAX_INPUT_CHARS = 40

Amount = Union["Money", str, int, Decimal]


def _check_currency(currency: object) -> str:
    if currency == "USD":  # the service's currency: the common case skips the pattern
        return "USD"
    if not isinstance(currency, str) or not _CURRENCY_RE.match(currency):
        raise InvalidAmountError(
            f"currency must be a three-letter ISO 4217 code such as 'USD', got {currency!r}",
            value=currency,
        )
    return currency


def _check_range(amount: Decimal, value: object) -> Decimal:
    if amount.is_signed() and amount != 0:
        raise InvalidAmountError(f"amount must not be negative, got {value!r}", value=value)
    if amount >= MAX_AMOUNT:
        raise InvalidAmountError(f"amount must be below {MAX_AMOUNT:,}, got {value!r}", value=value)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals only reach here
    if -exponent > MAX_PLACES:
        raise InvalidAmountError(
            f"amount has more than {MAX_PLACES} decimal places: {value!r}", value=value
        )
    # Normalise -0 to 0; keep the caller's scale (0.50 stays 0.50) for display.
    return amount.copy_abs() if amount == 0 else amount


def _parse_str(value: str) -> Decimal:
    if len(value) > _MAX_INPUT_CHARS or not _AMOUNT_RE.match(value):
        raise InvalidAmountError(
            "amount must be a plain decimal string such as '0.005' (ASCII digits, optional "
            f"fraction, no sign, exponent or spaces), got {value[:_MAX_INPUT_CHARS]!r}",
            value=value,
        )
    return Decimal(value)


def _parse_decimal(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise InvalidAmountError(f"amount must be finite, got {value!r}", value=value)
    if value.adjusted() > 12 or value.adjusted() < -MAX_PLACES - 1:
        raise InvalidAmountError(f"amount is out of range: {value!r}", value=value)
    # Plus in CONTEXT traps any amount whose digits do not survive exactly.
    try:
        return CONTEXT.plus(value) if value != 0 else Decimal(0)
    except decimal.DecimalException as exc:
        raise InvalidAmountError(f"amount is not exact: {value!r}", value=value) from exc


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise InvalidAmountError(f"amount must be a number, got {value!r}", value=value)
    if isinstance(value, float):
        raise InvalidAmountError(
            f"float amounts are not accepted ({value!r}): binary floats cannot hold most "
            "decimal prices. Pass a string such as '0.10', a Decimal, or use "
            "Money.from_float() to convert through the shortest decimal text.",
            value=value,
        )
    if isinstance(value, str):
        return _parse_str(value)
    if isinstance(value, int):
        if abs(value) >= MAX_AMOUNT:
            raise InvalidAmountError(f"amount must be below {MAX_AMOUNT:,}", value=value)
        return Decimal(value)
    if isinstance(value, Decimal):
        return _parse_decimal(value)
    raise InvalidAmountError(
        f"amount must be a str, int, Decimal or Money, got {type(value).__name__}", value=value
    )


@dataclass(frozen=True, slots=True)
class Money:
    """An exact, non-negative amount of one currency.

    Build it with :meth:`of` (strict parsing) rather than the constructor. Arithmetic is allowed
    only between amounts of the same currency and is exact: a result that would need rounding
    raises instead.

    Attributes:
        amount: The amount, a finite non-negative Decimal.
        currency: ISO 4217 code, ``"USD"`` by default.
    """

    amount: Decimal
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise InvalidAmountError(
                "Money.amount must be a Decimal; use Money.of()", value=self.amount
            )
        _check_currency(self.currency)
        _check_range(_parse_decimal(self.amount), self.amount)

    @classmethod
    def of(cls, value: Amount, currency: str = "USD") -> Money:
        """Parse an amount strictly.

        Args:
            value: A plain decimal string (``"0.005"``), an int, a Decimal, or a Money (whose
                currency must match ``currency``).
            currency: The currency of the amount.

        Returns:
            The parsed amount.

        Raises:
            InvalidAmountError: For floats, bools, None, NaN, infinities, negatives, exponents,
                non-ASCII digits, padding, more than 18 decimal places or 10**12 and above.
            CurrencyMismatchError: A Money of another currency was passed.
        """
        _check_currency(currency)
        if isinstance(value, Money):
            if value.currency != currency:
                raise CurrencyMismatchError(currency, value.currency)
            return value
        if type(value) is str:  # the common case; the pattern bounds sign, size and places
            return _trusted(_parse_str(value), currency)
        return _trusted(_check_range(_to_decimal(value), value), currency)

    @classmethod
    def from_float(cls, value: float, currency: str = "USD") -> Money:
        """Convert a float through its shortest decimal text (``0.1`` -> ``Decimal("0.1")``).

        Args:
            value: A finite, non-negative float, e.g. a JSON number parsed by another library.
            currency: The currency of the amount.

        Returns:
            The amount the float was written as, never its binary expansion.

        Raises:
            InvalidAmountError: The float is not finite, negative or out of range.
        """
        if not isinstance(value, float):
            raise InvalidAmountError(f"from_float takes a float, got {value!r}", value=value)
        return cls.of(_parse_decimal(Decimal(repr(value))), currency)

    @classmethod
    def from_atomic(cls, units: int | str, decimals: int, currency: str = "USD") -> Money:
        """Scale an integer count of atomic units, e.g. ``(5000, 6)`` -> ``0.005``.

        Args:
            units: Non-negative count of atomic units, an int or a string of ASCII digits.
            decimals: How many decimal places one unit is (USDC: 6), 0 to 18.
            currency: The currency of the result.

        Returns:
            The exact amount.

        Raises:
            InvalidAmountError: The units or decimals are not acceptable.
        """
        if isinstance(units, bool) or not isinstance(units, (int, str)):
            raise InvalidAmountError(
                f"atomic units must be an int or str, got {units!r}", value=units
            )
        if isinstance(units, str) and not re.fullmatch(r"[0-9]{1,40}", units):
            raise InvalidAmountError(
                f"atomic units must be ASCII digits, got {units[:40]!r}", value=units
            )
        if (
            isinstance(decimals, bool)
            or not isinstance(decimals, int)
            or not (0 <= decimals <= MAX_PLACES)
        ):
            raise InvalidAmountError(
                f"decimals must be 0 to {MAX_PLACES}, got {decimals!r}", value=decimals
            )
        count = int(units)
        if count < 0 or count >= 10 ** (12 + decimals):  # MAX_AMOUNT in units, int math only
            # No repr of the units: an int of thousands of digits cannot even be printed.
            raise InvalidAmountError(
                f"atomic units out of range: must be 0 to under 10**{12 + decimals}", value=units
            )
        scaled = Decimal(count).scaleb(-decimals, CONTEXT)
        # 5000 units of 6 places is 0.005, not 0.005000; integers keep their plain form.
        return cls.of(
            scaled.normalize(CONTEXT)
            if CONTEXT.remainder(scaled, 1)
            else scaled.to_integral_value(context=CONTEXT),
            currency,
        )

    @classmethod
    def zero(cls, currency: str = "USD") -> Money:
        """Return zero in ``currency``."""
        return _trusted(_ZERO, _check_currency(currency))

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(self.currency, other.currency)
        return other

    def __add__(self, other: Money) -> Money:
        total = CONTEXT.add(self.amount, self._same(other).amount)
        if total >= MAX_AMOUNT:
            return Money(total, self.currency)  # raises: out of range
        return _trusted(total, self.currency)

    def __sub__(self, other: Money) -> Money:
        """Subtract; the result may not go below zero (use :meth:`minus_floor` for that)."""
        result = CONTEXT.subtract(self.amount, self._same(other).amount)
        if result < 0:
            raise InvalidAmountError(f"{self} - {other} would be negative", value=result)
        return _trusted(result, self.currency)

    def minus_floor(self, other: Money) -> Money:
        """Subtract, flooring at zero (what is left can never be negative)."""
        result = CONTEXT.subtract(self.amount, self._same(other).amount)
        return _trusted(max(result, _ZERO), self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def to_wire(self) -> str:
        """The amount as a plain decimal string, never in exponent notation."""
        return format(self.amount, "f")

    def __str__(self) -> str:
        return f"{self.to_wire()} {self.currency}"


_ZERO = Decimal(0)
_new = object.__new__
# The slots' own descriptors: setting through them skips the frozen __setattr__ hook.
_set_amount = Money.__dict__["amount"].__set__
_set_currency = Money.__dict__["currency"].__set__


def _trusted(amount: Decimal, currency: str) -> Money:
    """Build a Money from an amount already validated (skips re-validation on hot paths)."""
    money: Money = _new(Money)
    _set_amount(money, amount)
    _set_currency(money, currency)
    return money
