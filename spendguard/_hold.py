"""Holds: money set aside for one call in flight."""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Generator
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from spendguard._errors import HoldStateError, NothingSpentError
from spendguard._money import Amount, Money

if TYPE_CHECKING:
    from spendguard._guard import SpendGuard
    from spendguard._ledger import Settlement

__all__ = ["Hold", "HoldState", "ReleaseOn", "Reservation"]

HoldState = Literal["held", "committed", "released"]
#: Exception types that mean a failed call spent nothing, see :meth:`Hold.finish`.
ReleaseOn = tuple[type[BaseException], ...]


class Hold:
    """Money held for one call in flight, returned by :meth:`SpendGuard.reserve`.

    Use it as a context manager (``with`` or ``async with``): it commits the held amount when
    the block ends, also when it raises (the paid action may have happened before the error),
    unless the exception says nothing was spent (:meth:`finish`). Or settle it explicitly with
    :meth:`commit` or :meth:`release`; both are idempotent and thread-safe.

    Attributes:
        id: Unique id of the hold (per process token + counter).
        amount: The amount held.
        settlement: ``"session"`` or ``"external"``, see :class:`SpendGuard`.
        release_on: Exception types that mean the call spent nothing.
        tool: The tool (or action) the hold is for, when one was named.
        call_key: The tool call, as the tool gate that admitted it keys it, if one did.
    """

    __slots__ = (
        "_evidence",
        "_guard",
        "_lock",
        "_recorded",
        "_state",
        "amount",
        "call_key",
        "id",
        "release_on",
        "settlement",
        "tool",
    )

    def __init__(
        self,
        guard: SpendGuard,
        hold_id: str,
        amount: Money,
        settlement: Settlement,
        evidence: float,
        release_on: ReleaseOn = (),
        tool: str | None = None,
        call_key: str | None = None,
        *,
        recorded: bool = True,
    ) -> None:
        self._guard = guard
        # False for a call a guard in shadow mode let through: no ledger knows of it.
        self._recorded = recorded
        self._lock = threading.Lock()
        self._state: HoldState = "held"
        self._evidence = evidence
        self.id = hold_id
        self.amount = amount
        self.settlement = settlement
        self.release_on = release_on
        self.tool = tool
        self.call_key = call_key

    @property
    def state(self) -> HoldState:
        """``"held"``, ``"committed"`` or ``"released"``."""
        return self._state

    def commit(self, actual: Amount | None = None, *, receipt_time: datetime | None = None) -> None:
        """Charge the hold: ``actual`` (default the held amount), never more than held.

        Args:
            actual: What the call really cost, at most :attr:`amount`.
            receipt_time: For ``"session"`` charges, the ProcessPayment response's
                ``updatedAt``: the server time after which the session shows the charge.

        Raises:
            InvalidAmountError: ``actual`` is not a valid amount.
            HoldStateError: ``actual`` exceeds the hold, or the hold was released.
        """
        charge = self.amount if actual is None else Money.of(actual, self.amount.currency)
        if charge > self.amount:
            raise HoldStateError(
                f"cannot commit {charge}: only {self.amount} was held",
                session_id=self._guard.payment_session_id,
            )
        with self._lock:
            if self._state == "committed":
                return
            if self._state == "released":
                raise HoldStateError(
                    "cannot commit a released hold", session_id=self._guard.payment_session_id
                )
            self._guard._settle(self, charge, receipt_time)
            self._state = "committed"

    def release(self) -> None:
        """Give the held money back; a no-op once committed or released."""
        with self._lock:
            if self._state != "held":
                return
            self._guard._settle(self, None, None)
            self._state = "released"

    async def acommit(
        self, actual: Amount | None = None, *, receipt_time: datetime | None = None
    ) -> None:
        """Async :meth:`commit`: a shared ledger's round trip runs in a worker thread."""
        await self._guard._offload(
            functools.partial(self.commit, actual, receipt_time=receipt_time)
        )

    async def arelease(self) -> None:
        """Async :meth:`release`: a shared ledger's round trip runs in a worker thread."""
        await self._guard._offload(self.release)

    def spent_nothing(self, error: BaseException | None) -> bool:
        """Whether ``error``, raised by the guarded call, says that nothing was spent.

        True only for a :class:`~spendguard.NothingSpentError` or an instance of one of
        :attr:`release_on`; any other exception may have come after the money moved.
        """
        return isinstance(error, (NothingSpentError, *self.release_on))

    def finish(self, error: BaseException | None = None) -> None:
        """Settle the hold of a call that ran and ended, with ``error`` if it raised.

        Commits the held amount, unless :meth:`spent_nothing` says the error means nothing
        was spent, in which case the hold is released. A no-op once settled.

        Args:
            error: The exception the call raised, or None when it returned.
        """
        if self._state != "held":
            return
        if self.spent_nothing(error):
            self.release()
        else:
            self.commit()

    async def afinish(self, error: BaseException | None = None) -> None:
        """Async :meth:`finish`: a shared ledger's round trip runs in a worker thread."""
        if self._state == "held":
            await self._guard._offload(self.finish, error)

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    async def __aenter__(self) -> Hold:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.afinish(exc)

    def __repr__(self) -> str:
        return f"Hold(id={self.id!r}, amount={self.amount}, state={self._state!r})"


class Reservation(Awaitable[Hold]):
    """What :meth:`SpendGuard.areserve` returns: awaitable, and an async context manager."""

    __slots__ = ("_coro", "_hold")

    def __init__(self, coro: Awaitable[Hold]) -> None:
        self._coro = coro
        self._hold: Hold | None = None

    def __await__(self) -> Generator[Any, None, Hold]:
        return self._coro.__await__()

    async def __aenter__(self) -> Hold:
        self._hold = await self._coro
        return self._hold

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._hold is not None:
            await self._hold.__aexit__(exc_type, exc, tb)
