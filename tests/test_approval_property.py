"""Random calls through random approval rules and answers, on both ledgers.

A reference model replays every call: a call at or below its threshold is held as usual; above
it the approver's answer decides (yes, no, an error, or a yes after the timeout). After every
call nothing stays held, the session limit is never exceeded, and what is spent is exactly
what the model says. Separately, random answers (right, replayed, for another request,
malformed) reach ``decide``: an approval is accepted once per request, never for another.

With the Redis ledger, leases follow Redis ``TIME``: a late answer finds its hold still there
and releases it, where the in-memory ledger (on the test's clock) has lapsed it into a charge.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import BudgetExceededError, InMemoryLedger, Ledger, Money, SpendGuard
from spendguard.approval import ApprovalRejectedError, ApprovalRequest, Approvals
from spendguard.redis_ledger import RedisLedger

D = Decimal
BUDGET = D("6")
AMOUNTS = st.sampled_from(["0.25", "0.50", "0.75", "1.00", "1.50", "2.50"])
VERDICTS = st.sampled_from(["yes", "no", "raise", "late"])
CALLS = st.lists(st.tuples(AMOUNTS, st.sampled_from(["a", "b"]), VERDICTS), max_size=20)
THRESHOLDS = st.tuples(st.none() | AMOUNTS, st.none() | AMOUNTS)


class Refused(Exception):
    """The approver failed."""


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def ledger_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_ledger(kind: str, request: pytest.FixtureRequest) -> Ledger:
    if kind == "memory":
        return InMemoryLedger()
    url = request.getfixturevalue("redis_url")
    return RedisLedger.from_url(url, prefix=f"t-{uuid.uuid4().hex}")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=CALLS, thresholds=THRESHOLDS)
def test_random_calls_keep_every_invariant(
    ledger_kind: str,
    request: pytest.FixtureRequest,
    calls: list[tuple[str, str, str]],
    thresholds: tuple[str | None, str | None],
) -> None:
    clock = Clock()
    guard = SpendGuard(
        ARN,
        SID,
        client=ScriptedClient(Session(available=str(BUDGET))),
        ledger=make_ledger(ledger_kind, request),
        settlement="external",
        **clock.kwargs,
    )
    above, for_b = thresholds
    tools = {} if for_b is None else {"b": for_b}
    verdict = ["yes"]

    def approver(request_: ApprovalRequest) -> bool:
        if verdict[0] == "raise":
            raise Refused
        if verdict[0] == "late":
            clock.advance(61)
        return verdict[0] != "no"

    approvals = Approvals(
        above=above, tools=tools, approver=approver, timeout=60, timer=clock.timer
    )
    spent = D(0)
    for number, (amount, tool, said) in enumerate(calls):
        verdict[0] = said
        asked = approvals.required(Money.of(amount), tool)
        fits = spent + D(amount) <= BUDGET
        outcome = attempt(approvals, guard, amount, tool, number)
        if outcome == "session_limit":
            assert not fits
        elif outcome == "raised":
            assert asked
            assert said == "raise"
        elif outcome in ("approval_rejected", "approval_timeout"):
            assert asked
            assert (said, outcome) in {("no", "approval_rejected"), ("late", "approval_timeout")}
            if said == "late" and ledger_kind == "memory":
                spent += D(amount)  # lapsed while waiting: counted, never forgotten
        else:
            assert outcome == "charged"
            assert fits
            assert not asked or said == "yes"
            spent += D(amount)
        snap = guard.snapshot()
        assert snap.held.amount == 0
        assert snap.external.amount == spent
        assert spent <= BUDGET


def attempt(approvals: Approvals, guard: SpendGuard, amount: str, tool: str, n: int) -> str:
    """Reserve through ``approvals`` and commit: what happened, as a rule or a word."""
    try:
        hold = approvals.reserve(guard, amount, tool=tool, arguments={"n": n})
    except (BudgetExceededError, ApprovalRejectedError) as error:
        return error.rule
    except Refused:
        return "raised"
    hold.commit()
    return "charged"


ANSWERS = st.sampled_from(["approve", "reject", "replay", "other", "malformed"])


@given(steps=st.lists(st.tuples(st.integers(0, 3), ANSWERS), max_size=30))
def test_an_approval_is_accepted_once_and_only_for_its_request(
    steps: list[tuple[int, str]],
) -> None:
    approvals = Approvals(above="1")
    requests = [
        approvals.request(Money.of("2"), tool="buy", arguments={"n": n}, call=f"c{n}")
        for n in range(4)
    ]
    accepted: set[str] = set()
    for index, kind in steps:
        request = requests[index]
        other = requests[(index + 1) % len(requests)]
        reply: object = {
            "approve": request.approve(),
            "reject": request.reject(),
            "replay": request.approve(),
            "other": other.approve(),
            "malformed": {"request_id": request.id, "approved": "yes"},
        }[kind]
        outcome = approvals.decide(request, reply)
        if kind == "other":
            assert outcome is None
        elif kind in ("approve", "replay") and request.id not in accepted:
            assert outcome is True
            accepted.add(request.id)
        else:
            assert outcome is False
