"""Ledgers: what is held for calls in flight and what was committed but not yet seen by the server.

A ledger is keyed by payment session. :class:`InMemoryLedger` serves one process; a shared
ledger (Redis) implements the same :class:`Ledger` protocol and the same rules:

* **Check and hold** are one atomic step: a hold is granted only if
  ``amount <= available - held - unreflected - external``, where ``available`` is the server's
  figure from the newest view (by server update time) the ledger has seen.
* **Commit** turns a hold into a charge. A charge that settles ``"external"`` (never seen by
  the payment service) stays deducted for the life of the session. A ``"session"`` charge
  (ProcessPayment through this session) stays deducted until a view gives evidence that the
  server has absorbed it, see :meth:`Ledger.observe`.
* **Leases**: a hold not settled within its lease lapses. A lapsed hold may have been spent, so
  it becomes an external charge of its full amount: the budget over-counts, it never forgets.

Reconciliation (evidence that the server absorbed a ``"session"`` charge): the ledger keeps a
baseline ``B`` of the server's spent total (``max - available``), starting at the first view.
For a view newer than any seen, with spent total ``S`` and update time ``U``, the pending
session charges whose evidence time is ``<= U`` are eligible, oldest first; the longest prefix
whose sum is ``<= S - B`` is dropped and ``B`` grows by that sum. The evidence time is the
ProcessPayment receipt's server time when known, else the commit time converted to the
server's clock minus the skew tolerance. Residual risk: spending by someone else through the
same session that grows ``S`` within the tolerance window of a charge which never reached the
server can let that charge drop early; charges never drop without both conditions.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, NamedTuple, Protocol

from spendguard._errors import InvalidAmountError
from spendguard._money import CONTEXT

__all__ = ["InMemoryLedger", "Ledger", "LedgerTotals", "ServerView", "Settlement"]

Settlement = Literal["session", "external"]
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ServerView:
    """What one fetched session says, in the server's clock.

    Attributes:
        available: The server's available amount.
        spent: The server's spent total (max - available), None when the max is unknown.
        updated_at: Server update time of the available amount, epoch seconds.
        read_at: The latest server time at which this reading may have been taken (the
            response's ``Date`` plus its 1 s resolution and the skew tolerance), epoch
            seconds; None when unknown. A kept view whose ``updated_at`` is after a later
            view's ``read_at`` came from a server clock that ran ahead: the later view
            replaces it.
    """

    available: Decimal
    spent: Decimal | None
    updated_at: float
    read_at: float | None = None


class LedgerTotals(NamedTuple):
    """The ledger's figures for one session.

    Attributes:
        available: The server's available amount from the newest view known.
        held: Sum of open holds.
        unreflected: Committed ``"session"`` charges the server has not been seen to absorb.
        external: Committed ``"external"`` charges and lapsed holds, never dropped.
    """

    available: Decimal
    held: Decimal
    unreflected: Decimal
    external: Decimal

    @property
    def effective(self) -> Decimal:
        """What a new charge may still use (never negative)."""
        used = CONTEXT.add(CONTEXT.add(self.held, self.unreflected), self.external)
        return max(_ZERO, CONTEXT.subtract(self.available, used))


class Ledger(Protocol):
    """Storage of holds and unreflected charges; every method is atomic per session key."""

    def reserve(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
    ) -> tuple[bool, LedgerTotals]:
        """Observe ``view``, then hold ``amount`` if it fits.

        Returns:
            Whether the hold was granted, and the totals before it.
        """
        ...  # pragma: no cover

    def commit(
        self, key: str, hold_id: str, actual: Decimal, evidence_time: float, now: float
    ) -> bool:
        """Turn a hold into a charge of ``actual`` (at most the held amount).

        ``evidence_time`` is the server time after which a view may show the charge absorbed.

        Returns:
            False if the hold was unknown (lapsed or settled already): nothing changed.
        """
        ...  # pragma: no cover

    def release(self, key: str, hold_id: str, now: float) -> bool:
        """Drop a hold without charging. Returns False if the hold was unknown."""
        ...  # pragma: no cover

    def totals(self, key: str, view: ServerView | None, now: float) -> LedgerTotals:
        """Observe ``view`` (if given), lapse expired holds, and return the totals."""
        ...  # pragma: no cover


@dataclass(slots=True)
class _Hold:
    amount: Decimal
    settlement: Settlement
    deadline: float


@dataclass(slots=True)
class _Book:
    view: ServerView
    baseline: Decimal | None
    holds: dict[str, _Hold] = field(default_factory=dict)
    held: Decimal = _ZERO
    pending: deque[tuple[Decimal, float]] = field(default_factory=deque)
    unreflected: Decimal = _ZERO
    external: Decimal = _ZERO
    next_deadline: float = float("inf")

    def observe(self, view: ServerView) -> None:
        if view is self.view:
            return
        kept = self.view
        ahead = view.read_at is not None and kept.updated_at > view.read_at
        if not ahead and view.updated_at <= kept.updated_at:
            if view.updated_at == kept.updated_at and view.available < kept.available:
                self.view = view
            return
        self.view = view
        if view.spent is None:
            return
        if self.baseline is None:
            self.baseline = view.spent
            return
        self.reconcile()

    def reconcile(self) -> None:
        view = self.view
        if view.spent is None or self.baseline is None or not self.pending:
            return
        growth = CONTEXT.subtract(view.spent, self.baseline)
        dropped = _ZERO
        while self.pending:
            amount, evidence = self.pending[0]
            total = CONTEXT.add(dropped, amount)
            if evidence > view.updated_at or total > growth:
                break
            self.pending.popleft()
            dropped = total
        if dropped:
            self.baseline = CONTEXT.add(self.baseline, dropped)
            self.unreflected = CONTEXT.subtract(self.unreflected, dropped)

    def lapse(self, now: float) -> None:
        if now < self.next_deadline:
            return
        for hold_id, hold in list(self.holds.items()):
            if hold.deadline <= now:
                del self.holds[hold_id]
                self.held = CONTEXT.subtract(self.held, hold.amount)
                self.external = CONTEXT.add(self.external, hold.amount)
        self.next_deadline = min((h.deadline for h in self.holds.values()), default=float("inf"))

    def totals(self) -> LedgerTotals:
        return LedgerTotals(self.view.available, self.held, self.unreflected, self.external)


class InMemoryLedger:
    """The default ledger: holds live in this process, guarded by one lock.

    Share one instance between guards of the same session in a process; use a shared ledger
    (``RedisLedger``) when several processes spend from one session.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[str, _Book] = {}

    def _book(self, key: str, view: ServerView | None, now: float) -> _Book:
        book = self._books.get(key)
        if book is None:
            if view is None:
                raise KeyError(key)
            book = self._books[key] = _Book(view=view, baseline=view.spent)
        elif view is not None:
            book.observe(view)
        book.lapse(now)
        return book

    def reserve(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
    ) -> tuple[bool, LedgerTotals]:
        """See :meth:`Ledger.reserve`."""
        if amount < 0 or not amount.is_finite():
            raise InvalidAmountError(f"cannot hold {amount}", value=amount)
        with self._lock:
            book = self._book(key, view, now)
            totals = book.totals()
            if hold_id in book.holds or amount > totals.effective:
                return False, totals
            deadline = now + lease_seconds
            book.holds[hold_id] = _Hold(amount, settlement, deadline)
            book.held = CONTEXT.add(book.held, amount)
            book.next_deadline = min(book.next_deadline, deadline)
            return True, totals

    def commit(
        self, key: str, hold_id: str, actual: Decimal, evidence_time: float, now: float
    ) -> bool:
        """See :meth:`Ledger.commit`."""
        with self._lock:
            book = self._books.get(key)
            if book is None:
                return False
            book.lapse(now)
            hold = book.holds.get(hold_id)
            if hold is None:
                return False
            if actual > hold.amount or actual < 0:
                raise InvalidAmountError(
                    f"cannot commit {actual}: the hold is {hold.amount}", value=actual
                )
            del book.holds[hold_id]
            book.held = CONTEXT.subtract(book.held, hold.amount)
            if hold.settlement == "external":
                book.external = CONTEXT.add(book.external, actual)
            elif actual:
                book.pending.append((actual, evidence_time))
                book.unreflected = CONTEXT.add(book.unreflected, actual)
                # The newest view may already show this payment (a refresh between paying
                # and committing): it is evidence too, not only views still to come.
                book.reconcile()
            return True

    def release(self, key: str, hold_id: str, now: float) -> bool:
        """See :meth:`Ledger.release`."""
        with self._lock:
            book = self._books.get(key)
            if book is None:
                return False
            book.lapse(now)
            hold = book.holds.pop(hold_id, None)
            if hold is None:
                return False
            book.held = CONTEXT.subtract(book.held, hold.amount)
            return True

    def totals(self, key: str, view: ServerView | None, now: float) -> LedgerTotals:
        """See :meth:`Ledger.totals`."""
        with self._lock:
            try:
                return self._book(key, view, now).totals()
            except KeyError:
                zero = _ZERO
                return LedgerTotals(zero, zero, zero, zero)
