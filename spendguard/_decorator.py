"""``@guard.charges(cost)``: sugar over reserve, commit and release."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from spendguard._money import Amount, Money

if TYPE_CHECKING:
    from spendguard._guard import SpendGuard
    from spendguard._hold import Hold, ReleaseOn, Reservation
    from spendguard._ledger import Settlement
    from spendguard.approval import Approvals

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
    approvals: Approvals | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Build the decorator behind :meth:`SpendGuard.charges`."""
    price = _pricer(cost, guard.currency)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        tool = getattr(func, "__name__", None)
        hold, ahold = _holders(guard, func, tool, settlement, release_on, approvals)
        if inspect.iscoroutinefunction(func):
            afunc: Callable[P, Coroutine[Any, Any, Any]] = func

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with await ahold(price(*args, **kwargs), args, kwargs):
                    return await afunc(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with hold(price(*args, **kwargs), args, kwargs):
                return func(*args, **kwargs)

        return wrapper

    return decorate


def _holders(
    guard: SpendGuard,
    func: Callable[..., Any],
    tool: str | None,
    settlement: Settlement | None,
    release_on: ReleaseOn,
    approvals: Approvals | None,
) -> tuple[Callable[..., Hold], Callable[..., Reservation | Coroutine[Any, Any, Hold]]]:
    """How a call of ``func`` is held: by the guard, or through ``approvals``."""
    options: dict[str, Any] = {"settlement": settlement, "release_on": release_on, "tool": tool}
    if approvals is None:
        return (
            lambda money, args, kwargs: guard.reserve(money, **options),
            lambda money, args, kwargs: guard.areserve(money, **options),
        )
    signature = inspect.signature(func)

    def arguments(args: Any, kwargs: Any) -> dict[str, object]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    return (
        lambda money, args, kwargs: approvals.reserve(
            guard, money, arguments=arguments(args, kwargs), **options
        ),
        lambda money, args, kwargs: approvals.areserve(
            guard, money, arguments=arguments(args, kwargs), **options
        ),
    )
