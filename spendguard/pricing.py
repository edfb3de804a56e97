"""Tool-call pricing shared by every framework adapter.

A :class:`Pricing` maps tool names to price rules; :func:`admit` prices a tool call and holds
its cost in a guard, turning every failure into a :class:`Blocked` with a message for the
model. Adapters translate their framework's events into :func:`admit` (or :func:`aadmit`) and
:func:`settle` (or the hold's ``commit()`` / ``release()``), and nothing else.

Arguments come from a model and may be hostile: a rule can only yield a valid, non-negative,
finite amount (anything else blocks the call), and arguments never choose the session, user or
hold, which belong to the guard.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from spendguard._errors import (
    InvalidAmountError,
    InvalidArgumentError,
    PricingError,
    SpendGuardError,
)
from spendguard._money import Amount, Money

if TYPE_CHECKING:
    from spendguard._guard import SpendGuard
    from spendguard._hold import Hold, ReleaseOn
    from spendguard._ledger import Settlement

__all__ = [
    "Blocked",
    "FromArgument",
    "PriceRule",
    "Pricing",
    "aadmit",
    "admit",
    "from_argument",
    "settle",
]

_MAX_JSON_CHARS = 1_000_000
_log = logging.getLogger("spendguard")


@dataclass(frozen=True, slots=True)
class FromArgument:
    """Price a call by one of its arguments, see :func:`from_argument`."""

    name: str


def from_argument(name: str) -> FromArgument:
    """A rule that takes the price from the argument ``name``.

    JSON numbers become amounts through their shortest decimal text (``0.1`` is ``0.1``), never
    through the binary expansion of a float.

    Args:
        name: The argument holding the amount.

    Returns:
        The rule.
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"from_argument needs a non-empty argument name, got {name!r}", argument="name"
        )
    return FromArgument(name)


PriceRule = Amount | Callable[[Mapping[str, object]], Amount] | FromArgument


def _amount(value: object, currency: str) -> Money:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidAmountError(f"amount must be finite, got {value!r}", value=value)
        return Money.from_float(value, currency)
    if isinstance(value, (Money, str, int, Decimal)) and not isinstance(value, bool):
        return Money.of(value, currency)
    raise InvalidAmountError(f"a price must be an amount, got {type(value).__name__}", value=value)


def _parse_arguments(raw: str, tool_name: str) -> Mapping[str, object]:
    if len(raw) > _MAX_JSON_CHARS:
        raise PricingError(
            f"arguments of {tool_name!r} are too large to price", tool_name=tool_name
        )
    try:
        parsed = json.loads(raw or "{}", parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError, ArithmeticError) as exc:
        # ArithmeticError: a number such as 1e99999999999999999999 that Decimal refuses.
        raise PricingError(
            f"arguments of {tool_name!r} are not valid JSON: {exc}", tool_name=tool_name
        ) from exc
    if not isinstance(parsed, dict):
        raise PricingError(f"arguments of {tool_name!r} must be a JSON object", tool_name=tool_name)
    return parsed


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


class Pricing:
    """Prices of tool calls, by tool name.

    Args:
        rules: Per tool name: a fixed amount, a callable of the call's arguments returning an
            amount, or :func:`from_argument`.
        strict: Block tools without a rule (default: they are free).
        currency: Currency of every price.

    Raises:
        InvalidAmountError: A fixed price is not a valid amount.
    """

    def __init__(
        self,
        rules: Mapping[str, PriceRule] | None = None,
        *,
        strict: bool = False,
        currency: str = "USD",
    ) -> None:
        if rules is not None and not isinstance(rules, Mapping):
            raise InvalidArgumentError(
                f"rules must be a mapping of tool name to price rule, got {type(rules)!r}",
                argument="rules",
            )
        if not isinstance(strict, bool):
            raise InvalidArgumentError(f"strict must be a bool, got {strict!r}", argument="strict")
        Money.zero(currency)  # validates the code
        self._rules: dict[str, PriceRule] = {}
        for name, rule in (rules or {}).items():
            if not isinstance(name, str) or not name:
                raise InvalidArgumentError(
                    f"tool names must be non-empty strings, got {name!r}", argument="rules"
                )
            is_rule = isinstance(rule, FromArgument) or callable(rule)
            self._rules[name] = rule if is_rule else _amount(rule, currency)
        self.strict = strict
        self.currency = currency

    def __contains__(self, tool_name: object) -> bool:
        return tool_name in self._rules

    def price(self, tool_name: str, arguments: Mapping[str, object] | str) -> Money | None:
        """Price one call.

        Args:
            tool_name: The tool called.
            arguments: Its arguments, as a mapping or as a raw JSON object string.

        Returns:
            The price, or None for a free call (no rule, not strict).

        Raises:
            PricingError: The rule failed or gave an invalid amount, or the tool is unknown in
                strict mode.
        """
        rule = self._rules.get(tool_name)
        if rule is None:
            if self.strict:
                raise PricingError(
                    f"tool {tool_name!r} has no price and pricing is strict", tool_name=tool_name
                )
            return None
        if isinstance(rule, Money):
            return rule
        args = _parse_arguments(arguments, tool_name) if isinstance(arguments, str) else arguments
        try:
            if isinstance(rule, FromArgument):
                if rule.name not in args:
                    raise InvalidAmountError(f"argument {rule.name!r} is missing")
                return _amount(args[rule.name], self.currency)
            assert callable(rule)
            return _amount(rule(args), self.currency)
        except SpendGuardError as exc:
            raise PricingError(f"cannot price {tool_name!r}: {exc}", tool_name=tool_name) from exc
        except Exception as exc:
            raise PricingError(
                f"price rule of {tool_name!r} failed: {type(exc).__name__}: {exc}",
                tool_name=tool_name,
            ) from exc


