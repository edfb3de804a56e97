"""One contract for ``admit``: the same policy assertions on InMemoryLedger and RedisLedger."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401

from spendguard._ledger import Limits, Mark, PolicyLedger, ServerView, WindowLimit
from spendguard._memory_ledger import InMemoryLedger
from spendguard._redis_ledger import RedisLedger

KEY = "arn:aws:bedrock-agentcore:us-east-1:123456789012:payment-manager/pm-1/session-1"
T = 1_800_000_000.0
NOW = 1000.0  # the in-memory ledger's monotonic now; Redis uses its own TIME
D = Decimal
VIEW = ServerView(D(10), D(0), T)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def ledger(request: pytest.FixtureRequest) -> PolicyLedger:
    if request.param == "memory":
        return InMemoryLedger()
    url = request.getfixturevalue("redis_url")
    return RedisLedger.from_url(url, prefix=f"admit-{uuid.uuid4().hex}")


def limits(
    tool: str | None = "t",
    cap: str | None = None,
    windows: tuple[WindowLimit, ...] = (),
    marks: tuple[Mark, ...] = (),
) -> Limits:
    horizon = max((w.seconds for w in windows), default=0.0)
    return Limits(tool, None if cap is None else D(cap), windows, marks, horizon)


def admit(ledger: PolicyLedger, hold_id: str, amount: str, lim: Limits, probe: bool = False):  # type: ignore[no-untyped-def]
    return ledger.admit(KEY, hold_id, D(amount), VIEW, "external", 600, NOW, lim, probe=probe)


def test_tool_cap_refuses_names_the_room_and_changes_nothing(ledger: PolicyLedger) -> None:
    lim = limits(cap="1")
    assert admit(ledger, "a", "0.7", lim).granted
    refused = admit(ledger, "b", "0.4", lim)
    assert (refused.granted, refused.rule, refused.room, refused.window) == (
        False,
        "tool_cap",
        D("0.3"),
        None,
    )
    assert ledger.totals(KEY, None, NOW).held == D("0.7")
    assert not ledger.release(KEY, "b", NOW)


def test_a_probe_decides_alike_and_holds_nothing(ledger: PolicyLedger) -> None:
    lim = limits(windows=(WindowLimit(3600.0, None, 1, None),))
    probe = admit(ledger, "p", "0.5", lim, probe=True)
    assert (probe.granted, probe.rule) == (False, None)
    assert admit(ledger, "a", "0.5", lim).granted
    probe = admit(ledger, "p", "0.5", lim, probe=True)
    assert (probe.rule, probe.window) == ("window_count", 0)
    assert ledger.totals(KEY, None, NOW).held == D("0.5")


def test_a_retried_admit_is_granted_once_and_counted_once(ledger: PolicyLedger) -> None:
    lim = limits(cap="1", windows=(WindowLimit(3600.0, D(1), 2, None),))
    assert admit(ledger, "a", "0.6", lim).granted
    assert admit(ledger, "a", "0.6", lim).granted  # the retry of a lost reply
    assert admit(ledger, "a", "0.7", lim).rule == "hold_exists"
    assert ledger.totals(KEY, None, NOW).held == D("0.6")
    assert admit(ledger, "b", "0.4", lim).granted
    assert admit(ledger, "c", "0", lim).rule == "window_count"  # a, b: 2 calls


def test_an_operator_drop_gives_the_cap_back_and_a_late_commit_takes_its_actual(
    ledger: PolicyLedger,
) -> None:
    lim = limits(cap="1")
    assert admit(ledger, "a", "0.8", lim).granted
    assert ledger.settle_stuck(KEY, "a", False, NOW) is not None  # type: ignore[attr-defined]
    assert admit(ledger, "probe", "1", lim, probe=True).rule is None
    assert ledger.commit(KEY, "a", D("0.5"), T, NOW)  # the call says it spent 0.5 after all
    refused = admit(ledger, "b", "0.6", lim)
    assert (refused.rule, refused.room) == ("tool_cap", D("0.5"))


def test_a_lapsed_hold_counts_in_full_against_caps_and_windows(ledger: PolicyLedger) -> None:
    lim = limits(cap="1", windows=(WindowLimit(3600.0, D("1.5"), None, None),))
    ledger.admit(KEY, "a", D("0.6"), VIEW, "external", 0, NOW, lim)  # lapses at once
    assert not ledger.commit(KEY, "a", D("0.1"), T, NOW + 1)
    assert admit(ledger, "b", "0.5", lim).rule == "tool_cap"
    assert admit(ledger, "c", "1.0", limits(tool="u", windows=lim.windows)).rule == (
        "window_amount"
    )


def test_marks_fire_once_each_in_order_of_crossing(ledger: PolicyLedger) -> None:
    marks = (
        Mark("session_limit:0.5", "session", D(5)),
        Mark("tool_cap:t:0.8", "tool", D("0.8")),
    )
    lim = limits(cap="1", marks=marks)
    assert admit(ledger, "a", "0.5", lim).fired == ()
    assert admit(ledger, "b", "0.3", lim).fired == ("tool_cap:t:0.8",)
    assert admit(ledger, "c", "4.2", limits(tool=None, marks=marks)).fired == ("session_limit:0.5",)
    ledger.release(KEY, "c", NOW)
    assert admit(ledger, "d", "4.2", limits(tool=None, marks=marks)).fired == ()


def test_windows_per_tool_and_guard_wide_count_release_and_commit(ledger: PolicyLedger) -> None:
    every, searches = WindowLimit(60.0, D(1), None, None), WindowLimit(60.0, None, 1, "s")
    search, other = limits(tool="s", windows=(every, searches)), limits(tool="x", windows=(every,))
    assert admit(ledger, "a", "0.6", search).granted
    assert admit(ledger, "b", "0.1", search).rule == "window_count"
    assert admit(ledger, "c", "0.5", other).rule == "window_amount"
    assert ledger.commit(KEY, "a", D("0.2"), T, NOW)
    assert admit(ledger, "c", "0.5", other).granted
    assert ledger.release(KEY, "c", NOW)
    assert admit(ledger, "d", "0.8", other).granted
    refused = admit(ledger, "e", "0.1", other)
    assert (refused.rule, refused.room, refused.window) == ("window_amount", D(0), 0)
    assert admit(ledger, "f", "0", search).rule == "window_count"
