"""Decision records: every event on both ledgers, and sinks that fail or filter."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from decimal import Decimal as D
from typing import Any

import pytest
from conftest import PaymentSessionFixture
from redis_server import RedisServer, redis_binary
from support import Clock

from spendguard import (
    BudgetExceededError,
    InMemoryLedger,
    Ledger,
    LedgerUnavailableError,
    SessionError,
    SpendGuard,
)
from spendguard.emulator import Faults
from spendguard.events import (
    AllowedRecord,
    CommittedRecord,
    DecisionRecord,
    HeldRecord,
    LoggingSink,
    record_from_dict,
)

ALL_EVENTS = {
    "allowed",
    "held",
    "blocked",
    "committed",
    "released",
    "lapsed",
    "reconciled",
    "ledger_failure",
    "session_failure",
    "session_read",
}


class Recording:
    """A sink that keeps every record."""

    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []

    def emit(self, record: DecisionRecord) -> None:
        self.records.append(record)

    def of(self, event: str) -> list[Any]:
        return [r for r in self.records if r.event == event]


class SwitchableLedger(InMemoryLedger):
    """The in-memory ledger, which can be told to fail as a shared one does when down."""

    broken = False

    def reserve(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            raise LedgerUnavailableError("ledger switched off by the test")
        return super().reserve(*args, **kwargs)


def _memory() -> tuple[Ledger, Callable[[], None]]:
    ledger = SwitchableLedger()

    def down() -> None:
        ledger.broken = True

    return ledger, down


@pytest.fixture
def lone_server() -> Iterator[RedisServer]:
    server = RedisServer(redis_binary())
    server.start()
    yield server
    server.close()


def drive_every_event(
    s: PaymentSessionFixture,
    ledger: Ledger,
    down: Callable[[], None],
    faults: Faults,
    *,
    redis: bool = False,
) -> Recording:
    """One guard through every event, in the order an operator would meet them."""
    sink = Recording()
    clock = Clock()
    guard = s.guard(ledger=ledger, sinks=[sink], timer=clock.timer, hold_lease=60)
    assert guard.check("1.00", tool="probe").allowed  # session_read, allowed
    assert not guard.check("11.00", tool="probe").allowed  # blocked
    paid = guard.reserve("2.00", tool="buy", settlement="session")  # held
    receipt = s.pay("2.00")
    paid.commit(receipt_time=receipt["updatedAt"])  # committed
    guard.reserve("1.00", tool="buy").release()  # held, released
    with pytest.raises(BudgetExceededError):
        guard.reserve("9.00", tool="buy")  # blocked: 8.00 left
    guard.refresh()  # the server now shows the 2.00
    assert guard.check("0.01").allowed  # the ledger sees it: reconciled
    if redis:  # Redis runs leases on its own clock: a short lease, waited out
        short = s.guard(ledger=ledger, sinks=[sink], hold_lease=0.2)
        slow = short.reserve("0.50", tool="slow")
        time.sleep(0.5)
    else:
        slow = guard.reserve("0.50", tool="slow")
    clock.advance(61)  # past the lease (and the cached reading goes stale)
    slow.commit()  # lapsed
    faults.fail("GetPaymentSession", "AccessDeniedException", times=3)
    with pytest.raises(SessionError):
        guard.reserve("0.10", tool="buy")  # session_failure, blocked
    faults.clear()
    down()
    with pytest.raises(LedgerUnavailableError):
        guard.reserve("0.10", tool="buy")  # ledger_failure, blocked
    return sink


def check_every_event(sink: Recording, s: PaymentSessionFixture) -> None:
    assert {r.event for r in sink.records} == ALL_EVENTS
    assert {r.session_id for r in sink.records} == {s.session_id}
    assert {r.currency for r in sink.records} == {"USD"}
    allowed = sink.of("allowed")[0]
    # Amounts are exact; a shared ledger may drop trailing zeros ("10" for "10.00").
    assert (allowed.tool, allowed.amount, D(allowed.available), allowed.limit) == (
        "probe",
        "1.00",
        10,
        "10.00",
    )
    blocked = sink.of("blocked")
    assert [(b.tool, b.rule, b.amount) for b in blocked] == [
        ("probe", "session_limit", "11.00"),
        ("buy", "session_limit", "9.00"),
        ("buy", "session_unavailable", "0.10"),
        ("buy", "ledger_unavailable", "0.10"),
    ]
    assert D(blocked[1].available) == D("8.00")
    held = sink.of("held")
    assert [(h.amount, D(h.available), h.settlement) for h in held[:2]] == [
        ("2.00", 10, "session"),
        ("1.00", 8, "session"),
    ]
    (committed,) = sink.of("committed")
    assert (committed.hold_id, committed.amount) == (held[0].hold_id, "2.00")
    assert committed.held == "2.00"
    (released,) = sink.of("released")
    assert (released.hold_id, released.amount) == (held[1].hold_id, "1.00")
    (reconciled,) = sink.of("reconciled")
    assert (D(reconciled.amount), D(reconciled.server_available)) == (2, 8)
    (lapsed,) = sink.of("lapsed")
    assert (lapsed.tool, lapsed.amount, lapsed.operation) == ("slow", "0.50", "commit")
    (failure,) = sink.of("session_failure")
    assert (failure.rule, failure.error) == ("session_unavailable", "SessionAccessDeniedError")
    (ledger_failure,) = sink.of("ledger_failure")
    assert (ledger_failure.operation, ledger_failure.tool) == ("reserve", "buy")
    reads = sink.of("session_read")
    assert [r.server_available for r in reads][:3] == ["10.00", "8.00", "8.00"]
    assert all(r.seconds >= 0 for r in reads)
    walls = [r.wall_time for r in sink.records]
    assert walls == sorted(walls)
    for record in sink.records:  # every record survives a round trip through JSON
        assert record_from_dict(record.to_dict()) == record


def test_every_event_on_the_in_memory_ledger(
    payment_session: PaymentSessionFixture, agentcore_faults: Faults
) -> None:
    ledger, down = _memory()
    sink = drive_every_event(payment_session, ledger, down, agentcore_faults)
    check_every_event(sink, payment_session)


@pytest.mark.redis
def test_every_event_on_the_redis_ledger(
    payment_session: PaymentSessionFixture, agentcore_faults: Faults, lone_server: RedisServer
) -> None:
    from spendguard.redis_ledger import RedisLedger  # noqa: PLC0415

    ledger = RedisLedger.from_url(lone_server.url, prefix=f"t-{uuid.uuid4().hex}")
    sink = drive_every_event(
        payment_session, ledger, lone_server.stop, agentcore_faults, redis=True
    )
    check_every_event(sink, payment_session)
    # Shared-ledger latencies are measured for sinks that take every record.
    assert all(r.ledger_seconds is not None for r in sink.of("held"))


def test_a_failing_sink_never_breaks_a_decision(
    payment_session: PaymentSessionFixture, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def emit(self, record: DecisionRecord) -> None:
            raise RuntimeError("disk full")

    after = Recording()
    guard = payment_session.guard(sinks=[Broken(), after])
    with caplog.at_level(logging.WARNING, logger="spendguard"):
        hold = guard.reserve("1.00", tool="buy")
        hold.commit()
    assert hold.state == "committed"
    assert [r.event for r in after.records] == ["session_read", "held", "committed"]
    failures = [r for r in caplog.records if "decision sink" in r.getMessage()]
    assert len(failures) == 3
    assert failures[0].exc_info is not None


def test_the_default_sink_logs_structured_records(
    payment_session: PaymentSessionFixture, caplog: pytest.LogCaptureFixture
) -> None:
    guard = payment_session.guard()
    with caplog.at_level(logging.DEBUG, logger="spendguard.decisions"):
        guard.reserve("1.00", tool="buy").commit()
        guard.check("20.00", tool="buy")
    records = [r for r in caplog.records if r.name == "spendguard.decisions"]
    assert [(r.spendguard_event, r.levelname) for r in records] == [  # type: ignore[attr-defined]
        ("session_read", "DEBUG"),
        ("held", "DEBUG"),
        ("committed", "DEBUG"),
        ("blocked", "INFO"),
    ]
    held = records[1]
    assert held.spendguard_amount == "1.00"  # type: ignore[attr-defined]
    assert isinstance(held.spendguard_record, HeldRecord)  # type: ignore[attr-defined]
    assert "held tool=buy amount=1.00 currency=USD" in held.getMessage()
    assert records[3].spendguard_rule == "session_limit"  # type: ignore[attr-defined]


def test_a_logger_at_warning_builds_no_records(payment_session: PaymentSessionFixture) -> None:
    built: list[str] = []

    class Gated(LoggingSink):
        def emit(self, record: DecisionRecord) -> None:
            built.append(record.event)
            super().emit(record)

    logger = logging.getLogger("spendguard.test-gated")
    logger.setLevel(logging.WARNING)
    guard = payment_session.guard(sinks=[Gated(logger)])
    guard.reserve("1.00", tool="buy").commit()
    assert built == []
    logger.setLevel(logging.DEBUG)
    guard.reserve("1.00", tool="buy").commit()
    assert built == ["held", "committed"]


def test_records_are_frozen_and_amounts_exact() -> None:
    record = CommittedRecord(
        session_id="s",
        currency="USD",
        wall_time=1.0,
        mono_time=2.0,
        amount="0.000001",
        held="0.10",
        settlement="external",
    )
    with pytest.raises(AttributeError):
        record.amount = "1"  # type: ignore[misc]
    assert Decimal(record.to_dict()["amount"]) == Decimal("0.000001")
    assert record_from_dict({**record.to_dict(), "prev": "x"}) == record
    with pytest.raises(ValueError, match="unknown event"):
        record_from_dict({"event": "spent"})
    with pytest.raises(ValueError, match="not a allowed record"):
        record_from_dict({"event": "allowed", "session_id": "s"})
    assert AllowedRecord.event == "allowed"


@pytest.mark.parametrize("sinks", ["a sink", [object()], 3])
def test_bad_sinks_are_refused(payment_session: PaymentSessionFixture, sinks: Any) -> None:
    with pytest.raises(ValueError, match="sink"):
        SpendGuard(payment_session.arn, payment_session.session_id, sinks=sinks)


def test_a_policy_refusal_is_recorded_with_its_rule(payment_session: PaymentSessionFixture) -> None:
    from spendguard.policies import Policies, PolicyViolationError  # noqa: PLC0415

    sink = Recording()
    guard = payment_session.guard(sinks=[sink], policies=Policies(per_call_max="1.00"))
    with pytest.raises(PolicyViolationError):
        guard.reserve("2.00", tool="buy")
    (blocked,) = sink.of("blocked")
    assert (blocked.rule, blocked.tool, blocked.amount) == ("per_call_max", "buy", "2.00")
