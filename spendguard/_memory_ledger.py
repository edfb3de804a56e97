"""The in-memory ledger: one process's holds and unreflected charges, behind one lock.

:class:`InMemoryLedger` keeps the rules of :mod:`spendguard._ledger` (check and hold, commit,
leases, idempotence per hold id, freeze, policies and reconciliation) in a book per session.
A process that forks while it holds money warns in the child (:mod:`spendguard._fork`).
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from spendguard._errors import InvalidAmountError
from spendguard._fork import track_for_fork
from spendguard._ledger import (
    _ZERO,
    NO_LIMITS,
    Admission,
    HoldInfo,
    LedgerTotals,
    Limits,
    ServerView,
    Settlement,
    WindowLimit,
    _frozen,
)
from spendguard._money import CONTEXT

__all__ = ["InMemoryLedger"]

#: How a hold was settled: committed, released, lapsed, dropped or charged by an operator.
_Outcome = Literal["committed", "released", "lapsed", "dropped", "charged"]
#: Settled hold ids are remembered for the hold's lease, and at least this many seconds.
_MEMORY = 60.0


@dataclass(slots=True)
class _Hold:
    amount: Decimal
    settlement: Settlement
    deadline: float
    tool: str | None = None
    created: float = 0.0

    def info(self, hold_id: str, now: float) -> HoldInfo:
        left = max(0.0, self.deadline - now)
        return HoldInfo(hold_id, self.amount, self.settlement, self.tool, now - self.created, left)


@dataclass(frozen=True, slots=True)
class _Settled:
    outcome: _Outcome
    hold: _Hold  # as it was held
    until: float  # forgotten after this time


@dataclass(slots=True)
class _Call:
    """A granted call, kept for the rolling windows: its amount (0 once released)."""

    at: float
    tool: str | None
    amount: Decimal
    live: bool = True  # False once released: no longer a call


@dataclass(slots=True)
class _Window:
    """Running totals of one window over the calls after ``cutoff``, in the order granted,
    so a decision costs O(1) amortized instead of a scan of the window."""

    seconds: float
    tool: str | None
    cutoff: float
    calls: deque[_Call] = field(default_factory=deque)
    amount: Decimal = _ZERO
    count: int = 0

    def counts(self, call: _Call) -> bool:
        return call.at > self.cutoff and (self.tool is None or call.tool == self.tool)

    def add(self, call: _Call) -> None:
        if self.counts(call):
            self.calls.append(call)
            self.amount = CONTEXT.add(self.amount, call.amount)
            self.count += 1

    def advance(self, now: float) -> None:
        # Calls are granted in time order (see _Book.record), so they leave in that order.
        self.cutoff = max(self.cutoff, now - self.seconds)
        calls = self.calls
        while calls and calls[0].at <= self.cutoff:
            call = calls.popleft()
            self.amount = CONTEXT.subtract(self.amount, call.amount)
            self.count -= call.live


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
    windows: dict[tuple[float, str | None], _Window] = field(default_factory=dict)
    last_at: float = float("-inf")
    fired: set[str] = field(default_factory=set)
    horizon: float = 0.0
    settled: dict[str, _Settled] = field(default_factory=dict)
    forget_at: list[tuple[float, str]] = field(default_factory=list)  # a heap
    expires: float | None = None  # the session's expiry, when told (forget_expired)

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
        while self.forget_at and self.forget_at[0][0] <= now:
            until, hold_id = heapq.heappop(self.forget_at)
            done = self.settled.get(hold_id)
            if done is not None and done.until <= until:
                del self.settled[hold_id]
        if now < self.next_deadline:
            return
        for hold_id, hold in list(self.holds.items()):
            if hold.deadline <= now:
                self.settle(hold_id, "lapsed", now)
                self.external = CONTEXT.add(self.external, hold.amount)
        self.next_deadline = min((h.deadline for h in self.holds.values()), default=float("inf"))

    def settle(self, hold_id: str, outcome: _Outcome, now: float) -> _Hold:
        """Close an open hold and remember how, for its lease (at least a minute)."""
        hold = self.holds.pop(hold_id)
        self.held = CONTEXT.subtract(self.held, hold.amount)
        until = now + max(hold.deadline - hold.created, _MEMORY)
        self.settled[hold_id] = _Settled(outcome, hold, until)
        heapq.heappush(self.forget_at, (until, hold_id))
        return hold

    def charge(self, amount: Decimal, settlement: Settlement, evidence_time: float) -> None:
        if settlement == "external":
            self.external = CONTEXT.add(self.external, amount)
        elif amount:
            self.pending.append((amount, evidence_time))
            self.unreflected = CONTEXT.add(self.unreflected, amount)
            # The newest view may already show this payment (a refresh between paying and
            # committing): it is evidence too, not only views still to come.
            self.reconcile()

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
        key = (window.seconds, window.tool)
        totals = self.windows.get(key)
        if totals is None:
            totals = self.windows[key] = _Window(window.seconds, window.tool, now - window.seconds)
            for call in self.calls.values():
                totals.add(call)
        totals.advance(now)
        return totals.amount, totals.count

    def forget(self, now: float, horizon: float) -> None:
        # Calls are kept in the order granted; the oldest leave once past every window.
        start, calls = now - horizon, self.calls
        while calls:
            hold_id = next(iter(calls))
            if calls[hold_id].at > start:
                break
            del calls[hold_id]
        for totals in self.windows.values():
            totals.advance(now)

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
        call = self.calls.get(hold_id)
        if call is None:
            return
        amount = actual or _ZERO
        for totals in self.windows.values():
            if totals.counts(call):
                change = CONTEXT.subtract(amount, call.amount)
                totals.amount = CONTEXT.add(totals.amount, change)
                totals.count -= actual is None
        call.amount, call.live = amount, actual is not None
        if actual is None:
            del self.calls[hold_id]

    def record(self, hold_id: str, call: _Call) -> None:
        # A caller reads its clock before the lock: one that waited gets the latest time
        # granted, so calls stay in time order (a call then stays a few microseconds longer).
        call.at = self.last_at = max(call.at, self.last_at)
        self.calls[hold_id] = call
        for totals in self.windows.values():
            totals.add(call)


class InMemoryLedger:
    """The default ledger: holds live in this process, guarded by one lock.

    Share one instance between guards of the same session in a process; use a shared ledger
    (``RedisLedger``) when several processes spend from one session. A process that forks
    while this ledger holds money warns in the child (:class:`ForkedLedgerWarning`): parent
    and child would each spend the same budget. Books of expired sessions are dropped when
    told of the expiry (:meth:`forget_expired`, which :class:`~spendguard.pool.GuardPool`
    calls).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[str, _Book] = {}
        self._frozen: set[str] = set()
        self._expiring: list[tuple[float, str]] = []  # a heap of (when due, session key)
        track_for_fork(self)

    @property
    def books(self) -> int:
        """How many sessions have a book in this ledger."""
        with self._lock:
            return len(self._books)

    def _book(self, key: str, view: ServerView | None, now: float) -> _Book:
        self._sweep(now)
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
        *,
        tool: str | None = None,
    ) -> tuple[bool, LedgerTotals]:
        """See :meth:`Ledger.reserve`."""
        limits = NO_LIMITS if tool is None else NO_LIMITS._replace(tool=tool)
        admission = self.admit(key, hold_id, amount, view, settlement, lease_seconds, now, limits)
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
            known = None if probe else self._known(book, hold_id)
            if known is not None:  # a retry: answer as the first time, never hold twice
                if known.amount != amount:
                    return Admission(False, totals, "hold_exists", _ZERO, None, ())
                if hold_id in book.holds:
                    totals = totals._replace(held=CONTEXT.subtract(totals.held, amount))
                return Admission(True, totals, None, totals.effective, None, ())
            if key in self._frozen:
                raise _frozen(key)
            rule, room, window = book.judge(amount, totals.effective, limits, now)
            if probe or rule is not None:
                return Admission(False, totals, rule, room, window, ())
            deadline = now + lease_seconds
            book.holds[hold_id] = _Hold(amount, settlement, deadline, limits.tool, now)
            book.held = CONTEXT.add(book.held, amount)
            book.next_deadline = min(book.next_deadline, deadline)
            if limits.tool is not None:
                book.tools[limits.tool] = CONTEXT.add(book.tools.get(limits.tool, _ZERO), amount)
            if limits.horizon:
                book.record(hold_id, _Call(now, limits.tool, amount))
            return Admission(True, totals, None, room, None, book.fire(limits))

    @staticmethod
    def _known(book: _Book, hold_id: str) -> _Hold | None:
        """The hold ``hold_id`` if it is open or was settled lately."""
        if hold_id in book.holds:
            return book.holds[hold_id]
        done = book.settled.get(hold_id)
        return None if done is None else done.hold

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
                return self._commit_settled(book, hold_id, actual, evidence_time)
            if actual > hold.amount or actual < 0:
                raise InvalidAmountError(
                    f"cannot commit {actual}: the hold is {hold.amount}", value=actual
                )
            book.settle(hold_id, "committed", now)
            book.use(hold_id, hold, actual)
            book.charge(actual, hold.settlement, evidence_time)
            return True

    @staticmethod
    def _commit_settled(book: _Book, hold_id: str, actual: Decimal, evidence_time: float) -> bool:
        done = book.settled.get(hold_id)
        if done is None or done.outcome not in ("committed", "dropped"):
            return False
        if done.outcome == "dropped":  # an operator said "not spent"; the call says it was
            hold = done.hold
            if actual > hold.amount or actual < 0:
                raise InvalidAmountError(
                    f"cannot commit {actual}: the hold was {hold.amount}", value=actual
                )
            book.settled[hold_id] = _Settled("committed", hold, done.until)
            # Its share of the tool's cap was given back when dropped: take ``actual`` again.
            book.use(hold_id, _Hold(_ZERO, hold.settlement, hold.deadline, hold.tool), actual)
            book.charge(actual, hold.settlement, evidence_time)
        return True

    def release(self, key: str, hold_id: str, now: float) -> bool:
        """See :meth:`Ledger.release`."""
        with self._lock:
            book = self._books.get(key)
            if book is None:
                return False
            book.lapse(now)
            if hold_id in book.holds:
                book.use(hold_id, book.settle(hold_id, "released", now), None)
                return True
            done = book.settled.get(hold_id)
            return done is not None and done.outcome in ("released", "dropped")

    def totals(self, key: str, view: ServerView | None, now: float) -> LedgerTotals:
        """See :meth:`Ledger.totals`."""
        with self._lock:
            try:
                return self._book(key, view, now).totals()
            except KeyError:
                zero = _ZERO
                return LedgerTotals(zero, zero, zero, zero)

    # -- operator controls ----------------------------------------------------------------

    def holds(self, key: str, now: float) -> list[HoldInfo]:
        """See :meth:`OperatorLedger.holds`; ``now`` is the guards' monotonic clock."""
        with self._lock:
            book = self._books.get(key)
            if book is None:
                return []
            book.lapse(now)
            found = [hold.info(hold_id, now) for hold_id, hold in book.holds.items()]
        return sorted(found, key=lambda info: -info.age)

    def settle_stuck(self, key: str, hold_id: str, charge: bool, now: float) -> HoldInfo | None:
        """See :meth:`OperatorLedger.settle_stuck`."""
        with self._lock:
            book = self._books.get(key)
            if book is None:
                return None
            book.lapse(now)
            hold = book.holds.get(hold_id)
            if hold is None:
                return None
            info = hold.info(hold_id, now)
            book.settle(hold_id, "charged" if charge else "dropped", now)
            if charge:  # as a lapse: spent in full, for the tool's cap and windows too
                book.external = CONTEXT.add(book.external, hold.amount)
            else:
                book.use(hold_id, hold, None)
            return info

    def set_frozen(self, key: str, frozen: bool) -> bool:
        """See :meth:`OperatorLedger.set_frozen`."""
        with self._lock:
            was = key in self._frozen
            if frozen:
                self._frozen.add(key)
            else:
                self._frozen.discard(key)
                book = self._books.get(key)
                if was and book is not None and book.expires is not None:
                    heapq.heappush(self._expiring, (book.expires, key))  # may go again
            return was != frozen

    def is_frozen(self, key: str) -> bool:
        """See :meth:`OperatorLedger.is_frozen`."""
        with self._lock:
            return key in self._frozen

    # -- forgetting expired sessions ------------------------------------------------------

    def forget_expired(self, key: str, expires: float, now: float) -> bool:
        """Drop the book of session ``key`` once the session has expired.

        An expired session can no longer be spent (every guard refuses it before asking the
        ledger), so nothing in its book can change a decision. :class:`~spendguard.pool.
        GuardPool` calls this when it evicts a guard; a long-running process would otherwise
        keep one book per session it ever saw.

        The book stays while it has an open hold or remembers a settled one (so a late commit
        or a retry is answered as before), and while an operator keeps the session frozen.
        When ``expires`` is still ahead, it is recorded and the book goes at a later call to
        this method or to ``reserve``, ``admit`` or ``totals`` (of any session) after it.

        Args:
            key: The session key.
            expires: The session's expiry on the ledger's clock (the guards' monotonic
                ``now``), no earlier than any guard of the session stops charging; a later
                call with a later expiry moves it.
            now: The current time on that clock.

        Returns:
            Whether the book was dropped now.
        """
        with self._lock:
            book = self._books.get(key)
            if book is not None:
                if book.expires is None:
                    heapq.heappush(self._expiring, (expires, key))
                book.expires = max(expires, book.expires or expires)
            self._sweep(now)
            return book is not None and key not in self._books

    def _sweep(self, now: float) -> None:
        """Drop the books whose session expired and that hold and remember nothing open."""
        due = self._expiring
        while due and due[0][0] <= now:
            _, key = heapq.heappop(due)
            book = self._books.get(key)
            if book is None or book.expires is None or key in self._frozen:
                continue  # a frozen session's book goes once unfrozen (set_frozen)
            book.lapse(now)
            later = max(
                [
                    book.expires,
                    *(hold.deadline for hold in book.holds.values()),
                    *(done.until for done in book.settled.values()),
                ]
            )
            if later > now:
                heapq.heappush(due, (later, key))
            else:
                del self._books[key]

    # -- fork detection -------------------------------------------------------------------

    def _live(self) -> bool:
        """Whether any session holds money or carries charges (read without the lock: called
        in a freshly forked child, where no other thread runs)."""
        return any(book.holds or book.unreflected or book.external for book in self._books.values())

    def _after_fork_in_child(self) -> None:
        # A thread of the parent may have held the lock at the fork: the child's copy would
        # stay locked forever.
        self._lock = threading.Lock()
