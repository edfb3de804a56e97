"""Spend policies beyond the session limit: per-call maximums, tool caps, windows, thresholds.

Policies are off unless configured: a guard built without ``policies=`` decides on the session
limit alone. Give a guard a :class:`Policies` and every charge must also fit:

* **per-call maximum** (``per_call_max``, guard-wide, and per tool in ``tools``), rule
  ``"per_call_max"``;
* **tool cap** (``tools={"buy_report": ToolPolicy(cap="2.00")}``): the most one tool may use
  of the session, its calls in flight included, rule ``"tool_cap"``;
* **rolling windows** (:class:`Window`): at most an amount (rule ``"window_amount"``) and/or
  a number of calls (rule ``"window_count"``) within the last minute, hour, day or any number
  of seconds, over every tool or one.

Caps and windows are checked inside the ledger in the same atomic step as the hold, so calls
running at the same time, in one process or in many sharing a Redis ledger, cannot slip
through between check and hold. A call in flight counts with its held amount; a released hold
gives its share back; a committed one counts what it really cost; a lapsed one counts in full.
Windows are measured on the guard's monotonic timer in memory, and on Redis ``TIME`` with the
Redis ledger (one clock for every process).

**Soft thresholds** (``thresholds``, default 0.8 and 0.95, active when ``on_threshold`` is
given) call ``on_threshold`` once each when a granted hold brings the session's use (its limit
less what is effectively available) or a tool's use of its cap to that fraction. The ledger
marks a threshold when it fires, so with a shared ledger it fires once across processes.

A refusal raises :class:`PolicyViolationError` (a
:class:`~spendguard.BudgetExceededError`), whose ``rule`` names the policy, and
:meth:`SpendGuard.check <spendguard.SpendGuard.check>` answers a :class:`~spendguard.Decision`
with the same ``rule``. ``SpendGuard(..., mode="shadow")`` runs the same checks without ever
blocking, and records what it would have blocked (:class:`WouldBlock`).

Policies can also be read from TOML (:meth:`Policies.from_toml`); errors name the key.
"""

from __future__ import annotations

import decimal
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from os import PathLike
from types import MappingProxyType
from typing import Any, Literal, NoReturn

from spendguard._errors import InvalidArgumentError, PolicyViolationError
from spendguard._ledger import NO_LIMITS, Limits, Mark, WindowLimit
from spendguard._money import CONTEXT, Amount, Money

__all__ = [
    "Mode",
    "Policies",
    "PolicyViolationError",
    "ThresholdEvent",
    "ToolPolicy",
    "Window",
    "WouldBlock",
]

#: ``"enforce"`` blocks what does not fit; ``"shadow"`` only records it, see :class:`WouldBlock`.
Mode = Literal["enforce", "shadow"]

_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_DEFAULT_THRESHOLDS = (Decimal("0.8"), Decimal("0.95"))


def _fail(key: str, problem: str) -> NoReturn:
    raise InvalidArgumentError(f"{key}: {problem}", argument=key)


@contextmanager
def _under(prefix: str) -> Iterator[None]:
    """Errors raised inside name their key under ``prefix`` (``policies.windows[1].amount``)."""
    try:
        yield
    except InvalidArgumentError as exc:
        if exc.argument is None:
            raise
        key = f"{prefix}.{exc.argument}" if exc.argument else prefix
        text = f"{prefix}.{exc}" if exc.argument else f"{prefix}{exc}"
        raise InvalidArgumentError(text, argument=key) from exc.__cause__


def _amount(key: str, value: object, currency: str) -> Money:
    if isinstance(value, float):
        # TOML has no decimal type: a float such as 0.1 is not the price a person wrote.
        _fail(key, f"write amounts as strings such as '0.50', not the float {value!r}")
    try:
        return Money.of(value, currency)  # type: ignore[arg-type]
    except InvalidArgumentError as exc:
        _fail(key, str(exc))


def _optional_amount(key: str, value: object, currency: str) -> Money | None:
    return None if value is None else _amount(key, value, currency)


