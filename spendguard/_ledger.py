"""Ledgers: what is held for calls in flight and what was committed but not yet seen by the server.

A ledger is keyed by payment session. The in-memory ledger
(:class:`~spendguard._memory_ledger.InMemoryLedger`) serves one process; a shared ledger (Redis)
implements the same :class:`Ledger` protocol and the same rules:

* **Check and hold** are one atomic step: a hold is granted only if
  ``amount <= available - held - unreflected - external``, where ``available`` is the server's
  figure from the newest view (by server update time) the ledger has seen.
* **Commit** turns a hold into a charge. A charge that settles ``"external"`` (never seen by
  the payment service) stays deducted for the life of the session. A ``"session"`` charge
  (ProcessPayment through this session) stays deducted until a view gives evidence that the
  server has absorbed it, see :meth:`Ledger.observe`.
* **Leases**: a hold not settled within its lease lapses. A lapsed hold may have been spent, so
  it becomes an external charge of its full amount: the budget over-counts, it never forgets.
* **Idempotent per hold id**: a client that retries an operation whose reply it lost (redis-py's
  ``RedisCluster`` does after a connection error) gets the first answer again. A reserve of a
  hold id that is open, or was settled, answers granted when the amount is the same and never
  holds twice; a commit or release of a settled hold answers as the first did and changes no
  totals. Settled hold ids are remembered for a lease's length (at least a minute) after
  settling.
* **Freeze**: an operator may freeze a session; a reserve then raises
  :class:`~spendguard._errors.SessionFrozenError` in the same atomic step that would hold.

**Policies** (:mod:`spendguard.policies`) are checked in the same atomic step as the hold, by
:meth:`PolicyLedger.admit` (``InMemoryLedger.admit``, ``RedisLedger.admit``): a per-tool cap
counts the tool's open holds and commits; a rolling window counts every hold granted within its last
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

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from spendguard._errors import SessionFrozenError
from spendguard._money import CONTEXT

__all__ = [
    "NO_LIMITS",
    "Admission",
    "HoldInfo",
    "Ledger",
    "LedgerTotals",
    "Limits",
    "Mark",
    "OperatorLedger",
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
        *,
        tool: str | None = None,
    ) -> tuple[bool, LedgerTotals]:
        """Observe ``view``, then hold ``amount`` if it fits.

        A hold id that is open or was settled is never held again: the answer is granted when
        ``amount`` is the one first held (a retry), refused otherwise.

        Returns:
            Whether the hold was granted, and the totals before it.

        Raises:
            SessionFrozenError: An operator froze the session.
        """
        ...  # pragma: no cover

    def commit(
        self, key: str, hold_id: str, actual: Decimal, evidence_time: float, now: float
    ) -> bool:
        """Turn a hold into a charge of ``actual`` (at most the held amount).

        ``evidence_time`` is the server time after which a view may show the charge absorbed.

        Returns:
            True if the hold was committed, now or by an earlier call (a retry changes
            nothing); False if it was unknown, lapsed or released: nothing changed.
        """
        ...  # pragma: no cover

    def release(self, key: str, hold_id: str, now: float) -> bool:
        """Drop a hold without charging.

        Returns:
            True if the hold was released, now or by an earlier call; False if it was unknown,
            lapsed or committed.
        """
        ...  # pragma: no cover

    def totals(self, key: str, view: ServerView | None, now: float) -> LedgerTotals:
        """Observe ``view`` (if given), lapse expired holds, and return the totals."""
        ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class HoldInfo:
    """One open hold, as an operator sees it.

    Attributes:
        hold_id: The hold's id (``Hold.id``).
        amount: The amount held.
        settlement: ``"session"`` or ``"external"``.
        tool: The tool the hold is for, None when not named.
        age: Seconds since the hold was taken (by the ledger's clock).
        lease_left: Seconds until the hold lapses into a charge (0 when due).
    """

    hold_id: str
    amount: Decimal
    settlement: Settlement
    tool: str | None
    age: float
    lease_left: float


@runtime_checkable
class OperatorLedger(Ledger, Protocol):
    """A ledger with operator controls (both built-in ledgers); optional for custom ones."""

    def holds(self, key: str, now: float) -> list[HoldInfo]:
        """The open holds of session ``key`` (lapsing those that are due first), oldest first."""
        ...  # pragma: no cover

    def settle_stuck(self, key: str, hold_id: str, charge: bool, now: float) -> HoldInfo | None:
        """Settle an open hold for an operator.

        ``charge=False`` drops it as not spent (a later commit by its guard still charges);
        ``charge=True`` counts its full amount as spent for the session's life, as a lapse does.

        Returns:
            The hold as it was, or None if it was not open (nothing changed).
        """
        ...  # pragma: no cover

    def set_frozen(self, key: str, frozen: bool) -> bool:
        """Freeze (every reserve of the session raises) or unfreeze session ``key``.

        Returns:
            Whether the state changed.
        """
        ...  # pragma: no cover

    def is_frozen(self, key: str) -> bool:
        """Whether session ``key`` is frozen."""
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


#: No policy at all: :meth:`PolicyLedger.admit` then decides as ``reserve`` does.
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


def _frozen(key: str) -> SessionFrozenError:
    return SessionFrozenError(
        f"payment session {key} is frozen by an operator: every charge is blocked until it is "
        "unfrozen (spendguard session unfreeze)"
    )
