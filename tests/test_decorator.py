"""@guard.charges: reserve before the call, commit after, release on error; signature kept."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import BudgetExceededError, InvalidAmountError, Money, NothingSpentError, SpendGuard


def make(available: str = "1.00") -> SpendGuard:
    return SpendGuard(
        ARN, SID, client=ScriptedClient(Session(available=available)), **Clock().kwargs
    )


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


def test_a_call_that_raises_after_paying_keeps_its_charge() -> None:
    # A paid API that takes the money and then times out: the guard cannot tell, so the
    # charge stays. Three such calls of 0.60 cannot run against a 1.00 budget.
    guard = make("1.00")
    ran: list[int] = []

    @guard.charges("0.60")
    def pay_then_time_out() -> None:
        ran.append(1)
        raise TimeoutError("upstream timed out after charging")

    with pytest.raises(TimeoutError):
        pay_then_time_out()
    for _ in range(2):
        with pytest.raises(BudgetExceededError):
            pay_then_time_out()
    assert ran == [1]
    assert guard.snapshot().effective_available == Money.of("0.40")
    assert guard.snapshot().held == Money.zero()


def test_nothing_spent_error_releases_the_charge() -> None:
    guard = make("1.00")

    @guard.charges("0.40")
    def refused_before_paying() -> None:
        raise NothingSpentError("the provider refused the request before charging")

    with pytest.raises(NothingSpentError):
        refused_before_paying()
    assert guard.snapshot().effective_available == Money.of("1.00")


def test_release_on_names_the_exceptions_that_spend_nothing() -> None:
    guard = make("1.00")

    @guard.charges("0.40", release_on=(ConnectionRefusedError,))
    def refused(kind: type[Exception]) -> None:
        raise kind("no")

    with pytest.raises(ConnectionRefusedError):
        refused(ConnectionRefusedError)
    assert guard.snapshot().effective_available == Money.of("1.00")
    with pytest.raises(TimeoutError):
        refused(TimeoutError)
    assert guard.snapshot().effective_available == Money.of("0.60")


def test_async_call_that_raises_keeps_its_charge_unless_declared() -> None:
    guard = make("1.00")

    @guard.charges("0.30", release_on=(KeyError,))
    async def call(error: Exception) -> None:
        raise error

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await call(TimeoutError())
        with pytest.raises(KeyError):
            await call(KeyError("x"))
        with pytest.raises(NothingSpentError):
            await call(NothingSpentError("declined"))

    asyncio.run(main())
    assert guard.snapshot().effective_available == Money.of("0.70")


def test_release_on_must_be_exception_types() -> None:
    guard = make("1.00")
    with pytest.raises(ValueError, match="release_on"):
        guard.charges("0.10", release_on=("TimeoutError",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="release_on"):
        guard.reserve("0.10", release_on=(int,))  # type: ignore[arg-type]
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
