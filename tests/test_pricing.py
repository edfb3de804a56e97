"""Shared pricing and admission: hostile arguments can only block, never overspend."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import BudgetExceededError, Hold, Money, PricingError, SpendGuard
from spendguard.pricing import Blocked, Pricing, aadmit, admit, from_argument


def make(available: str = "1.00") -> SpendGuard:
    return SpendGuard(
        ARN, SID, client=ScriptedClient(Session(available=available)), **Clock().kwargs
    )


PRICES = Pricing(
    {
        "search": "0.01",
        "buy": from_argument("price"),
        "bulk": lambda args: Decimal(str(args["n"])) * Decimal("0.005"),
    }
)


def test_fixed_callable_and_argument_prices() -> None:
    assert PRICES.price("search", {}) == Money.of("0.01")
    assert PRICES.price("buy", {"price": "0.25"}) == Money.of("0.25")
    assert PRICES.price("bulk", {"n": 3}) == Money.of("0.015")


def test_json_numbers_use_their_shortest_text() -> None:
    assert PRICES.price("buy", {"price": 0.1}) == Money.of("0.1")
    assert PRICES.price("buy", '{"price": 0.1}') == Money.of("0.1")
    assert PRICES.price("buy", '{"price": 1.10}') == Money.of("1.10")


def test_unknown_tools_are_free_unless_strict() -> None:
    assert PRICES.price("weather", {}) is None
    with pytest.raises(PricingError) as info:
        Pricing({}, strict=True).price("weather", {})
    assert info.value.tool_name == "weather"


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("buy", {"price": -1}),
        ("buy", {"price": float("nan")}),
        ("buy", {"price": float("inf")}),
        ("buy", {"price": "1e9999"}),
        ("buy", {"price": True}),
        ("buy", {"price": None}),
        ("buy", {"price": [1]}),
        ("buy", {}),
        ("buy", '{"price": NaN}'),
        ("buy", '{"price": Infinity}'),
        ("buy", '{"price": -0.5}'),
        ("buy", "not json"),
        ("buy", "[1, 2]"),
        ("buy", '{"price": 1e400}'),
        ("bulk", {"n": "x"}),
        ("bulk", {}),
    ],
)
def test_hostile_arguments_fail_to_price(tool: str, args: object) -> None:
    with pytest.raises(PricingError):
        PRICES.price(tool, args)  # type: ignore[arg-type]


def test_admit_holds_the_price() -> None:
    guard = make("0.30")
    hold = admit(guard, PRICES, "buy", {"price": "0.25"})
    assert isinstance(hold, Hold)
    assert guard.snapshot().held == Money.of("0.25")
    blocked = admit(guard, PRICES, "buy", {"price": "0.10"})
    assert isinstance(blocked, Blocked)
    assert isinstance(blocked.error, BudgetExceededError)
    assert "0.10 USD" in blocked.message
    assert "0.05 USD" in blocked.message
    assert "Do not retry" in blocked.message
    hold.commit()


def test_admit_turns_every_failure_into_a_block() -> None:
    guard = make()
    blocked = admit(guard, PRICES, "buy", {"price": "-5"})
    assert isinstance(blocked, Blocked)
    assert isinstance(blocked.error, PricingError)
    assert "Do not retry" in blocked.message
    assert guard.snapshot().held == Money.zero()


def test_free_calls_need_no_hold() -> None:
    guard = make()
    assert admit(guard, PRICES, "weather", {}) is None
    assert admit(guard, PRICES, "bulk", {"n": 0}) is None


def test_arguments_cannot_choose_session_or_hold() -> None:
    guard = make("1.00")
    hold = admit(guard, PRICES, "buy", {"price": "0.50", "session_id": "other", "hold": "x"})
    assert isinstance(hold, Hold)
    assert guard.payment_session_id == SID
    assert hold.id != "x"


def test_aadmit() -> None:
    guard = make("0.02")

    async def main() -> list[Hold | Blocked | None]:
        return list(await asyncio.gather(*(aadmit(guard, PRICES, "search", {}) for _ in range(3))))

    results = asyncio.run(main())
    assert sum(isinstance(r, Hold) for r in results) == 2
    assert sum(isinstance(r, Blocked) for r in results) == 1


def test_a_block_is_logged_once_for_the_operator_and_the_model_sees_no_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = make("1.00")
    with caplog.at_level(logging.INFO, logger="spendguard"):
        outcome = admit(guard, Pricing({"buy": "2.00"}), "buy", {})
    assert isinstance(outcome, Blocked)
    records = [r for r in caplog.records if getattr(r, "spendguard_event", None) == "blocked"]
    assert len(records) == 1
    assert records[0].name == "spendguard.decisions"
    assert records[0].spendguard_tool == "buy"  # type: ignore[attr-defined]
    assert records[0].spendguard_error == "BudgetExceededError"  # type: ignore[attr-defined]
    assert records[0].spendguard_rule == "session_limit"  # type: ignore[attr-defined]
    assert records[0].spendguard_session_id == SID  # type: ignore[attr-defined]
    assert SID not in outcome.message
    assert "2.00" in outcome.message
    assert "Do not retry" in outcome.message