@dataclass(frozen=True, slots=True)
class Blocked:
    """A tool call refused before it ran.

    Attributes:
        tool_name: The tool refused.
        error: Why, as a spendguard error.
        message: What to tell the model.
    """

    tool_name: str
    error: SpendGuardError
    message: str


def _blocked(tool_name: str, error: SpendGuardError) -> Blocked:
    # The operator's record of the full error (it may name endpoints and sessions) is the
    # guard's "blocked" decision record; the model sees only the model message.
    return Blocked(tool_name, error, error.model_message)


def _unguarded(tool_name: str, error: SpendGuardError) -> Blocked:
    """A call blocked before any guard was found (no guard to record it): logged here."""
    logging.getLogger("spendguard.decisions").info(
        "blocked tool=%s rule=%s - %s",
        tool_name,
        error.rule,
        error,
        extra={
            "spendguard_event": "blocked",
            "spendguard_tool": tool_name,
            "spendguard_error": type(error).__name__,
            "spendguard_rule": error.rule,
            "spendguard_session_id": error.session_id,
        },
    )
    return _blocked(tool_name, error)


def _unpriced(guard: SpendGuard, tool_name: str, error: SpendGuardError) -> Blocked:
    guard._record_blocked(tool_name, error)
    return _blocked(tool_name, error)


def _charge(
    pricing: Pricing, tool_name: str, arguments: Mapping[str, object] | str
) -> Money | None:
    price = pricing.price(tool_name, arguments)
    return None if price is None or price.amount == 0 else price


def admit(
    guard: SpendGuard,
    pricing: Pricing,
    tool_name: str,
    arguments: Mapping[str, object] | str,
    *,
    settlement: Settlement | None = None,
    release_on: ReleaseOn = (),
) -> Hold | Blocked | None:
    """Price a tool call and hold its cost.

    Args:
        guard: The guard of the session paying.
        pricing: The price rules.
        tool_name: The tool about to run.
        arguments: Its arguments (mapping or raw JSON string).
        settlement: Settlement of the charge (default: the guard's).
        release_on: Exception types that mean the tool spent nothing, see :func:`settle`.

    Returns:
        A :class:`Hold` to commit or release when the call ends, a :class:`Blocked` when the
        call must not run (any spendguard error: over budget, expired, unpriceable, session
        unreadable), or None for a free call.
    """
    try:
        price = _charge(pricing, tool_name, arguments)
    except SpendGuardError as exc:
        return _unpriced(guard, tool_name, exc)
    if price is None:
        guard._record_allowed(tool_name)
        return None
    try:  # the guard records its own refusals
        return guard.reserve(price, settlement=settlement, release_on=release_on, tool=tool_name)
    except SpendGuardError as exc:
        return _blocked(tool_name, exc)


async def aadmit(
    guard: SpendGuard,
    pricing: Pricing,
    tool_name: str,
    arguments: Mapping[str, object] | str,
    *,
    settlement: Settlement | None = None,
    release_on: ReleaseOn = (),
) -> Hold | Blocked | None:
    """Async :func:`admit`; the session is read in a worker thread when stale."""
    try:
        price = _charge(pricing, tool_name, arguments)
    except SpendGuardError as exc:
        return _unpriced(guard, tool_name, exc)
    if price is None:
        guard._record_allowed(tool_name)
        return None
    try:  # the guard records its own refusals
        return await guard.areserve(
            price, settlement=settlement, release_on=release_on, tool=tool_name
        )
    except SpendGuardError as exc:
        return _blocked(tool_name, exc)


def settle(hold: Hold, *, ran: bool, error: BaseException | None = None) -> None:
    """Settle the hold of a tool call once the framework says how it ended.

    A call that did not run is released. A call that ran is committed, also when it raised
    (``error``): the paid action may have happened before the error. Only an error that says
    nothing was spent releases it (:meth:`Hold.spent_nothing`: a
    :class:`~spendguard.NothingSpentError`, or a type of the adapter's ``release_on``).

    Meant for adapters' "after the call" events, where raising would break the framework's
    run: a failure to settle (e.g. a shared ledger that is down) is logged, not raised. The
    hold then lapses into a charge of its full amount, so the budget stays on the safe side.

    Args:
        hold: The hold :func:`admit` returned.
        ran: Whether the call ran (and so may have spent).
        error: The exception the call raised, if any.
    """
    try:
        if ran:
            hold.finish(error)
        else:
            hold.release()
    except SpendGuardError:
        _log.warning("could not settle hold %s; it will lapse as spent", hold.id, exc_info=True)
