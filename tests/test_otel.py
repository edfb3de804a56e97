"""The OpenTelemetry sink, read back through the SDK's in-memory exporter and reader."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import PaymentSessionFixture
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from spendguard import BudgetExceededError, SessionError, SpendGuard
from spendguard.emulator import Faults
from spendguard.otel import OTelSink


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    sink: OTelSink

    def metric(self, name: str) -> Any:
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        return metric
        raise AssertionError(f"no metric {name}")

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        return {frozenset(p.attributes.items()): p for p in self.metric(name).data.data_points}


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    sink = OTelSink(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Telemetry(spans, reader, tracer_provider, sink)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def test_a_span_per_decision_inside_the_callers_span(
    payment_session: PaymentSessionFixture, telemetry: Telemetry
) -> None:
    guard = payment_session.guard(sinks=[telemetry.sink], settlement="external")
    tracer = telemetry.tracer_provider.get_tracer("agent")
    with tracer.start_as_current_span("agent.run") as parent:
        guard.reserve("0.05", tool="search").commit()
        with pytest.raises(BudgetExceededError):
            guard.reserve("20.00", tool="buy")
    spans = {s.name: s for s in telemetry.spans.get_finished_spans()}
    assert set(spans) == {
        "agent.run",
        "spendguard.held",
        "spendguard.committed",
        "spendguard.blocked",
    }
    run = parent.get_span_context()
    for name in ("spendguard.held", "spendguard.committed", "spendguard.blocked"):
        span = spans[name]
        assert span.parent is not None
        assert span.parent.span_id == run.span_id
        assert span.context.trace_id == run.trace_id
    held = spans["spendguard.held"].attributes or {}
    assert held["spendguard.amount"] == "0.05"  # exact, a string
    assert held["spendguard.currency"] == "USD"
    assert held["spendguard.tool"] == "search"
    assert held["spendguard.session.id"] == payment_session.session_id
    blocked = spans["spendguard.blocked"]
    assert (blocked.attributes or {})["spendguard.rule"] == "session_limit"
    assert blocked.status.status_code == StatusCode.UNSET  # a block is a decision, not an error
    held_span = spans["spendguard.held"]
    assert held_span.start_time is not None
    assert held_span.end_time is not None
    assert held_span.start_time <= held_span.end_time


def test_every_metric_has_the_right_value(
    payment_session: PaymentSessionFixture, telemetry: Telemetry, agentcore_faults: Faults
) -> None:
    guard = payment_session.guard(sinks=[telemetry.sink], settlement="external")
    guard.reserve("1.25", tool="buy").commit("1.00")
    guard.reserve("2.00", tool="buy").release()
    assert guard.check("0.50", tool="search").allowed
    with pytest.raises(BudgetExceededError):
        guard.reserve("9.50", tool="buy")  # 9.00 left

    decisions = telemetry.points("spendguard.decision.count")
    usd = ("spendguard.currency", "USD")
    assert (
        decisions[
            frozenset({("spendguard.outcome", "held"), usd, ("spendguard.tool", "buy")})
        ].value
        == 2
    )
    assert (
        decisions[
            frozenset({("spendguard.outcome", "allowed"), usd, ("spendguard.tool", "search")})
        ].value
        == 1
    )
    blocked = frozenset(
        {
            ("spendguard.outcome", "blocked"),
            usd,
            ("spendguard.tool", "buy"),
            ("spendguard.rule", "session_limit"),
        }
    )
    assert decisions[blocked].value == 1
    assert telemetry.metric("spendguard.decision.count").unit == "{decision}"

    held = telemetry.points("spendguard.amount.held")
    assert held[frozenset({usd, ("spendguard.tool", "buy")})].value == pytest.approx(3.25)
    committed = telemetry.points("spendguard.amount.committed")
    key = frozenset({usd, ("spendguard.tool", "buy"), ("spendguard.settlement", "external")})
    assert committed[key].value == pytest.approx(1.00)
    assert telemetry.metric("spendguard.amount.committed").unit == "{currency_unit}"

    available = telemetry.points("spendguard.session.available")
    session = frozenset({("spendguard.session.id", payment_session.session_id), usd})
    assert available[session].value == pytest.approx(9.00)  # as of the last decision

    reads = telemetry.points("spendguard.session.read.duration")
    (ok,) = reads.values()
    assert ok.count == 1
    assert telemetry.metric("spendguard.session.read.duration").unit == "s"

    ledger = telemetry.points("spendguard.ledger.operation.duration")
    assert ledger[frozenset({("spendguard.ledger.operation", "decide")})].count == 4
    assert ledger[frozenset({("spendguard.ledger.operation", "commit")})].count == 1
    assert ledger[frozenset({("spendguard.ledger.operation", "release")})].count == 1

    agentcore_faults.fail("GetPaymentSession", "AccessDeniedException", times=2)
    with pytest.raises(SessionError):
        guard.refresh()
    failure = frozenset(
        {("error.type", "SessionAccessDeniedError"), ("spendguard.rule", "session_unavailable")}
    )
    assert telemetry.points("spendguard.session.read.failure.count")[failure].value == 1
    assert telemetry.points("spendguard.session.read.duration")[failure].count == 1
    spans = [
        s for s in telemetry.spans.get_finished_spans() if s.name == "spendguard.session_failure"
    ]
    assert spans[0].status.status_code == StatusCode.ERROR


def test_ledger_failures_are_counted(
    payment_session: PaymentSessionFixture, telemetry: Telemetry
) -> None:
    from test_events import SwitchableLedger  # noqa: PLC0415

    ledger = SwitchableLedger()
    guard = payment_session.guard(sinks=[telemetry.sink], ledger=ledger)
    guard.check("0.01")
    ledger.broken = True
    with pytest.raises(Exception, match="switched off"):
        guard.reserve("0.01", tool="buy")
    key = frozenset(
        {("spendguard.ledger.operation", "reserve"), ("error.type", "LedgerUnavailableError")}
    )
    assert telemetry.points("spendguard.ledger.failure.count")[key].value == 1


def test_without_an_sdk_the_sink_costs_nothing_and_breaks_nothing(
    payment_session: PaymentSessionFixture,
) -> None:
    guard = SpendGuard(
        payment_session.arn,
        payment_session.session_id,
        user_id=payment_session.user_id,
        client=payment_session.client,
        sinks=[OTelSink()],  # the global providers: no-ops, nothing configured
    )
    guard.reserve("0.05", tool="search").commit()
    assert guard.snapshot().held.amount == 0
