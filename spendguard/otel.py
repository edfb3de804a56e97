"""OpenTelemetry: a span per decision and metrics of the budget and of the guard's health.

Needs only ``opentelemetry-api`` (the ``otel`` extra); without an SDK configured every call
is a no-op. Pass an :class:`OTelSink` to the guard (``SpendGuard(..., sinks=[LoggingSink(),
OTelSink()])``).

**Spans**: one per record except ``session_read``, named ``spendguard.<event>``
(``spendguard.held``, ``spendguard.blocked``...), a child of the caller's current span, so it
shows inside the LangChain, Strands or OpenAI Agents trace that made the call. A span lasts
as long as the decision's ledger call when that was measured. Failures
(``ledger_failure``, ``session_failure``) end with an error status; a block is a decision,
not an error (``spendguard.outcome = "blocked"``, ``spendguard.rule``). Money is a string
attribute (``spendguard.amount = "0.05"``) beside ``spendguard.currency``: exact.

**Metrics** (names and units in the OpenTelemetry semantic-convention style):

* ``spendguard.decision.count`` (``{decision}``), counter by ``spendguard.outcome`` (allowed,
  held, blocked), ``spendguard.rule`` (blocks) and ``spendguard.tool``;
* ``spendguard.amount.held`` and ``spendguard.amount.committed`` (``{currency_unit}``),
  counters of the amounts held and charged;
* ``spendguard.session.available`` (``{currency_unit}``), gauge of the effective available
  amount per ``spendguard.session.id``, as of the session's last decision;
* ``spendguard.session.read.duration`` (``s``), histogram of GetPaymentSession latency
  (``error.type`` on failures), and ``spendguard.session.read.failure.count``
  (``{failure}``);
* ``spendguard.ledger.operation.duration`` (``s``), histogram of ledger latency per
  ``spendguard.ledger.operation`` (``decide``, ``commit``, ``release``), and
  ``spendguard.ledger.failure.count`` (``{failure}``).

``{currency_unit}`` is one unit of the currency named by the ``spendguard.currency``
attribute (1 USD). Metric values are floats, fine for dashboards and alerts; the exact amount
is the decimal string on the span and in the decision record. Ledger latencies are measured
only for sinks that take every record (as this one does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from spendguard.events import DecisionRecord

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover - tested by installing without the extra
    raise ImportError(
        'spendguard.otel needs OpenTelemetry: pip install "spendguard[otel]"'
    ) from exc

__all__ = ["OTelSink"]

_SCOPE = "spendguard"
_DECISIONS = frozenset({"allowed", "held", "blocked"})
_FAILURES = frozenset({"ledger_failure", "session_failure"})
_LEDGER_OPERATION = {
    "allowed": "decide",
    "held": "decide",
    "blocked": "decide",
    "committed": "commit",
    "released": "release",
}
_SPAN_FIELDS = (
    "amount",
    "available",
    "limit",
    "held",
    "settlement",
    "rule",
    "error",
    "operation",
    "server_available",
)


def _version() -> str:
    from spendguard import __version__  # noqa: PLC0415 - the package imports this module late

    return __version__


class OTelSink:
    """Sends decision records to OpenTelemetry as spans and metrics.

    Args:
        tracer_provider: Default the global one (``opentelemetry.trace``).
        meter_provider: Default the global one (``opentelemetry.metrics``).
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        version = _version()
        self._tracer = trace.get_tracer(_SCOPE, version, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, version, meter_provider=meter_provider)
        self._decisions = meter.create_counter(
            "spendguard.decision.count", unit="{decision}", description="Guard decisions"
        )
        self._held = meter.create_counter(
            "spendguard.amount.held", unit="{currency_unit}", description="Amounts held"
        )
        self._committed = meter.create_counter(
            "spendguard.amount.committed", unit="{currency_unit}", description="Amounts charged"
        )
        self._read_duration = meter.create_histogram(
            "spendguard.session.read.duration", unit="s", description="GetPaymentSession latency"
        )
        self._read_failures = meter.create_counter(
            "spendguard.session.read.failure.count",
            unit="{failure}",
            description="GetPaymentSession failures",
        )
        self._ledger_duration = meter.create_histogram(
            "spendguard.ledger.operation.duration", unit="s", description="Ledger latency"
        )
        self._ledger_failures = meter.create_counter(
            "spendguard.ledger.failure.count", unit="{failure}", description="Ledger failures"
        )
        self._lock = threading.Lock()
        self._available: dict[tuple[str, str], float] = {}
        meter.create_observable_gauge(
            "spendguard.session.available",
            callbacks=[self._observe_available],
            unit="{currency_unit}",
            description="Effective available per session, as of its last decision",
        )

    def emit(self, record: DecisionRecord) -> None:
        """Record ``record`` as a span and in the metrics."""
        fields = record.to_dict()
        if record.event != "session_read":
            self._span(record, fields)
        self._measure(record, fields)

    def _span(self, record: DecisionRecord, fields: dict[str, Any]) -> None:
        end = time.time_ns()
        seconds = fields.get("ledger_seconds")
        start = end - int(seconds * 1e9) if isinstance(seconds, float) else end
        span = self._tracer.start_span(f"spendguard.{record.event}", start_time=start)
        if not span.is_recording():  # no SDK, or not sampled: nothing to fill in
            return
        span.set_attributes(_attributes(record, fields))
        if record.event in _FAILURES:
            span.set_status(Status(StatusCode.ERROR, str(fields.get("message", ""))))
            span.set_attribute("error.type", str(fields.get("error")))
        span.end(end_time=end)

    def _measure(self, record: DecisionRecord, fields: dict[str, Any]) -> None:
        event = record.event
        money = {"spendguard.currency": record.currency}
        if record.tool is not None:
            money["spendguard.tool"] = record.tool
        if event in _DECISIONS:
            outcome = {"spendguard.outcome": event, **money}
            if event == "blocked":
                outcome["spendguard.rule"] = fields["rule"]
            self._decisions.add(1, outcome)
            self._track_available(record, fields)
        if event == "held":
            self._held.add(float(fields["amount"]), money)
        elif event == "committed":
            self._committed.add(
                float(fields["amount"]), {**money, "spendguard.settlement": fields["settlement"]}
            )
        elif event == "session_read":
            self._read_duration.record(fields["seconds"])
        elif event == "session_failure":
            failure = {"error.type": fields["error"], "spendguard.rule": fields["rule"]}
            self._read_duration.record(fields["seconds"], failure)
            self._read_failures.add(1, failure)
        elif event == "ledger_failure":
            operation = {"spendguard.ledger.operation": fields["operation"]}
            self._ledger_failures.add(1, {**operation, "error.type": fields["error"]})
        seconds = fields.get("ledger_seconds")
        if seconds is not None and event in _LEDGER_OPERATION:
            operation = {"spendguard.ledger.operation": _LEDGER_OPERATION[event]}
            self._ledger_duration.record(seconds, operation)

    def _track_available(self, record: DecisionRecord, fields: dict[str, Any]) -> None:
        available = fields.get("available")
        if available is None:
            return
        value = float(available)
        if record.event == "held":
            value -= float(fields["amount"])
        with self._lock:
            self._available[(record.session_id, record.currency)] = value

    def _observe_available(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            current = list(self._available.items())
        return [
            Observation(value, {"spendguard.session.id": sid, "spendguard.currency": currency})
            for (sid, currency), value in current
        ]

    def __repr__(self) -> str:
        return "OTelSink()"


def _attributes(record: DecisionRecord, fields: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "spendguard.session.id": record.session_id,
        "spendguard.currency": record.currency,
        "spendguard.outcome": record.event,
    }
    for name, key in (
        ("tool", "spendguard.tool"),
        ("call_key", "spendguard.call_key"),
        ("hold_id", "spendguard.hold.id"),
    ):
        if fields.get(name) is not None:
            attributes[key] = fields[name]
    for name in _SPAN_FIELDS:
        value = fields.get(name)
        if value is not None:
            attributes[f"spendguard.{name}"] = value
    return attributes
