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

**Policies** (:mod:`spendguard.policies`) are checked in the same atomic step as the hold, by
:meth:`InMemoryLedger.admit` (and ``RedisLedger.admit``): a per-tool cap counts the tool's
open holds and commits; a rolling window counts every hold granted within its last
``seconds`` (its amount while held, its actual once committed, nothing once released, the full
amount once lapsed). Soft thresholds are marked in the book when crossed, so each fires once
for every process sharing the ledger.

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

__all__ = [
    "NO_LIMITS",
    "Admission",
    "InMemoryLedger",
    "Ledger",
    "LedgerTotals",
    "Limits",
    "Mark",
    "PolicyLedger",
    "ServerView",
    "Settlement",
    "WindowLimit",
]

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


class WindowLimit(NamedTuple):
    """One rolling window a charge must fit in: at most ``amount`` and ``calls`` calls within
    the last ``seconds`` (either may be None), over every tool or only ``tool``."""

    seconds: float
    amount: Decimal | None
    calls: int | None
    tool: str | None


class Mark(NamedTuple):
    """A soft threshold: ``name`` fires once when a granted hold brings the session's
    effective availability down to ``at`` or below (``kind="session"``), or the call's tool's
    use up to ``at`` or above (``kind="tool"``)."""

    name: str
    kind: Literal["session", "tool"]
    at: Decimal


class Limits(NamedTuple):
    """What the policies ask of one charge, resolved for its tool.

    Attributes:
        tool: The charge's tool (its use is counted per tool), or None.
        cap: The most the tool may use in the session (holds and commits), or None.
        windows: The rolling windows the charge must fit in.
        marks: The soft thresholds to fire when crossed.
        horizon: The longest window of the policies, in seconds (0: none); calls are kept
            that long.
    """

    tool: str | None
    cap: Decimal | None
    windows: tuple[WindowLimit, ...]
    marks: tuple[Mark, ...]
    horizon: float


#: No policy at all: :meth:`InMemoryLedger.admit` then decides as ``reserve`` does.
NO_LIMITS = Limits(None, None, (), (), 0.0)


class Admission(NamedTuple):
    """The answer of :meth:`PolicyLedger.admit`.

    Attributes:
        granted: Whether the hold was granted (never, for a probe).
        totals: The totals before the hold.
        rule: The rule that refused it (``"session_limit"``, ``"tool_cap"``,
            ``"window_amount"``, ``"window_count"``), None when it fits.
        room: What is left under that rule (calls left, for ``"window_count"``); the
            effective availability when it fits.
        window: The index in ``limits.windows`` of the window that refused it, else None.
        fired: The names of the marks this hold crossed first.
    """

    granted: bool
    totals: LedgerTotals
    rule: str | None
    room: Decimal
    window: int | None
    fired: tuple[str, ...]


class PolicyLedger(Ledger, Protocol):
    """A ledger that also checks policies atomically with the hold."""

    def admit(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
        limits: Limits,
        *,
        probe: bool = False,
    ) -> Admission:
        """Observe ``view``, then hold ``amount`` if it fits the session and ``limits``.

        With ``probe``, decide the same way but hold nothing and fire no mark.
        """
        ...  # pragma: no cover


@dataclass(slots=True)
class _Hold:
    amount: Decimal
    settlement: Settlement
    deadline: float
    tool: str | None = None


