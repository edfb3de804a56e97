"""Handing decision records to sinks: cheaply when nobody listens, safely when a sink fails."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spendguard._errors import InvalidArgumentError, SpendGuardError
from spendguard.events import (
    AllowedRecord,
    BlockedRecord,
    CommittedRecord,
    DecisionRecord,
    DecisionSink,
    HeldRecord,
    LapsedRecord,
    LedgerFailureRecord,
    LoggingSink,
    ReconciledRecord,
    ReleasedRecord,
    SessionFailureRecord,
    SessionReadRecord,
)

if TYPE_CHECKING:
    from spendguard._hold import Hold

__all__ = ["CALL_KEY", "Emitter", "Recorder"]

_log = logging.getLogger("spendguard")

#: The call key of the tool call being admitted, set by the tool gate around admission.
CALL_KEY: ContextVar[str | None] = ContextVar("spendguard_call_key", default=None)


def _never(event: str) -> bool:
    return False


def _always(event: str) -> bool:
    return True


class Emitter:
    """The sinks of one guard.

    ``wants(event)`` says whether any sink takes the event, so a record nobody takes is
    never built; ``timing`` whether latencies are worth measuring (a sink without an
    ``enabled_for`` gate, such as the JSONL or OpenTelemetry sinks, takes everything).
    """

    __slots__ = ("_gates", "sinks", "timing", "wants")

    def __init__(self, sinks: Sequence[DecisionSink] | None) -> None:
        chosen = (LoggingSink(),) if sinks is None else _check(sinks)
        self.sinks = chosen
        gates: list[Callable[[str], bool] | None] = [
            getattr(sink, "enabled_for", None) for sink in chosen
        ]
        self._gates = tuple(gate if callable(gate) else None for gate in gates)
        self.timing = any(gate is None for gate in self._gates)
        self.wants: Callable[[str], bool]
        if not chosen:
            self.wants = _never
        elif self.timing:
            self.wants = _always
        elif len(chosen) == 1:
            gate = self._gates[0]
            assert gate is not None
            self.wants = gate
        else:
            self.wants = self._any

    def _any(self, event: str) -> bool:
        return any(gate is None or gate(event) for gate in self._gates)

    def emit(self, record: DecisionRecord) -> None:
        """Give ``record`` to every sink that takes it; a failing sink is logged and skipped."""
        event = record.event
        for sink, gate in zip(self.sinks, self._gates, strict=True):
            if gate is not None and not gate(event):
                continue
            try:
                sink.emit(record)
            except Exception:
                _log.warning(
                    "decision sink %r failed on a %s record; the decision stands",
                    sink,
                    event,
                    exc_info=True,
                )


def _check(sinks: Sequence[DecisionSink]) -> tuple[DecisionSink, ...]:
    if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Sequence):
        raise InvalidArgumentError(
            f"sinks must be a list of sinks, got {type(sinks)!r}", argument="sinks"
        )
    for sink in sinks:
        if not callable(getattr(sink, "emit", None)):
            raise InvalidArgumentError(
                f"a sink needs an emit(record) method, got {sink!r}", argument="sinks"
            )
    return tuple(sinks)


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else format(amount, "f")


class Recorder:
    """Builds one guard's records, each only if a sink takes it."""

    __slots__ = ("_clock", "_currency", "_emitter", "_session_id", "timing", "wants")

    def __init__(
        self, emitter: Emitter, session_id: str, currency: str, clock: Callable[[], float]
    ) -> None:
        self._emitter = emitter
        self._session_id = session_id
        self._currency = currency
        self._clock = clock
        #: Whether a sink would use latencies.
        self.timing = emitter.timing
        #: Whether a sink takes an event (the emitter's own check, bound once).
        self.wants = emitter.wants

    def _base(self, now: float, tool: str | None, hold_id: str | None = None) -> dict[str, Any]:
        return {
            "session_id": self._session_id,
            "currency": self._currency,
            "wall_time": self._clock(),
            "mono_time": now,
            "tool": tool,
            "call_key": CALL_KEY.get(),
            "hold_id": hold_id,
        }

    def allowed(
        self,
        now: float,
        tool: str | None,
        amount: Decimal,
        available: Decimal | None,
        limit: Decimal | None,
        seconds: float | None = None,
    ) -> None:
        if self._emitter.wants("allowed"):
            self._emitter.emit(
                AllowedRecord(
                    **self._base(now, tool),
                    amount=format(amount, "f"),
                    available=_text(available),
                    limit=_text(limit),
                    ledger_seconds=seconds,
                )
            )

    def held(
        self,
        now: float,
        hold_id: str,
        tool: str | None,
        amount: Decimal,
        settlement: str,
        available: Decimal,
        limit: Decimal | None,
        seconds: float | None,
    ) -> None:
        if self._emitter.wants("held"):
            self._emitter.emit(
                HeldRecord(
                    **self._base(now, tool, hold_id),
                    amount=format(amount, "f"),
                    available=format(available, "f"),
                    settlement=settlement,
                    limit=_text(limit),
                    ledger_seconds=seconds,
                )
            )

    def blocked(
        self,
        now: float,
        tool: str | None,
        error: SpendGuardError,
        amount: Decimal | None = None,
        available: Decimal | None = None,
        limit: Decimal | None = None,
        seconds: float | None = None,
    ) -> None:
        if self._emitter.wants("blocked"):
            self._emitter.emit(
                BlockedRecord(
                    **self._base(now, tool),
                    rule=error.rule,
                    error=type(error).__name__,
                    message=str(error),
                    amount=_text(amount),
                    available=_text(available),
                    limit=_text(limit),
                    ledger_seconds=seconds,
                )
            )

    def settled(
        self, now: float, hold: Hold, charge: Decimal | None, found: bool, seconds: float | None
    ) -> None:
        """A commit (``charge``), a release (None), or a lapse (``found`` False)."""
        event = "lapsed" if not found else "released" if charge is None else "committed"
        if not self._emitter.wants(event):
            return
        base = self._base(now, hold.tool, hold.id)
        base["call_key"] = hold.call_key
        held = format(hold.amount.amount, "f")
        record: DecisionRecord
        if not found:
            operation = "release" if charge is None else "commit"
            record = LapsedRecord(**base, amount=held, operation=operation)
        elif charge is None:
            record = ReleasedRecord(**base, amount=held, ledger_seconds=seconds)
        else:
            record = CommittedRecord(
                **base,
                amount=format(charge, "f"),
                held=held,
                settlement=hold.settlement,
                ledger_seconds=seconds,
            )
        self._emitter.emit(record)

    def reconciled(self, now: float, amount: Decimal, server_available: Decimal) -> None:
        if self._emitter.wants("reconciled"):
            self._emitter.emit(
                ReconciledRecord(
                    **self._base(now, None),
                    amount=format(amount, "f"),
                    server_available=format(server_available, "f"),
                )
            )

    def ledger_failure(
        self, now: float, operation: str, error: SpendGuardError, tool: str | None = None
    ) -> None:
        if self._emitter.wants("ledger_failure"):
            self._emitter.emit(
                LedgerFailureRecord(
                    **self._base(now, tool),
                    operation=operation,
                    error=type(error).__name__,
                    message=str(error),
                    rule=error.rule,
                )
            )

    def session_read(
        self, now: float, server_available: Decimal, limit: Decimal | None, seconds: float
    ) -> None:
        if self._emitter.wants("session_read"):
            self._emitter.emit(
                SessionReadRecord(
                    **self._base(now, None),
                    server_available=format(server_available, "f"),
                    limit=_text(limit),
                    seconds=seconds,
                )
            )

    def session_failure(self, now: float, error: SpendGuardError, seconds: float) -> None:
        if self._emitter.wants("session_failure"):
            self._emitter.emit(
                SessionFailureRecord(
                    **self._base(now, None),
                    rule=error.rule,
                    error=type(error).__name__,
                    message=str(error),
                    seconds=seconds,
                )
            )
