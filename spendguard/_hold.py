"""Holds: money set aside for one call in flight."""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Generator
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from spendguard._errors import HoldStateError
from spendguard._money import Amount, Money

if TYPE_CHECKING:
    from spendguard._guard import SpendGuard
    from spendguard._ledger import Settlement

__all__ = ["Hold", "HoldState", "Reservation"]

HoldState = Literal["held", "committed", "released"]


class Hold:
    """Money held for one call in flight, returned by :meth:`SpendGuard.reserve`.

    Use it as a context manager (``with`` or ``async with``): it commits the held amount when
    the block succeeds and releases it when the block raises. Or settle it explicitly with
    :meth:`commit` or :meth:`release`; both are idempotent and thread-safe.

    Attributes:
        id: Unique id of the hold (per process token + counter).
        amount: The amount held.
        settlement: ``"session"`` or ``"external"``, see :class:`SpendGuard`.
    """

    __slots__ = ("_guard", "_lock", "_state", "amount", "id", "settlement")

    def __init__(
        self, guard: SpendGuard, hold_id: str, amount: Money, settlement: Settlement
    ) -> None:
        self._guard = guard
        self._lock = threading.Lock()
        self._state: HoldState = "held"
        self.id = hold_id
        self.amount = amount
        self.settlement = settlement

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

    def _exit(self, failed: bool) -> None:
        if failed:
            self.release()
        elif self._state == "held":
            self.commit()

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc_type is not None)

    async def __aenter__(self) -> Hold:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            await self.arelease()
        elif self._state == "held":
            await self.acommit()

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
