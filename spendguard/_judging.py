"""SpendGuard's decisions: judging a charge against the session and the policies, and the
records each decision leaves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from decimal import Decimal
from time import perf_counter
from typing import TYPE_CHECKING

from spendguard._cache import Freshness
from spendguard._emit import Recorder
from spendguard._errors import (
    BudgetExceededError,
    LedgerUnavailableError,
    PolicyViolationError,
    SessionExpiredError,
    SessionFrozenError,
    SpendGuardError,
)
from spendguard._guard_support import _LedgerBoundary, _limit
from spendguard._ledger import Ledger, PolicyLedger, Settlement
from spendguard._money import Money, _trusted
from spendguard._session import SessionSnapshot
from spendguard.policies import Policies, ThresholdEvent

__all__ = ["_Judging"]

_log = logging.getLogger("spendguard")
_Verdict = tuple[SpendGuardError | None, Money, tuple[ThresholdEvent, ...]]


class _Judging:
    """The decision half of :class:`~spendguard.SpendGuard`, which sets these attributes."""

    _currency: str
    _freshness: Freshness
    _key: str
    _lease: float
    _ledger: Ledger
    _ledger_boundary: _LedgerBoundary
    _policies: Policies | None
    _rec: Recorder
    _seen: SessionSnapshot | None
    _seen_lock: threading.Lock
    _settlement: Settlement
    _timer: Callable[[], float]

    if TYPE_CHECKING:

        @property
        def payment_session_id(self) -> str: ...

    def _observe(self, snap: SessionSnapshot, now: float) -> None:
        """Show the ledger a new reading; record the session charges it absorbed, if any."""
        if not self._rec.wants("reconciled"):
            self._seen = snap
            return
        with self._seen_lock, self._ledger_boundary:
            if snap is self._seen:
                return
            before = self._ledger.totals(self._key, None, now)
            after = self._ledger.totals(self._key, snap.view, now)
            self._seen = snap
        absorbed = before.unreflected - after.unreflected
        if absorbed > 0:
            self._rec.reconciled(now, absorbed, after.available)

    def _expired(self, snap: SessionSnapshot, now: float) -> bool:
        return now >= snap.expires_mono - self._freshness.expiry_margin

    def _judge(
        self,
        snap: SessionSnapshot,
        money: Money,
        tool: str | None,
        now: float,
        hold: tuple[str, Settlement, float] | None = None,
    ) -> _Verdict:
        """The one decision of check (``hold`` None: nothing is held) and reserve (``hold``:
        its id, settlement and lease): the refusal if any, what is left under the deciding rule, and
        the thresholds the hold crossed."""
        sid = self.payment_session_id
        if self._expired(snap, now):
            expired = SessionExpiredError(snap.expires_at, session_id=sid)
            verdict: _Verdict = (expired, Money.zero(self._currency), ())
            self._record(now, tool, money, snap, hold, verdict, None)
            return verdict
        started = perf_counter() if self._rec.timing else None
        try:
            if snap is not self._seen:
                self._observe(snap, now)
            if self._policies is None:
                verdict = self._judge_plain(money, snap, tool, now, hold)
            else:
                verdict = self._judge_policies(self._policies, money, snap, tool, now, hold)
        except SessionFrozenError as frozen:  # an operator's stop, even in shadow mode
            verdict = (frozen, Money.zero(self._currency), ())
        except LedgerUnavailableError as exc:
            operation = "totals" if hold is None else "reserve"
            self._ledger_failed(now, operation, exc, tool, money.amount)
            raise
        # Records nobody takes are not built: one cheap check on the hot path.
        event = "blocked" if verdict[0] is not None else "allowed" if hold is None else "held"
        if self._rec.wants(event):
            seconds = None if started is None else perf_counter() - started
            self._record(now, tool, money, snap, hold, verdict, seconds)
        return verdict

    def _record(
        self,
        now: float,
        tool: str | None,
        money: Money,
        snap: SessionSnapshot,
        hold: tuple[str, Settlement, float] | None,
        verdict: _Verdict,
        seconds: float | None,
    ) -> None:
        error, available, _ = verdict
        limit = None if snap.max_spend is None else snap.max_spend.amount
        rec = self._rec
        if error is not None:
            rec.blocked(now, tool, error, money.amount, available.amount, limit, seconds)
        elif hold is None:
            rec.allowed(now, tool, money.amount, available.amount, limit, seconds)
        else:
            hold_id, kind, _ = hold
            rec.held(now, hold_id, tool, money.amount, kind, available.amount, limit, seconds)

    def _ledger_failed(
        self,
        now: float,
        operation: str,
        error: LedgerUnavailableError,
        tool: str | None,
        amount: Decimal | None,
    ) -> None:
        if error.session_id is None:
            error.session_id = self.payment_session_id
        self._rec.ledger_failure(now, operation, error, tool)
        self._rec.blocked(now, tool, error, amount)

    def _record_blocked(
        self, tool: str | None, error: SpendGuardError, amount: Decimal | None = None
    ) -> None:
        """Record a call refused before it reached the guard (e.g. it could not be priced)."""
        self._rec.blocked(self._timer(), tool, error, amount)

    def _record_allowed(self, tool: str | None) -> None:
        """Record a free call admitted without a hold."""
        self._rec.allowed(self._timer(), tool, Decimal(0), None, None)

    def _frozen(self) -> bool:
        is_frozen = getattr(self._ledger, "is_frozen", None)  # optional for custom ledgers
        return is_frozen is not None and bool(is_frozen(self._key))

    def _judge_plain(
        self,
        money: Money,
        snap: SessionSnapshot,
        tool: str | None,
        now: float,
        hold: tuple[str, Settlement, float] | None,
    ) -> _Verdict:
        sid = self.payment_session_id
        with self._ledger_boundary:
            if hold is None:
                totals = self._ledger.totals(self._key, snap.view, now)
                granted = money.amount <= totals.effective
                if self._frozen():
                    raise SessionFrozenError(
                        f"payment session {sid} is frozen by an operator", session_id=sid
                    )
            else:
                hold_id, kind, lease = hold
                granted, totals = self._ledger.reserve(
                    self._key, hold_id, money.amount, snap.view, kind, lease, now, tool=tool
                )
        available = _trusted(totals.effective, self._currency)
        if granted:
            return None, available, ()
        return BudgetExceededError(money, available, session_id=sid), available, ()

    def _judge_policies(
        self,
        policies: Policies,
        money: Money,
        snap: SessionSnapshot,
        tool: str | None,
        now: float,
        hold: tuple[str, Settlement, float] | None,
    ) -> _Verdict:
        sid = self.payment_session_id
        most, specific = policies._per_call_max(tool)
        if most is not None and money > most:
            error = PolicyViolationError(
                money, most, session_id=sid, rule="per_call_max", limit=most, tool=specific
            )
            return error, most, ()
        max_spend = None if snap.max_spend is None else snap.max_spend.amount
        resolved = policies._resolve(tool, max_spend)
        hold_id, kind, lease = hold or ("", self._settlement, self._lease)
        ledger: PolicyLedger = self._ledger  # type: ignore[assignment]  # checked at start-up
        with self._ledger_boundary:
            verdict = ledger.admit(
                self._key,
                hold_id,
                money.amount,
                snap.view,
                kind,
                lease,
                now,
                resolved.limits,
                probe=hold is None,
            )
        room = _trusted(verdict.room, self._currency)
        if verdict.rule is None:
            return None, room, tuple(resolved.events[name] for name in verdict.fired)
        if verdict.rule in ("session_limit", "hold_exists"):
            return BudgetExceededError(money, room, session_id=sid), room, ()
        window = None if verdict.window is None else resolved.limits.windows[verdict.window]
        error = PolicyViolationError(
            money,
            Money.zero(self._currency) if verdict.rule == "window_count" else room,
            session_id=sid,
            rule=verdict.rule,
            limit=_limit(verdict.rule, resolved.limits.cap, window, self._currency),
            tool=tool if window is None else window.tool,
            window=None if window is None else window.seconds,
        )
        return error, error.available, ()

    def _cross(self, crossed: tuple[ThresholdEvent, ...]) -> None:
        assert self._policies is not None or not crossed
        for event in crossed:
            _log.warning(
                "spend threshold crossed in session %s: %s of the %s%s (%s)",
                self.payment_session_id,
                event.fraction,
                event.rule,
                "" if event.tool is None else f" of tool {event.tool}",
                event.limit,
            )
            callback = self._policies.on_threshold if self._policies else None
            if callback is None:
                continue
            try:
                callback(event)
            except Exception:  # an alert that fails must not undo a granted, held charge
                _log.exception("on_threshold raised for %s; the charge goes ahead", event)