def _name(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(key, f"must be a non-empty string, got {value!r}")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, str):
        if value not in _PERIODS:
            _fail("per", f"must be one of {', '.join(_PERIODS)} or seconds, got {value!r}")
        return _PERIODS[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e12:
        _fail("per", f"must be a positive number of seconds or a period name, got {value!r}")
    return float(value)


def _fraction(key: str, value: object) -> Decimal:
    try:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
            raise InvalidOperation
        fraction = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        _fail(key, f"must be a number between 0 and 1, got {value!r}")
    if not fraction.is_finite() or not 0 < fraction <= 1:
        _fail(key, f"must be above 0 and at most 1, got {value!r}")
    return fraction


class Window:
    """A rolling window: at most ``amount`` spent and/or ``count`` paid calls within ``per``.

    Args:
        per: The window's length: ``"second"``, ``"minute"``, ``"hour"``, ``"day"`` or a
            number of seconds.
        amount: The most spent within any such window (calls in flight included).
        count: The most paid calls within any such window (released calls do not count).
        tool: Count only this tool's calls (default: every call of the guard).
        currency: The currency of ``amount``.

    Raises:
        InvalidArgumentError: A value is invalid, or neither ``amount`` nor ``count`` is
            given; ``argument`` names the parameter.
    """

    __slots__ = ("amount", "count", "seconds", "tool")

    def __init__(
        self,
        per: str | float,
        *,
        amount: Amount | None = None,
        count: int | None = None,
        tool: str | None = None,
        currency: str = "USD",
    ) -> None:
        self.seconds = _seconds(per)
        self.amount = _optional_amount("amount", amount, currency)
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            _fail("count", f"must be a whole number of calls >= 1, got {count!r}")
        if amount is None and count is None:
            _fail("amount", "a window needs an amount, a count or both")
        self.count = count
        self.tool = None if tool is None else _name("tool", tool)

    def _limit(self) -> WindowLimit:
        amount = None if self.amount is None else self.amount.amount
        return WindowLimit(self.seconds, amount, self.count, self.tool)

    def __repr__(self) -> str:
        parts = [f"per={self.seconds:g}s"]
        parts += [f"{name}={getattr(self, name)}" for name in ("amount", "count", "tool")]
        return f"Window({', '.join(p for p in parts if not p.endswith('=None'))})"


class ToolPolicy:
    """Limits for one tool.

    Args:
        per_call_max: The most one call of the tool may cost.
        cap: The most the tool may use of the session (held and committed).
        currency: The currency of both.

    Raises:
        InvalidArgumentError: An amount is invalid; ``argument`` names it.
    """

    __slots__ = ("cap", "per_call_max")

    def __init__(
        self,
        *,
        per_call_max: Amount | None = None,
        cap: Amount | None = None,
        currency: str = "USD",
    ) -> None:
        self.per_call_max = _optional_amount("per_call_max", per_call_max, currency)
        self.cap = _optional_amount("cap", cap, currency)

    def __repr__(self) -> str:
        return f"ToolPolicy(per_call_max={self.per_call_max}, cap={self.cap})"


@dataclass(frozen=True, slots=True)
class ThresholdEvent:
    """What ``on_threshold`` receives when a soft threshold is crossed.

    Attributes:
        rule: ``"session_limit"`` (the session's limit) or ``"tool_cap"``.
        fraction: The threshold, e.g. ``Decimal("0.8")``.
        limit: The limit the fraction is of.
        tool: The tool, for ``"tool_cap"``.
    """

    rule: str
    fraction: Decimal
    limit: Money
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class WouldBlock:
    """A charge a guard in shadow mode let through but would have blocked.

    Attributes:
        rule: The rule that would have blocked it (``"session_limit"``, ``"tool_cap"``, ...).
        requested: The amount asked for.
        tool: The tool, when one was named.
        at: When, UTC.
        error: The error enforcement would have raised.
    """

    rule: str
    requested: Money
    tool: str | None
    at: datetime
    error: Exception


_Callback = Callable[[ThresholdEvent], object]


class Policies:
    """The spend policies of a guard (see the module docstring); every part is optional.

    Args:
        per_call_max: The most any one call may cost.
        tools: Per-tool limits, by tool name (the ``tool=`` of ``reserve``/``check``, the
            decorated function's name, the framework's tool name).
        windows: Rolling windows.
        thresholds: Fractions of the session's limit and of each tool cap at which
            ``on_threshold`` is called, once each.
        on_threshold: Called (in the thread that reserved) with a :class:`ThresholdEvent`;
            thresholds are off without it. An exception it raises is logged, never raised.
        currency: The currency of every amount (the guard's).

    Raises:
        InvalidArgumentError: A policy is invalid; ``argument`` names its key, e.g.
            ``windows[1].amount``.
    """

    def __init__(
        self,
        *,
        per_call_max: Amount | None = None,
        tools: Mapping[str, ToolPolicy] | None = None,
        windows: Iterable[Window] = (),
        thresholds: Iterable[Decimal | str] = _DEFAULT_THRESHOLDS,
        on_threshold: _Callback | None = None,
        currency: str = "USD",
    ) -> None:
        self.currency = currency
        self.per_call_max = _optional_amount("per_call_max", per_call_max, currency)
        if tools is not None and not isinstance(tools, Mapping):
            _fail("tools", f"must be a mapping of tool name to ToolPolicy, got {tools!r}")
        for name, tool in (tools or {}).items():
            _name("tools", name)
            if not isinstance(tool, ToolPolicy):
                _fail(f"tools.{name}", f"must be a ToolPolicy, got {tool!r}")
        self.tools: Mapping[str, ToolPolicy] = MappingProxyType(dict(tools or {}))
        self.windows: tuple[Window, ...] = tuple(windows)
        for index, window in enumerate(self.windows):
            if not isinstance(window, Window):
                _fail(f"windows[{index}]", f"must be a Window, got {window!r}")
        if isinstance(thresholds, (str, Decimal)):
            _fail("thresholds", f"must be a list of fractions, got {thresholds!r}")
        fractions = [_fraction(f"thresholds[{i}]", f) for i, f in enumerate(thresholds)]
        self.thresholds: tuple[Decimal, ...] = tuple(sorted(set(fractions)))
        if on_threshold is not None and not callable(on_threshold):
            _fail("on_threshold", f"must be callable, got {on_threshold!r}")
        self.on_threshold = on_threshold
        self._check_currencies()
        self._horizon = max((w.seconds for w in self.windows), default=0.0)
        self._cache: dict[tuple[str | None, Decimal | None], _Resolved] = {}

    def _check_currencies(self) -> None:
        amounts = [("per_call_max", self.per_call_max)]
        for name, tool in self.tools.items():
            amounts += [(f"tools.{name}.per_call_max", tool.per_call_max)]
            amounts += [(f"tools.{name}.cap", tool.cap)]
        amounts += [(f"windows[{i}].amount", w.amount) for i, w in enumerate(self.windows)]
        for key, money in amounts:
            if money is not None and money.currency != self.currency:
                _fail(key, f"is in {money.currency}, the policies in {self.currency}")

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        on_threshold: _Callback | None = None,
        currency: str = "USD",
        prefix: str = "policies",
    ) -> Policies:
        """Build policies from plain data, as read from TOML or JSON.

        Keys: ``per_call_max``, ``thresholds``, ``tools`` (a table per tool with
        ``per_call_max`` and ``cap``), ``windows`` (a list of tables with ``per``, ``amount``,
        ``count``, ``tool``). Amounts are strings (``"0.50"``) or integers.

        Args:
            data: The ``[policies]`` table.
            on_threshold: See :class:`Policies`.
            currency: See :class:`Policies`.
            prefix: The table's name, which errors put before a key.

        Returns:
            The policies.

        Raises:
            InvalidArgumentError: A key is unknown or a value invalid; the message starts with
                the key's path, e.g. ``policies.windows[1].amount: ...``.
        """
        with _under(prefix):
            table = _table("", data, {"per_call_max", "thresholds", "tools", "windows"})
            tools = _table("tools", table.get("tools", {}), None)
            windows = table.get("windows", [])
            if not isinstance(windows, list):
                _fail(
                    "windows", f"must be a list of tables ([[policies.windows]]), got {windows!r}"
                )
            thresholds = table.get("thresholds", _DEFAULT_THRESHOLDS)
            if not isinstance(thresholds, (list, tuple)):
                _fail("thresholds", f"must be a list of fractions, got {thresholds!r}")
            return cls(
                per_call_max=table.get("per_call_max"),
                tools={name: _tool(name, spec, currency) for name, spec in tools.items()},
                windows=[_window(i, spec, currency) for i, spec in enumerate(windows)],
                thresholds=thresholds,
                on_threshold=on_threshold,
                currency=currency,
            )

    @classmethod
    def from_toml(
        cls,
        path: str | PathLike[str],
        *,
        on_threshold: _Callback | None = None,
        currency: str = "USD",
    ) -> Policies:
        """Read policies from the ``[policies]`` table of a TOML file.

        Args:
            path: The file.
            on_threshold: See :class:`Policies` (a callable cannot be written in TOML).
            currency: See :class:`Policies`.

        Returns:
            The policies.

        Raises:
            InvalidArgumentError: The file cannot be read or parsed, has no ``[policies]``
                table, or a policy is invalid; the message names the key.
        """
        try:
            with open(path, "rb") as file:
                data = _toml().load(file)
        except OSError as exc:
            _fail(str(path), f"cannot read it ({exc.strerror or exc})")
        except ValueError as exc:  # tomllib.TOMLDecodeError
            _fail(str(path), f"is not valid TOML ({exc})")
        if "policies" not in data:
            _fail("policies", f"{path} has no [policies] table")
        return cls.from_mapping(data["policies"], on_threshold=on_threshold, currency=currency)

    # -- what the guard asks -------------------------------------------------------------

    def _per_call_max(self, tool: str | None) -> tuple[Money | None, str | None]:
        """The tightest per-call maximum for ``tool``, and the tool it is specific to."""
        spec = self.tools.get(tool) if tool is not None else None
        specific = spec.per_call_max if spec is not None else None
        if specific is not None and (self.per_call_max is None or specific <= self.per_call_max):
            return specific, tool
        return self.per_call_max, None

    def _resolve(self, tool: str | None, max_spend: Decimal | None) -> _Resolved:
        """The ledger's limits for a charge of ``tool`` in a session of ``max_spend``."""
        key = (tool, max_spend)
        resolved = self._cache.get(key)
        if resolved is None:
            if len(self._cache) > 1024:  # tool names are finite; sessions' limits too
                self._cache.clear()
            resolved = self._cache[key] = self._build(tool, max_spend)
        return resolved

    def _build(self, tool: str | None, max_spend: Decimal | None) -> _Resolved:
        spec = self.tools.get(tool) if tool is not None else None
        cap = spec.cap if spec is not None else None
        windows = tuple(w._limit() for w in self.windows if w.tool is None or w.tool == tool)
        events: dict[str, ThresholdEvent] = {}
        marks: list[Mark] = []
        if self.on_threshold is not None:
            for fraction in self.thresholds:
                if max_spend is not None and max_spend > 0:
                    name = f"session_limit:{fraction}"
                    left = CONTEXT.subtract(max_spend, _part(max_spend, fraction, ROUND_CEILING))
                    marks.append(Mark(name, "session", left))
                    limit = Money(max_spend, self.currency)
                    events[name] = ThresholdEvent("session_limit", fraction, limit)
                if cap is not None and cap.amount > 0 and tool is not None:
                    name = f"tool_cap:{tool}:{fraction}"
                    marks.append(Mark(name, "tool", _part(cap.amount, fraction, ROUND_CEILING)))
                    events[name] = ThresholdEvent("tool_cap", fraction, cap, tool)
        limits = Limits(
            tool, None if cap is None else cap.amount, windows, tuple(marks), self._horizon
        )
        if cap is None and not marks and not self._horizon:
            limits = NO_LIMITS._replace(tool=tool)  # nothing to check but the session
        return _Resolved(limits, events)

    def __repr__(self) -> str:
        return (
            f"Policies(per_call_max={self.per_call_max}, tools={dict(self.tools)}, "
            f"windows={list(self.windows)}, thresholds={[str(t) for t in self.thresholds]})"
        )


