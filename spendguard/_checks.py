"""Argument checks shared by every public constructor and function: one place, one error."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from spendguard._errors import InvalidArgumentError

if TYPE_CHECKING:
    from spendguard._hold import ReleaseOn
    from spendguard._ledger import Settlement

__all__ = ["check_release_on", "check_seconds", "check_settlement", "check_text"]


def check_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A finite number of seconds, positive (or >= 0 with ``allow_zero``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        kind = "a finite number of seconds >= 0" if allow_zero else "a positive number of seconds"
        raise InvalidArgumentError(f"{name} must be {kind}, got {value!r}", argument=name)
    return float(value)


def check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    """A non-empty string (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgumentError(
            f"{name} must be a non-empty string, got {value!r}", argument=name
        )
    return value


def check_settlement(value: object, name: str = "settlement") -> Settlement:
    """``"session"`` or ``"external"``."""
    if value not in ("session", "external"):
        raise InvalidArgumentError(
            f"{name} must be 'session' or 'external', got {value!r}", argument=name
        )
    return value


def check_release_on(value: object) -> ReleaseOn:
    """A tuple of exception types (a single type is accepted too)."""
    if value == ():
        return ()
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, tuple) or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in value
    ):
        raise InvalidArgumentError(
            f"release_on must be a tuple of exception types, got {value!r}", argument="release_on"
        )
    return value