@dataclass(slots=True)
class _Call:
    """A granted call, kept for the rolling windows."""

    at: float
    tool: str | None
    amount: Decimal


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
    tools: dict[str, Decimal] = field(default_factory=dict)
    calls: dict[str, _Call] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)
    horizon: float = 0.0

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

    def judge(
        self, amount: Decimal, room: Decimal, limits: Limits, now: float
    ) -> tuple[str | None, Decimal, int | None]:
        if amount > room:
            return "session_limit", room, None
        if limits.cap is not None and limits.tool is not None:
            left = CONTEXT.subtract(limits.cap, self.tools.get(limits.tool, _ZERO))
            if amount > left:
                return "tool_cap", max(_ZERO, left), None
        for index, window in enumerate(limits.windows):
            spent, count = self.window(window, now)
            if window.amount is not None:
                left = CONTEXT.subtract(window.amount, spent)
                if amount > left:
                    return "window_amount", max(_ZERO, left), index
            if window.calls is not None and count >= window.calls:
                return "window_count", _ZERO, index
        return None, room, None

    def window(self, window: WindowLimit, now: float) -> tuple[Decimal, int]:
        start, spent, count = now - window.seconds, _ZERO, 0
        for call in self.calls.values():
            if call.at > start and (window.tool is None or call.tool == window.tool):
                spent = CONTEXT.add(spent, call.amount)
                count += 1
        return spent, count

    def forget(self, now: float, horizon: float) -> None:
        # Calls are kept in the order granted; the oldest leave once past every window.
        start = now - horizon
        for hold_id, call in list(self.calls.items()):
            if call.at > start:
                break
            del self.calls[hold_id]

    def fire(self, limits: Limits) -> tuple[str, ...]:
        fired: list[str] = []
        for mark in limits.marks:
            if mark.name in self.fired:
                continue
            if mark.kind == "session":
                crossed = self.totals().effective <= mark.at
            else:
                crossed = self.tools.get(limits.tool or "", _ZERO) >= mark.at
            if crossed:
                self.fired.add(mark.name)
                fired.append(mark.name)
        return tuple(fired)

    def use(self, hold_id: str, hold: _Hold, actual: Decimal | None) -> None:
        """A hold settled: committed for ``actual``, or released (None), which gives its
        share of the tool's cap and of the windows back."""
        if hold.tool is not None:
            used = CONTEXT.subtract(self.tools.get(hold.tool, _ZERO), hold.amount)
            self.tools[hold.tool] = CONTEXT.add(used, actual or _ZERO)
        if actual is None:
            self.calls.pop(hold_id, None)
        elif hold_id in self.calls:
            self.calls[hold_id].amount = actual


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
        admission = self.admit(
            key, hold_id, amount, view, settlement, lease_seconds, now, NO_LIMITS
        )
        return admission.granted, admission.totals

    def admit(
        self,
        key: str,
        hold_id: str,
        amount: Decimal,
        view: ServerView,
        settlement: Settlement,
        lease_seconds: float,
        now: float,
        limits: Limits,
        *,
        probe: bool = False,
    ) -> Admission:
        """See :meth:`PolicyLedger.admit`; windows are measured on ``now``."""
        if amount < 0 or not amount.is_finite():
            raise InvalidAmountError(f"cannot hold {amount}", value=amount)
        with self._lock:
            book = self._book(key, view, now)
            if limits.horizon:
                # Guards sharing the book may have different windows: keep the longest.
                book.horizon = max(book.horizon, limits.horizon)
                book.forget(now, book.horizon)
            totals = book.totals()
            rule, room, window = book.judge(amount, totals.effective, limits, now)
            if rule is None and hold_id in book.holds:
                rule = "hold_exists"
            if probe or rule is not None:
                return Admission(False, totals, rule, room, window, ())
            deadline = now + lease_seconds
            book.holds[hold_id] = _Hold(amount, settlement, deadline, limits.tool)
            book.held = CONTEXT.add(book.held, amount)
            book.next_deadline = min(book.next_deadline, deadline)
            if limits.tool is not None:
                book.tools[limits.tool] = CONTEXT.add(book.tools.get(limits.tool, _ZERO), amount)
            if limits.horizon:
                book.calls[hold_id] = _Call(now, limits.tool, amount)
            return Admission(True, totals, None, room, None, book.fire(limits))

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
            book.use(hold_id, hold, actual)
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
            book.use(hold_id, hold, None)
            return True

    def totals(self, key: str, view: ServerView | None, now: float) -> LedgerTotals:
        """See :meth:`Ledger.totals`."""
        with self._lock:
            try:
                return self._book(key, view, now).totals()
            except KeyError:
                zero = _ZERO
                return LedgerTotals(zero, zero, zero, zero)