@dataclass(frozen=True, slots=True)
class _Resolved:
    limits: Limits
    events: Mapping[str, ThresholdEvent]


_WIDE = decimal.Context(prec=80)
_UNIT = Decimal("1e-18")


def _part(amount: Decimal, fraction: Decimal, rounding: str) -> Decimal:
    # A threshold needs no more than the finest amount (18 places) a ledger stores; rounded
    # so that it fires at the fraction or just after, never before.
    return _WIDE.multiply(amount, fraction).quantize(_UNIT, rounding=rounding, context=_WIDE)


def _table(key: str, value: object, allowed: set[str] | None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(key, f"must be a table, got {value!r}")
    for name in value:
        if not isinstance(name, str):
            _fail(key, f"keys must be strings, got {name!r}")
        if allowed is not None and name not in allowed:
            _fail(
                f"{key}.{name}" if key else name,
                f"unknown key (known: {', '.join(sorted(allowed))})",
            )
    return value


def _tool(name: str, spec: object, currency: str) -> ToolPolicy:
    with _under(f"tools.{name}"):
        table = _table("", spec, {"per_call_max", "cap"})
        return ToolPolicy(
            per_call_max=table.get("per_call_max"), cap=table.get("cap"), currency=currency
        )


def _window(index: int, spec: object, currency: str) -> Window:
    with _under(f"windows[{index}]"):
        table = _table("", spec, {"per", "amount", "count", "tool"})
        if "per" not in table:
            _fail("per", "missing: say 'second', 'minute', 'hour', 'day' or a number of seconds")
        return Window(
            table["per"],
            amount=table.get("amount"),
            count=table.get("count"),
            tool=table.get("tool"),
            currency=currency,
        )


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        return importlib.import_module("tomllib")
    try:
        return importlib.import_module("tomli")
    except ImportError:  # pragma: no cover - tomli is a dependency on 3.10
        _fail("policies", "reading TOML on Python 3.10 needs `pip install tomli`")
