"""SpendGuard's small parts: clocks, argument checks, the ledger boundary, async hand-over."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from spendguard._checks import check_seconds, check_text
from spendguard._errors import (
    InvalidArgumentError,
    LedgerUnavailableError,
    SessionFrozenError,
    SpendGuardError,
)
from spendguard._ledger import Ledger
from spendguard._money import Money, _trusted
from spendguard.policies import Policies

if TYPE_CHECKING:
    from spendguard._hold import Hold

_log = logging.getLogger("spendguard")


def _wall_clock() -> float:
    # Looked up at each call, so that freezegun and similar tools can move it.
    return time.time()


def _monotonic() -> float:
    return time.monotonic()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _limit(rule: str, cap: Any, window: Any, currency: str) -> Money | int:
    if rule == "tool_cap":
        return _trusted(cap, currency)
    if rule == "window_count":
        return int(window.calls)
    return _trusted(window.amount, currency)


def _check_policies(policies: object, mode: object, ledger: Ledger | None, currency: str) -> None:
    if mode not in ("enforce", "shadow"):
        raise InvalidArgumentError(
            f"mode must be 'enforce' or 'shadow', got {mode!r}", argument="mode"
        )
    if policies is None:
        return
    if not isinstance(policies, Policies):
        raise InvalidArgumentError(
            f"policies must be a spendguard.policies.Policies, got {policies!r}",
            argument="policies",
        )
    if policies.currency != currency:
        raise InvalidArgumentError(
            f"policies are in {policies.currency}, the guard in {currency}", argument="policies"
        )
    if ledger is not None and not callable(getattr(ledger, "admit", None)):
        raise InvalidArgumentError(
            f"policies need a ledger that checks them with the hold (admit), got {ledger!r}",
            argument="ledger",
        )


def _tool(tool: str | None) -> str | None:
    return None if tool is None else check_text("tool", tool)


def _lease(lease: float | None) -> float | None:
    return None if lease is None else check_seconds("lease", lease)


def _check_callables(**functions: object) -> None:
    for name, fn in functions.items():
        if fn is not None and not callable(fn):
            raise InvalidArgumentError(f"{name} must be callable, got {fn!r}", argument=name)


class _LedgerBoundary:
    """Every ledger call runs inside it: a ledger knows only its key, callers want the
    session id on every error it raises."""

    __slots__ = ("_session_id",)

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, (LedgerUnavailableError, SessionFrozenError)) and exc.session_id is None:
            exc.session_id = self._session_id


class _Claim:
    """Hands a hold granted in a worker thread to its awaiting caller, or marks it orphaned."""

    __slots__ = ("_cancelled", "_hold", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._hold: Hold | None = None

    def deliver(self, hold: Hold) -> bool:
        with self._lock:
            self._hold = hold
            return not self._cancelled

    def cancel(self) -> Hold | None:
        with self._lock:
            self._cancelled = True
            return self._hold


def _release_quietly(hold: Hold) -> None:
    try:
        hold.release()
    except SpendGuardError:
        _log.warning("could not release orphaned hold %s; it will lapse as spent", hold.id)


def _receipt_time(receipt: datetime) -> float:
    if not isinstance(receipt, datetime) or receipt.tzinfo is None:
        raise InvalidArgumentError(
            "receipt_time must be a timezone-aware datetime", argument="receipt_time"
        )
    return receipt.timestamp()
