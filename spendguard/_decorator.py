"""``@guard.charges(cost)``: sugar over reserve, commit and release."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from spendguard._money import Amount, Money

if TYPE_CHECKING:
    from spendguard._guard import SpendGuard
    from spendguard._hold import ReleaseOn
    from spendguard._ledger import Settlement

P = ParamSpec("P")
R = TypeVar("R")


def _pricer(cost: Amount | Callable[..., Amount], currency: str) -> Callable[..., Money]:
    if callable(cost):

        def price(*args: Any, **kwargs: Any) -> Money:
            return Money.of(cost(*args, **kwargs), currency)

        return price
    fixed = Money.of(cost, currency)  # a bad fixed cost fails at decoration time
    return lambda *args, **kwargs: fixed


def charges(
    guard: SpendGuard,
    cost: Amount | Callable[..., Amount],
    settlement: Settlement | None,
    release_on: ReleaseOn = (),
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Build the decorator behind :meth:`SpendGuard.charges`."""
    price = _pricer(cost, guard.currency)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        tool = getattr(func, "__name__", None)
        if inspect.iscoroutinefunction(func):
            afunc: Callable[P, Coroutine[Any, Any, Any]] = func

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with guard.areserve(
                    price(*args, **kwargs),
                    settlement=settlement,
                    release_on=release_on,
                    tool=tool,
                ):
                    return await afunc(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with guard.reserve(
                price(*args, **kwargs), settlement=settlement, release_on=release_on, tool=tool
            ):
                return func(*args, **kwargs)

        return wrapper

    return decorate
