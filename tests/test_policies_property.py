"""Random calls through random policies on both ledgers: no limit is ever exceeded.

A reference model replays every operation: each decision must be the model's (the first rule
that does not fit, in the order per-call maximum, session limit, tool cap, windows), and after
every step the session, every tool cap and every rolling window (holds and commits counted)
stay within their limits; each soft threshold fires once, and only once crossed.

With the Redis ledger, windows follow Redis ``TIME``: the test moves no clock there and uses
windows much longer than one example, so every call of an example is inside every window.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import BudgetExceededError, InMemoryLedger, Ledger, Money, SpendGuard
from spendguard.policies import Policies, ThresholdEvent, ToolPolicy, Window
from spendguard.redis_ledger import RedisLedger

D = Decimal
TOOLS = (None, "a", "b")
_MONEY = st.sampled_from(["0", "0.10", "0.25", "0.50", "0.75", "1.00", "2.00"])


@dataclass(frozen=True)
class Plan:
    available: str
    per_call_max: str | None
    tools: dict[str, tuple[str | None, str | None]]  # name -> (per_call_max, cap)
    windows: list[tuple[float, str | None, int | None, str | None]]
    thresholds: list[str]


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    optional = st.none() | _MONEY
    tools = {
        name: (draw(optional), draw(optional))
        for name in draw(st.lists(st.sampled_from(["a", "b"]), unique=True))
    }
    windows = []
    for _ in range(draw(st.integers(0, 3))):
        amount = draw(st.none() | st.sampled_from(["0.50", "1.00", "1.50", "3.00"]))
        count = draw(st.integers(1, 5)) if amount is None else draw(st.none() | st.integers(1, 5))
        seconds = draw(st.sampled_from([30.0, 60.0, 3600.0]))
        windows.append((seconds, amount, count, draw(st.sampled_from(TOOLS))))
    return Plan(
        available=draw(st.sampled_from(["1.00", "3.00", "10.00"])),
        per_call_max=draw(st.none() | st.sampled_from(["0.50", "1.00"])),
        tools=tools,
        windows=windows,
        thresholds=draw(st.lists(st.sampled_from(["0.5", "0.8", "0.95"]), unique=True)),
    )


@dataclass(frozen=True)
class Op:
    kind: str  # reserve | commit | release | wait
    amount: str = "0"
    tool: str | None = None
    pick: int = 0
    seconds: float = 0.0


OPS = st.lists(
    st.one_of(
        st.builds(Op, st.just("reserve"), _MONEY, st.sampled_from(TOOLS)),
        st.builds(Op, st.just("reserve"), _MONEY, st.sampled_from(TOOLS)),
        st.builds(Op, st.just("commit"), _MONEY, pick=st.integers(0, 7)),
        st.builds(Op, st.just("release"), pick=st.integers(0, 7)),
        st.builds(Op, st.just("wait"), seconds=st.sampled_from([1.0, 29.0, 30.0, 45.0, 600.0])),
    ),
    max_size=30,
)


@dataclass
class Call:
    at: float
    tool: str | None
    amount: Decimal  # held, then the actual once committed, 0 once released
    released: bool = False


@dataclass
class Model:
    plan: Plan
    calls: list[Call] = field(default_factory=list)
    ever_crossed: set[tuple[str, str | None, Decimal]] = field(default_factory=set)

    def _tool_use(self, tool: str) -> Decimal:
        return sum((c.amount for c in self.calls if c.tool == tool), D(0))

    def _window(self, seconds: float, tool: str | None, now: float) -> tuple[Decimal, int]:
        inside = [
            c
            for c in self.calls
            if now - seconds < c.at <= now and not c.released and (tool is None or c.tool == tool)
        ]
        return sum((c.amount for c in inside), D(0)), len(inside)

    def expect(self, amount: Decimal, tool: str | None, now: float) -> str | None:
        plan = self.plan
        spec = plan.tools.get(tool or "", (None, None))
        maxima = [D(m) for m in (plan.per_call_max, spec[0]) if m is not None]
        if maxima and amount > min(maxima):
            return "per_call_max"
        used = sum((c.amount for c in self.calls), D(0))
        if amount > D(plan.available) - used:
            return "session_limit"
        if spec[1] is not None and tool is not None and amount > D(spec[1]) - self._tool_use(tool):
            return "tool_cap"
        for seconds, limit, count, only in plan.windows:
            if only is not None and only != tool:
                continue
            spent, calls = self._window(seconds, only, now)
            if limit is not None and amount > D(limit) - spent:
                return "window_amount"
            if count is not None and calls >= count:
                return "window_count"
        return None

    def crossed(self) -> set[tuple[str, str | None, Decimal]]:
        """The thresholds crossed now: session use is its limit (10.00) less what is left."""
        plan, out = self.plan, set()
        session_use = D("10.00") - D(plan.available) + sum((c.amount for c in self.calls), D(0))
        for text in plan.thresholds:
            fraction = D(text)
            if session_use >= D("10.00") * fraction:
                out.add(("session_limit", None, fraction))
            for name, (_, cap) in plan.tools.items():
                if cap is not None and D(cap) > 0 and self._tool_use(name) >= D(cap) * fraction:
                    out.add(("tool_cap", name, fraction))
        return out

    def check_thresholds(self, events: list[ThresholdEvent]) -> None:
        """Fired once each, only when crossed, and every threshold crossed has fired."""
        fired = [(e.rule, e.tool, e.fraction) for e in events]
        assert len(fired) == len(set(fired))
        assert self.crossed() <= set(fired)
        if fired:
            self.ever_crossed |= self.crossed()
            assert set(fired) <= self.ever_crossed

    def check_invariants(self, now: float) -> None:
        plan = self.plan
        assert sum((c.amount for c in self.calls), D(0)) <= D(plan.available)
        for name, (_, cap) in plan.tools.items():
            if cap is not None:
                assert self._tool_use(name) <= D(cap)
        for seconds, limit, count, only in plan.windows:
            for end in {c.at for c in self.calls} | {now}:
                spent, calls = self._window(seconds, only, end)
                assert limit is None or spent <= D(limit)
                assert count is None or calls <= count


def build(plan: Plan, ledger: Ledger, clock: Clock, events: list[ThresholdEvent]) -> SpendGuard:
    policies = Policies(
        per_call_max=plan.per_call_max,
        tools={n: ToolPolicy(per_call_max=m, cap=c) for n, (m, c) in plan.tools.items()},
        windows=[Window(s, amount=a, count=n, tool=t) for s, a, n, t in plan.windows],
        thresholds=plan.thresholds,
        on_threshold=events.append,
    )
    session = Session(max_spend="10.00", available=plan.available, expiry_minutes=7 * 24 * 60)
    return SpendGuard(
        ARN,
        SID,
        client=ScriptedClient(session),
        ledger=ledger,
        policies=policies,
        settlement="external",  # the server never sees it: the session figure stays put
        hold_lease=10**7,
        **clock.kwargs,
    )


def play(plan: Plan, ops: list[Op], ledger: Ledger, *, clock_moves: bool) -> None:
    clock, events = Clock(), []  # type: ignore[var-annotated]
    guard = build(plan, ledger, clock, events)
    model, holds = Model(plan), []
    for op in ops:
        now = clock.mono if clock_moves else 0.0
        if op.kind == "wait":
            if clock_moves:
                clock.advance(op.seconds)
            continue
        if op.kind == "reserve":
            amount = D(op.amount)
            expected = model.expect(amount, op.tool, now)
            try:
                hold = guard.reserve(op.amount, tool=op.tool)
            except BudgetExceededError as error:
                rule: str | None = error.rule
            else:
                rule = None
            assert rule == expected
            if rule is None:
                call = Call(now, op.tool, amount)
                model.calls.append(call)
                holds.append((hold, call))
                model.check_thresholds(events)
        elif holds:
            hold, call = holds.pop(op.pick % len(holds))
            if op.kind == "release":
                hold.release()
                call.amount, call.released = D(0), True
            else:
                actual = min(D(op.amount), call.amount)
                hold.commit(actual)
                call.amount = actual
        model.check_invariants(now)
        model.ever_crossed |= model.crossed()


_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(plans(), OPS)
def test_in_memory_ledger_never_exceeds_a_policy(plan: Plan, ops: list[Op]) -> None:
    play(plan, ops, InMemoryLedger(), clock_moves=True)


@pytest.mark.redis
@_SETTINGS
@given(plan=plans(), ops=OPS)
def test_redis_ledger_never_exceeds_a_policy(redis_url: str, plan: Plan, ops: list[Op]) -> None:
    ledger = RedisLedger.from_url(redis_url, prefix=f"prop-{uuid.uuid4().hex}")
    play(plan, ops, ledger, clock_moves=False)


def test_the_model_agrees_on_a_known_case() -> None:
    plan = Plan("10.00", "1.00", {"a": (None, "0.50")}, [(60.0, None, 1, "b")], [])
    model = Model(plan)
    assert model.expect(D("1.01"), None, 0.0) == "per_call_max"
    assert model.expect(D("0.60"), "a", 0.0) == "tool_cap"
    model.calls.append(Call(0.0, "b", D("0.10")))
    assert model.expect(D("0.10"), "b", 59.0) == "window_count"
    assert model.expect(D("0.10"), "b", 60.0) is None
    assert Money.of(plan.available) == Money.of("10.00")
