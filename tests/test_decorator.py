"""@guard.charges: reserve before the call, commit after, release on error; signature kept."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import BudgetExceededError, InvalidAmountError, Money, SpendGuard


def make(available: str = "1.00") -> SpendGuard:
    return SpendGuard(ARN, SID, client=ScriptedClient(Session(available=available)), clock=Clock())


def test_fixed_cost_is_charged_per_call() -> None:
    guard = make("0.25")
    calls: list[str] = []

    @guard.charges("0.10")
    def search(query: str, *, limit: int = 5) -> str:
        """Search the paid index."""
        calls.append(query)
        return f"{query}:{limit}"

    assert search("a") == "a:5"
    assert search("b", limit=1) == "b:1"
    with pytest.raises(BudgetExceededError):
        search("c")
    assert calls == ["a", "b"]
    assert guard.snapshot().effective_available == Money.of("0.05")


def test_metadata_and_signature_are_kept() -> None:
    guard = make()

    @guard.charges("0.10")
    def search(query: str, *, limit: int = 5) -> str:
        """Search the paid index."""
        return query

    assert search.__name__ == "search"
    assert search.__doc__ == "Search the paid index."
    assert list(inspect.signature(search).parameters) == ["query", "limit"]


def test_cost_callable_sees_the_arguments() -> None:
    guard = make("1.00")

    @guard.charges(lambda item, quantity: f"{quantity * 0.25:.2f}")
    def buy(item: str, quantity: int) -> str:
        return item

    buy("pen", 2)
    assert guard.snapshot().effective_available == Money.of("0.50")
    with pytest.raises(BudgetExceededError):
        buy("pen", 3)


def test_failed_call_is_released() -> None:
    guard = make("1.00")

    @guard.charges("0.40")
    def flaky() -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError):
        flaky()
    assert guard.snapshot().effective_available == Money.of("1.00")
    assert guard.snapshot().held == Money.zero()


def test_bad_cost_blocks_the_call() -> None:
    guard = make()
    ran: list[int] = []

    @guard.charges(lambda n: -n)
    def run(n: int) -> None:
        ran.append(n)

    with pytest.raises(InvalidAmountError):
        run(1)
    assert ran == []
    with pytest.raises(InvalidAmountError):
        guard.charges(0.1)  # type: ignore[arg-type]


def test_async_functions_are_guarded_and_stay_coroutines() -> None:
    guard = make("0.50")
    ran: list[int] = []

    @guard.charges("0.20")
    async def fetch(n: int) -> int:
        await asyncio.sleep(0)
        ran.append(n)
        return n

    assert inspect.iscoroutinefunction(fetch)

    async def main() -> list[int | BaseException]:
        return await asyncio.gather(*(fetch(i) for i in range(4)), return_exceptions=True)

    results = asyncio.run(main())
    assert sorted(r for r in results if isinstance(r, int)) == sorted(ran)
    assert len(ran) == 2
    assert sum(isinstance(r, BudgetExceededError) for r in results) == 2
    assert guard.snapshot().effective_available == Money.of("0.10")
