"""Money parses strictly, stays exact, and ignores the caller's decimal context."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendguard import CurrencyMismatchError, InvalidAmountError, Money

MALFORMED = [
    1.5,
    0.1,
    float("nan"),
    float("inf"),
    True,
    False,
    None,
    [],
    {},
    b"1.00",
    object(),
    complex(1, 0),
    "",
    " ",
    " 1.00",
    "1.00 ",
    "\t1",
    "1\n",
    "-1",
    "-0.01",
    "+1",
    "1e3",
    "1E-2",
    "1e999999",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "sNaN",
    "1,000.00",
    "1_000",
    "\u0661\u0662",  # Arabic-Indic digits
    "\uff11\uff12",  # fullwidth digits
    "0x10",
    ".5",
    "5.",
    "1.2.3",
    "$1.00",
    "1.00 USD",
    "9" * 14,
    "0." + "1" * 19,
    "1" * 5000,
    -1,
    10**12,
    10**40,
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("-1"),
    Decimal("1e999999"),
    Decimal("1e-999999"),
    Decimal("1e12"),
    Decimal("0." + "0" * 18 + "1"),
]


@pytest.mark.parametrize("value", MALFORMED, ids=[repr(v)[:30] for v in MALFORMED])
def test_malformed_amounts_are_rejected_with_a_value_error(value: object) -> None:
    assert len(MALFORMED) >= 40
    with pytest.raises(InvalidAmountError) as info:
        Money.of(value)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert str(info.value)


def test_float_error_says_how_to_pass_it() -> None:
    with pytest.raises(InvalidAmountError, match="from_float"):
        Money.of(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.005", Decimal("0.005")),
        ("0", Decimal(0)),
        ("0.000000000000000001", Decimal("1e-18")),
        ("999999999999.99", Decimal("999999999999.99")),
        (3, Decimal(3)),
        (Decimal("0.10"), Decimal("0.10")),
        (Decimal("-0"), Decimal(0)),
    ],
)
def test_valid_amounts_are_exact(value: str | int | Decimal, expected: Decimal) -> None:
    money = Money.of(value)
    assert money.amount == expected
    assert money.currency == "USD"


def test_sub_cent_amounts_are_never_quantized() -> None:
    total = Money.zero()
    for _ in range(3):
        total = total + Money.of("0.005")
    assert total == Money.of("0.015")
    assert total.to_wire() == "0.015"


def test_zero_is_a_valid_amount() -> None:
    assert Money.of("0") == Money.zero()
    assert Money.of("0.00") <= Money.of("0.01")


def test_from_float_goes_through_the_shortest_text() -> None:
    assert Money.from_float(0.1).amount == Decimal("0.1")
    assert Money.from_float(1e-7).amount == Decimal("1e-7")
    with pytest.raises(InvalidAmountError):
        Money.from_float(float("nan"))
    with pytest.raises(InvalidAmountError):
        Money.from_float(-0.5)


def test_from_atomic_scales_exactly() -> None:
    assert Money.from_atomic(5000, 6) == Money.of("0.005")
    assert Money.from_atomic("1", 18).amount == Decimal("1e-18")
    assert Money.from_atomic(250000, 6).to_wire() == "0.25"  # plain, not 0.250000
    assert Money.from_atomic(3000000, 6).to_wire() == "3"
    for units, places in [(-1, 6), ("1e3", 6), ("", 6), (True, 6), (1, 19), (1, -1), (10**40, 6)]:
        with pytest.raises(InvalidAmountError):
            Money.from_atomic(units, places)  # type: ignore[arg-type]


def test_currencies_never_mix() -> None:
    with pytest.raises(CurrencyMismatchError):
        Money.of("1", "USD") + Money.of("1", "EUR")
    with pytest.raises(CurrencyMismatchError):
        Money.of(Money.of("1", "EUR"), "USD")
    with pytest.raises(InvalidAmountError):
        Money.of("1", "usd")


def test_subtraction_never_goes_negative() -> None:
    with pytest.raises(InvalidAmountError):
        Money.of("1") - Money.of("2")
    assert Money.of("1").minus_floor(Money.of("2")) == Money.zero()


def test_callers_decimal_context_changes_nothing() -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 2
        ctx.rounding = decimal.ROUND_UP
        ctx.traps[decimal.Inexact] = False
        total = Money.of("123.456") + Money.of("0.001")
        assert total.amount == Decimal("123.457")
        assert Money.of("0.005") < Money.of("0.0051")


def test_direct_construction_is_validated() -> None:
    with pytest.raises(InvalidAmountError):
        Money(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmountError):
        Money(Decimal("-1"))


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False))
def test_wire_form_round_trips(value: Decimal) -> None:
    money = Money.of(value)
    assert "E" not in money.to_wire()
    assert "e" not in money.to_wire()
    assert Money.of(money.to_wire()) == money


@given(st.lists(st.decimals(min_value=0, max_value=10**6, places=6), max_size=50))
def test_sums_are_exact(values: list[Decimal]) -> None:
    total = Money.zero()
    for value in values:
        total = total + Money.of(value)
    assert total.amount == sum(values, Decimal(0))
