"""Decision records: what the guard decided, and what happened to the money, one record each.

Every guard emits a record to its sinks (``SpendGuard(..., sinks=[...])``) at each event:

==================  ==============================================================  ========
event               when                                                            logging
==================  ==============================================================  ========
``allowed``         a check fits, or a free tool call is admitted (nothing held)    DEBUG
``held``            a charge fits and its amount is held (``reserve``)              DEBUG
``blocked``         a check or a charge is refused; ``rule`` says why               INFO
``committed``       a hold became a charge (``amount``, ``settlement``)             DEBUG
``released``        a hold was given back: the call spent nothing                   DEBUG
``lapsed``          settling found the hold gone: its lease ran out, it counts      WARNING
                    as spent in full
``reconciled``      the server was seen to absorb committed session charges         DEBUG
``ledger_failure``  a shared ledger could not be reached                            WARNING
``session_failure`` GetPaymentSession failed                                        WARNING
``session_read``    GetPaymentSession answered (its latency, the server's figures)  DEBUG
==================  ==============================================================  ========

A decision emits exactly one of ``allowed``, ``held`` or ``blocked``: an admitted charge
that holds money is a ``held`` record, not also an ``allowed`` one.

Amounts are exact decimal strings (``"0.05"``), never floats. Times are the guard's wall clock
(``wall_time``, epoch seconds) and its monotonic timer (``mono_time``, for durations).

A sink is anything with ``emit(record)`` (:class:`DecisionSink`). A sink that raises never
breaks a decision: the error is logged on the ``spendguard`` logger and the next sink runs.
A sink may also define ``enabled_for(event) -> bool``: the guard then builds no record the
sink would drop (the :class:`LoggingSink` does, so a logger at WARNING costs almost nothing).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = [
    "AllowedRecord",
    "BlockedRecord",
    "CommittedRecord",
    "DecisionRecord",
    "DecisionSink",
    "HeldRecord",
    "LapsedRecord",
    "LedgerFailureRecord",
    "LoggingSink",
    "ReconciledRecord",
    "ReleasedRecord",
    "SessionFailureRecord",
    "SessionReadRecord",
    "record_from_dict",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """What every record carries.

    Attributes:
        session_id: The payment session.
        currency: The currency of every amount in the record.
        wall_time: The guard's wall clock at the event, epoch seconds.
        mono_time: The guard's monotonic timer at the event, seconds.
        tool: The tool (or action) the charge is for, when one was named.
        call_key: The tool call, as the adapter keys it (a LangChain run id, or a key the
            tool gate makes per call), when the charge came through a tool gate.
        hold_id: The hold, for hold events.
    """

    event: ClassVar[str] = ""
    session_id: str
    currency: str
    wall_time: float
    mono_time: float
    tool: str | None = None
    call_key: str | None = None
    hold_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``event`` first, then every field."""
        names = _NAMES.get(type(self))
        if names is None:
            names = _NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))
        out: dict[str, Any] = {"event": self.event}
        for name in names:
            out[name] = getattr(self, name)
        return out


