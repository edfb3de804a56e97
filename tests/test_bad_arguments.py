"""Every public constructor and function answers bad arguments with a SpendGuardError
(an InvalidArgumentError, which is also a ValueError) and changes no state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import (
    Freshness,
    InMemoryLedger,
    InvalidArgumentError,
    Money,
    SpendGuard,
    SpendGuardError,
)
from spendguard.emulator import PaymentsEmulator, atomic_units
from spendguard.gate import ToolGate
from spendguard.pricing import Pricing, from_argument


def make(**kwargs: Any) -> SpendGuard:
    return SpendGuard(ARN, SID, client=ScriptedClient(Session()), **Clock().kwargs, **kwargs)


GUARD_ARGS: list[dict[str, Any]] = [
    {"payment_manager_arn": ""},
    {"payment_manager_arn": None},
    {"payment_session_id": 5},
    {"user_id": ""},
    {"agent_name": 7},
    {"client": object()},
    {"ledger": "redis://localhost"},
    {"settlement": "later"},
    {"clock": 5},
    {"timer": "monotonic"},
    {"freshness": {"max_ttl": 5}},
    {"hold_lease": 0},
    {"hold_lease": -1},
    {"hold_lease": float("inf")},
    {"hold_lease": float("nan")},
    {"hold_lease": True},
    {"hold_lease": "900"},
    {"currency": "usd"},
]


@pytest.mark.parametrize("bad", GUARD_ARGS)
def test_spend_guard_constructor(bad: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {
        "payment_manager_arn": ARN,
        "payment_session_id": SID,
        "client": ScriptedClient(Session()),
        **Clock().kwargs,
    }
    kwargs.update(bad)
    with pytest.raises(SpendGuardError) as info:
        SpendGuard(**kwargs)
    assert isinstance(info.value, ValueError)


def _guard_calls(guard: SpendGuard) -> list[Callable[[], object]]:
    return [
        lambda: guard.check("-1"),
        lambda: guard.check(0.5),  # type: ignore[arg-type]
        lambda: guard.reserve("abc"),
        lambda: guard.reserve("1", settlement="now"),  # type: ignore[arg-type]
        lambda: guard.reserve("1", release_on=("TimeoutError",)),  # type: ignore[arg-type]
        lambda: guard.reserve("1", release_on=(int,)),  # type: ignore[arg-type]
        lambda: guard.areserve(None),  # type: ignore[arg-type]
        lambda: guard.charges("-0.01"),
        lambda: guard.charges("1", release_on=[ValueError]),  # type: ignore[arg-type]
        lambda: asyncio.run(guard.acheck("1e3")),
    ]


@pytest.mark.parametrize("index", range(len(_guard_calls(make()))))
def test_guard_methods(index: int) -> None:
    guard = make()
    hold = guard.reserve("1.00")
    before = guard.snapshot()
    with pytest.raises(InvalidArgumentError):
        _guard_calls(guard)[index]()
    assert guard.snapshot() == before
    assert hold.state == "held"


def test_hold_methods() -> None:
    guard = make()
    hold = guard.reserve("1.00")
    before = guard.snapshot()
    for call in (
        lambda: hold.commit("x"),
        lambda: hold.commit("2.00"),  # more than held: HoldStateError
        lambda: hold.commit(receipt_time=datetime(2026, 1, 1)),  # naive
        lambda: hold.commit(receipt_time="2026-01-01"),  # type: ignore[arg-type]
    ):
        with pytest.raises(SpendGuardError):
            call()
        assert guard.snapshot() == before
    assert hold.state == "held"


@pytest.mark.parametrize(
    "call",
    [
        lambda: Money.of("1e3"),
        lambda: Money.of(float("nan")),  # type: ignore[arg-type]
        lambda: Money.from_float("0.1"),  # type: ignore[arg-type]
        lambda: Money.from_atomic(-1, 6),
        lambda: Money.from_atomic(1, 19),
        lambda: Money.zero("usd"),
        lambda: Money(Decimal("1"), "EURO"),
        lambda: Money.of("1") + Money.of("1", "EUR"),
        lambda: Freshness(fraction=-0.1),
        lambda: Freshness(max_ttl=float("inf")),
        lambda: Freshness(min_ttl=10, max_ttl=5),
        lambda: Pricing({"": "1"}),
        lambda: Pricing({"buy": "-1"}),
        lambda: Pricing(["buy"]),  # type: ignore[arg-type]
        lambda: Pricing(strict="yes"),  # type: ignore[arg-type]
        lambda: Pricing(currency="dollars"),
        lambda: from_argument(""),
        lambda: ToolGate(make(), 5),  # type: ignore[arg-type]
        lambda: ToolGate(make(), {}, release_on=("x",)),  # type: ignore[arg-type]
        lambda: ToolGate(make(), {}, on_blocked="log"),  # type: ignore[arg-type]
        lambda: ToolGate(make(), {}, settlement="both"),  # type: ignore[arg-type]
        lambda: InMemoryLedger().reserve("k", "h", Decimal(-1), _view(), "external", 60.0, 0.0),
        lambda: atomic_units("-1"),
        lambda: atomic_units("abc"),
    ],
)
def test_values_and_rules(call: Callable[[], object]) -> None:
    with pytest.raises(SpendGuardError) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_emulator_helpers(emulator: PaymentsEmulator) -> None:
    made = emulator.create_session("1.00")
    for call in (
        lambda: emulator.spend(made.payment_session_id, "abc"),
        lambda: emulator.spend(made.payment_session_id, "5.00"),
        lambda: emulator.faults.fail("NoSuchOperation", "ThrottlingException"),
    ):
        with pytest.raises(InvalidArgumentError):
            call()
    assert emulator.available(made.payment_session_id) == Decimal("1.00")


def _view() -> Any:
    from spendguard.ledger import ServerView  # noqa: PLC0415

    return ServerView(Decimal(10), Decimal(0), 0.0)


def test_redis_ledger_arguments() -> None:
    from redis import Redis  # noqa: PLC0415

    from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415

    client = Redis(host="127.0.0.1", port=1)  # never contacted: arguments are checked first
    for kwargs in ({"key_ttl": 0}, {"key_ttl": float("inf")}, {"key_ttl": "60"}, {"prefix": ""}):
        with pytest.raises(InvalidArgumentError):
            RedisLedger(client, **kwargs)  # type: ignore[arg-type]
    ledger = RedisLedger(client)
    for call in (
        lambda: ledger.reserve("k", "h", Decimal(1), _view(), "both", 60.0, 0.0),  # type: ignore[arg-type]
        lambda: ledger.reserve("k", "h", Decimal(1), _view(), "external", -1.0, 0.0),
        lambda: ledger.reserve("k", "h", Decimal(-1), _view(), "external", 60.0, 0.0),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


def test_adapter_arguments() -> None:
    from spendguard_agentcore import SpendGuardPreSignPolicy  # noqa: PLC0415

    for kwargs in ({"settlement": "later"}, {"on_blocked": "log"}, {"assets": {"usdc": 40}}):
        with pytest.raises(SpendGuardError) as info:
            SpendGuardPreSignPolicy(make(), **kwargs)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)


def test_emulator_workers_must_be_positive() -> None:
    for workers in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgumentError):
            PaymentsEmulator(workers=workers)  # type: ignore[arg-type]
    with PaymentsEmulator(workers=1) as emulator:
        made = emulator.create_session("1.00")
        assert (
            emulator.client().get_payment_session(
                paymentManagerArn=made.payment_manager_arn,
                paymentSessionId=made.payment_session_id,
                userId=made.user_id,
            )["paymentSession"]["paymentSessionId"]
            == made.payment_session_id
        )