_NAMES: dict[type[DecisionRecord], tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedRecord(DecisionRecord):
    """A check that fits, or a free tool call admitted; nothing is held.

    Attributes:
        amount: The amount asked about (``"0"`` for a free call).
        available: What was effectively available, None for a free call (not asked).
        limit: The session's limit, when known.
        ledger_seconds: How long the ledger took, when measured.
    """

    event: ClassVar[str] = "allowed"
    amount: str
    available: str | None = None
    limit: str | None = None
    ledger_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldRecord(DecisionRecord):
    """A charge that fits: ``amount`` is held for the call.

    Attributes:
        amount: The amount held.
        available: What was effectively available before the hold.
        settlement: ``"session"`` or ``"external"``.
        limit: The session's limit, when known.
        ledger_seconds: How long the ledger took, when measured.
    """

    event: ClassVar[str] = "held"
    amount: str
    available: str
    settlement: str
    limit: str | None = None
    ledger_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockedRecord(DecisionRecord):
    """A check or charge refused.

    Attributes:
        rule: The rule that refused it (``"session_limit"``, ``"session_expired"``,
            ``"pricing"``, ``"session_unavailable"``, ``"ledger_unavailable"``, ...).
        error: The error's class name.
        message: The operator's message (may name sessions and endpoints; a model never
            sees it).
        amount: The amount asked for, when it was priced.
        available: What was effectively available, when known.
        limit: The session's limit, when known.
        ledger_seconds: How long the ledger took, when measured.
    """

    event: ClassVar[str] = "blocked"
    rule: str
    error: str
    message: str
    amount: str | None = None
    available: str | None = None
    limit: str | None = None
    ledger_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommittedRecord(DecisionRecord):
    """A hold turned into a charge.

    Attributes:
        amount: What was charged.
        held: What had been held (the rest went back to the budget).
        settlement: ``"session"`` (the session will show it) or ``"external"``.
        ledger_seconds: How long the ledger took, when measured.
    """

    event: ClassVar[str] = "committed"
    amount: str
    held: str
    settlement: str
    ledger_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasedRecord(DecisionRecord):
    """A hold given back: the call spent nothing.

    Attributes:
        amount: The amount that had been held.
        ledger_seconds: How long the ledger took, when measured.
    """

    event: ClassVar[str] = "released"
    amount: str
    ledger_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LapsedRecord(DecisionRecord):
    """A hold the ledger had lapsed when it was settled: it counts as spent in full.

    Attributes:
        amount: The hold's amount, now an external charge.
        operation: ``"commit"`` or ``"release"``: what the settling tried.
    """

    event: ClassVar[str] = "lapsed"
    amount: str
    operation: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciledRecord(DecisionRecord):
    """Committed ``"session"`` charges the server was seen to absorb.

    Derived from the ledger's unreflected total before and after a new reading: a guard
    reports what its own observation dropped, so with a ledger shared by processes the
    same absorption may be reported by another process instead.

    Attributes:
        amount: The total absorbed.
        server_available: The server's available amount in that reading.
    """

    event: ClassVar[str] = "reconciled"
    amount: str
    server_available: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerFailureRecord(DecisionRecord):
    """A shared ledger could not be reached.

    Attributes:
        operation: ``"reserve"``, ``"commit"``, ``"release"`` or ``"totals"``.
        error: The error's class name.
        message: The operator's message.
        rule: ``"ledger_unavailable"`` (or the error's rule).
    """

    event: ClassVar[str] = "ledger_failure"
    operation: str
    error: str
    message: str
    rule: str = "ledger_unavailable"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFailureRecord(DecisionRecord):
    """GetPaymentSession failed (or its answer could not be parsed).

    Attributes:
        rule: The error's rule (``"session_unavailable"``, ``"session_not_found"``, ...).
        error: The error's class name.
        message: The operator's message.
        seconds: How long the call took.
    """

    event: ClassVar[str] = "session_failure"
    rule: str
    error: str
    message: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReadRecord(DecisionRecord):
    """GetPaymentSession answered.

    Attributes:
        server_available: The server's available amount.
        limit: The session's limit, when the service sent one.
        seconds: How long the call took.
    """

    event: ClassVar[str] = "session_read"
    server_available: str
    limit: str | None
    seconds: float


_TYPES: dict[str, type[DecisionRecord]] = {
    kind.event: kind
    for kind in (
        AllowedRecord,
        HeldRecord,
        BlockedRecord,
        CommittedRecord,
        ReleasedRecord,
        LapsedRecord,
        ReconciledRecord,
        LedgerFailureRecord,
        SessionFailureRecord,
        SessionReadRecord,
    )
}


def record_from_dict(data: Mapping[str, Any]) -> DecisionRecord:
    """The record a :meth:`DecisionRecord.to_dict` dict describes (extra keys are ignored).

    Raises:
        ValueError: Unknown event, or missing or unknown fields.
    """
    kind = _TYPES.get(str(data.get("event")))
    if kind is None:
        raise ValueError(f"unknown event {data.get('event')!r}")
    names = {item.name for item in dataclasses.fields(kind)}
    try:
        return kind(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise ValueError(f"not a {kind.event} record: {exc}") from exc


@runtime_checkable
class DecisionSink(Protocol):
    """Where records go: anything with this one method."""

    def emit(self, record: DecisionRecord) -> None:
        """Take one record. Called in the deciding thread: keep it quick."""
        ...  # pragma: no cover


_LEVELS: dict[str, int] = {
    "allowed": logging.DEBUG,
    "held": logging.DEBUG,
    "committed": logging.DEBUG,
    "released": logging.DEBUG,
    "reconciled": logging.DEBUG,
    "session_read": logging.DEBUG,
    "blocked": logging.INFO,
    "lapsed": logging.WARNING,
    "ledger_failure": logging.WARNING,
    "session_failure": logging.WARNING,
}


class LoggingSink:
    """The default sink: one log record per event on the ``spendguard.decisions`` logger.

    Levels: ``allowed``, ``held``, ``committed``, ``released``, ``reconciled`` and
    ``session_read`` at DEBUG; ``blocked`` at INFO; ``lapsed``, ``ledger_failure`` and
    ``session_failure`` at WARNING. Every field goes into ``extra`` as ``spendguard_<field>``
    (``spendguard_event``, ``spendguard_rule``, ``spendguard_amount``...), and the record
    itself as ``spendguard_record``, for structured (JSON) log handlers.

    Args:
        logger: The logger, default ``logging.getLogger("spendguard.decisions")``.
        levels: Overrides of the level per event name.
    """

    def __init__(
        self, logger: logging.Logger | None = None, levels: Mapping[str, int] | None = None
    ) -> None:
        self.logger = logger or logging.getLogger("spendguard.decisions")
        self._levels = collections.defaultdict(lambda: logging.INFO, {**_LEVELS, **(levels or {})})

    def enabled_for(self, event: str) -> bool:
        """Whether the logger would keep a record of ``event`` (checked before building it)."""
        return self.logger.isEnabledFor(self._levels[event])

    def emit(self, record: DecisionRecord) -> None:
        """Log ``record`` with its fields as ``extra``."""
        fields = record.to_dict()
        extra = {f"spendguard_{name}": value for name, value in fields.items()}
        extra["spendguard_record"] = record
        self.logger.log(
            self._levels.get(record.event, logging.INFO),
            "%s",
            _describe(fields),
            extra=extra,
        )


def _describe(fields: Mapping[str, Any]) -> str:
    parts = [str(fields["event"])]
    for name in ("tool", "amount", "currency", "rule", "settlement", "operation", "hold_id"):
        value = fields.get(name)
        if value is not None:
            parts.append(f"{name}={value}")
    parts.append(f"session={fields['session_id']}")
    message = fields.get("message") or _EXPLAIN.get(str(fields["event"]))
    if message:
        parts.append(f"- {message}")
    return " ".join(parts)


_EXPLAIN = {
    "lapsed": "the hold was no longer in the ledger when settled: its lease ran out and the "
    "ledger counts its full amount as spent (or the ledger lost its data and was reopened "
    "since, and only the payment service's figures count it)",
}
