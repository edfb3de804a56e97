"""Operator controls on both ledgers: list a session's holds, settle a stuck one, freeze it.

The same assertions run on InMemoryLedger and RedisLedger (a real redis-server); then the
guard's view of a frozen session, and the ``spendguard holds`` / ``session freeze`` commands.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from redis_server import free_port, redis_server_fixture, redis_url_fixture  # noqa: F401
from support import ARN, SID, Clock, ScriptedClient, Session

from spendguard import BudgetExceededError, InMemoryLedger, SpendGuard, SpendGuardError
from spendguard._ledger import Limits
from spendguard.cli import main
from spendguard.controls import HoldInfo, SessionControls, SessionFrozenError
from spendguard.gate import ToolGate
from spendguard.ledger import Ledger, OperatorLedger, ServerView
from spendguard.redis_ledger import RedisLedger

KEY = f"{ARN}/{SID}"
T = 1_800_000_000.0
NOW = 5000.0
D = Decimal
VIEW = ServerView(D(10), D(0), T)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def ledger(request: pytest.FixtureRequest) -> OperatorLedger:
    if request.param == "memory":
        return InMemoryLedger()
    url = request.getfixturevalue("redis_url")
    return RedisLedger.from_url(url, prefix=f"test-{uuid.uuid4().hex}")


def held(ledger: Ledger) -> tuple[Decimal, Decimal, Decimal]:
    t = ledger.totals(KEY, None, NOW)
    return t.held, t.unreflected + t.external, t.effective


def test_both_ledgers_have_operator_controls(ledger: OperatorLedger) -> None:
    assert isinstance(ledger, OperatorLedger)
    assert SessionControls(ledger, ARN, SID).holds() == []


def test_holds_lists_each_open_hold_with_its_tool_age_and_lease(ledger: OperatorLedger) -> None:
    assert ledger.reserve(KEY, "a", D("1.5"), VIEW, "session", 600, NOW, tool="search")[0]
    assert ledger.reserve(KEY, "b", D(2), VIEW, "external", 900, NOW + 10)[0]
    assert ledger.reserve(KEY, "c", D(1), VIEW, "external", 900, NOW + 20)[0]
    assert ledger.release(KEY, "c", NOW + 20)
    found = {h.hold_id: h for h in ledger.holds(KEY, NOW + 30)}
    assert set(found) == {"a", "b"}
    a, b = found["a"], found["b"]
    assert (a.amount, a.settlement, a.tool) == (D("1.5"), "session", "search")
    assert (b.amount, b.settlement, b.tool) == (D(2), "external", None)
    assert a.age >= 0
    assert b.age >= 0
    assert a.lease_left <= 600
    assert b.lease_left <= 900
    if isinstance(ledger, InMemoryLedger):  # the caller's clock: exact figures
        assert (a.age, a.lease_left, b.age, b.lease_left) == (30, 570, 20, 880)
        assert [h.hold_id for h in ledger.holds(KEY, NOW + 30)] == ["a", "b"]  # oldest first


def test_a_tool_name_with_spaces_survives(ledger: OperatorLedger) -> None:
    assert ledger.reserve(KEY, "a", D(1), VIEW, "session", 600, NOW, tool="web search v2")[0]
    assert [h.tool for h in ledger.holds(KEY, NOW)] == ["web search v2"]


def test_a_stuck_hold_dropped_frees_its_money_and_a_late_commit_still_charges(
    ledger: OperatorLedger,
) -> None:
    assert ledger.reserve(KEY, "a", D(6), VIEW, "external", 600, NOW)[0]
    dropped = ledger.settle_stuck(KEY, "a", False, NOW)
    assert isinstance(dropped, HoldInfo)
    assert (dropped.hold_id, dropped.amount) == ("a", D(6))
    assert held(ledger) == (0, 0, D(10))
    assert ledger.holds(KEY, NOW) == []
    assert ledger.settle_stuck(KEY, "a", False, NOW) is None  # no longer open
    # Its call ends after all and commits: the money may have moved, so it counts.
    assert ledger.commit(KEY, "a", D(4), T, NOW)
    assert held(ledger) == (0, D(4), D(6))
    assert ledger.commit(KEY, "a", D(4), T, NOW)  # a retry changes nothing
    assert held(ledger) == (0, D(4), D(6))


def test_a_dropped_hold_committed_late_counts_against_its_tools_cap(
    ledger: OperatorLedger,
) -> None:
    limits = Limits("search", D(5), (), (), 0.0)
    admit = ledger.admit  # type: ignore[attr-defined]  # both built-in ledgers check policies
    assert admit(KEY, "a", D(4), VIEW, "external", 600, NOW, limits).granted
    assert ledger.settle_stuck(KEY, "a", False, NOW) is not None  # gives the cap back
    assert admit(KEY, "b", D(4), VIEW, "external", 600, NOW, limits).granted
    assert ledger.commit(KEY, "a", D(3), T, NOW)  # the dropped call spent after all
    refused = admit(KEY, "c", D(1), VIEW, "external", 600, NOW, limits)
    assert (refused.granted, refused.rule) == (False, "tool_cap")


def test_a_stuck_hold_charged_counts_in_full_like_a_lapse(ledger: OperatorLedger) -> None:
    assert ledger.reserve(KEY, "a", D(3), VIEW, "session", 600, NOW)[0]
    charged = ledger.settle_stuck(KEY, "a", True, NOW)
    assert charged is not None
    assert charged.amount == D(3)
    assert held(ledger) == (0, D(3), D(7))
    assert ledger.totals(KEY, None, NOW).external == D(3)
    assert not ledger.commit(KEY, "a", D(1), T, NOW)  # counted already, in full
    assert not ledger.release(KEY, "a", NOW)
    assert held(ledger) == (0, D(3), D(7))


def test_settling_an_unknown_hold_changes_nothing(ledger: OperatorLedger) -> None:
    assert ledger.settle_stuck(KEY, "nope", True, NOW) is None
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 600, NOW)[0]
    assert ledger.settle_stuck(KEY, "nope", True, NOW) is None
    assert held(ledger) == (D(1), 0, D(9))


def test_a_frozen_session_refuses_every_new_hold_until_unfrozen(ledger: OperatorLedger) -> None:
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 600, NOW)[0]
    assert not ledger.is_frozen(KEY)
    assert ledger.set_frozen(KEY, True)
    assert not ledger.set_frozen(KEY, True)  # already frozen
    assert ledger.is_frozen(KEY)
    with pytest.raises(SessionFrozenError):
        ledger.reserve(KEY, "b", D(1), VIEW, "external", 600, NOW)
    with pytest.raises(SessionFrozenError):
        ledger.reserve(KEY, "zero", D(0), VIEW, "external", 600, NOW)
    # A retry of a hold granted before the freeze answers as the first time did.
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 600, NOW)[0]
    assert held(ledger) == (D(1), 0, D(9))
    assert ledger.commit(KEY, "a", D(1), T, NOW)  # open holds still settle
    assert held(ledger) == (0, D(1), D(9))
    assert not ledger.is_frozen(f"{ARN}/other-session")  # per session
    assert ledger.reserve(f"{ARN}/other-session", "c", D(1), VIEW, "external", 600, NOW)[0]
    assert ledger.set_frozen(KEY, False)
    assert not ledger.set_frozen(KEY, False)
    assert ledger.reserve(KEY, "b", D(1), VIEW, "external", 600, NOW)[0]


# -- guards of a frozen session ----------------------------------------------------------------


CLOCK = Clock()


def scripted_guard(ledger: Ledger) -> SpendGuard:
    client = ScriptedClient(Session())
    return SpendGuard(ARN, SID, client=client, ledger=ledger, **CLOCK.kwargs)


def test_every_guard_of_a_frozen_session_blocks_without_ids_for_the_model(
    ledger: OperatorLedger,
) -> None:
    first, second = scripted_guard(ledger), scripted_guard(ledger)
    hold = first.reserve("1.00", tool="search")
    controls = SessionControls(ledger, ARN, SID)
    assert controls.freeze()
    assert controls.frozen
    for guard in (first, second):
        with pytest.raises(SessionFrozenError) as info:
            guard.reserve("0.01", tool="search")
        error = info.value
        assert (error.rule, error.session_id) == ("session_frozen", SID)
        assert isinstance(error, SpendGuardError)
        assert SID not in error.model_message
        assert "arn:" not in error.model_message
        assert "paused by an operator" in error.model_message
        decision = guard.check("0.01", tool="search")
        assert (decision.allowed, decision.rule) == (False, "session_frozen")
    hold.commit()  # a hold taken before the freeze settles
    assert controls.unfreeze()
    assert second.reserve("0.50").state == "held"
    with pytest.raises(BudgetExceededError):
        second.reserve("9.00")


def test_a_tool_gate_blocks_a_frozen_sessions_calls_with_the_model_message(
    ledger: OperatorLedger,
) -> None:
    gate = ToolGate(scripted_guard(ledger), {"search": "0.10"})
    assert gate.admit("call-1", "search", {}) is None
    gate.settle("call-1", ran=True)
    SessionControls(ledger, ARN, SID).freeze()
    blocked = gate.admit("call-2", "search", {})
    assert blocked is not None
    assert blocked.error.rule == "session_frozen"
    assert blocked.message == SessionFrozenError("x").model_message
    assert SID not in blocked.message


def test_controls_list_what_guards_hold_and_settle_it(ledger: OperatorLedger) -> None:
    guard = scripted_guard(ledger)
    hold = guard.reserve("2.00", tool="translate")
    controls = SessionControls(ledger, ARN, SID, timer=CLOCK.timer)  # the guards' clock
    [info] = controls.holds()
    assert (info.hold_id, info.amount, info.tool) == (hold.id, D(2), "translate")
    released = controls.release(hold.id)
    assert released is not None
    assert (released.hold_id, released.amount, released.tool) == (hold.id, D(2), "translate")
    assert controls.release(hold.id) is None
    assert controls.holds() == []
    assert guard.snapshot().held.amount == 0
    hold.release()  # the guard settles it later: nothing changes
    assert guard.snapshot().effective_available.amount == D(10)


def test_controls_need_a_ledger_with_operator_methods() -> None:
    class Bare:
        def reserve(self) -> None: ...

    with pytest.raises(ValueError, match="operator controls"):
        SessionControls(Bare(), ARN, SID)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="payment_session_id"):
        SessionControls(InMemoryLedger(), ARN, "")


# -- the command line --------------------------------------------------------------------------


def cli(url: str, prefix: str, *args: str) -> list[str]:
    where = ["--redis-url", url, "--prefix", prefix, "--payment-manager-arn", ARN]
    return [*args, *where, "--payment-session-id", SID]


@pytest.mark.redis
def test_cli_lists_and_releases_holds(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    ledger = RedisLedger.from_url(redis_url, prefix=prefix)
    assert ledger.reserve(KEY, "h-1", D("0.25"), VIEW, "session", 600, NOW, tool="search")[0]
    assert ledger.reserve(KEY, "h-2", D(1), VIEW, "external", 600, NOW)[0]
    assert main(cli(redis_url, prefix, "holds", "list", "--json")) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["session_id"] == SID
    assert shown["frozen"] is False
    by_id = {h["hold_id"]: h for h in shown["holds"]}
    assert by_id["h-1"]["amount"] == "0.25"
    assert (by_id["h-1"]["tool"], by_id["h-2"]["tool"]) == ("search", None)
    assert by_id["h-2"]["settlement"] == "external"
    assert 0 < by_id["h-1"]["lease_left_seconds"] <= 600
    assert main(cli(redis_url, prefix, "holds", "list")) == 0
    text = capsys.readouterr().out
    assert "2 open hold(s)" in text
    assert "h-1  " in text
    assert " search / " in text
    assert main(cli(redis_url, prefix, "holds", "release", "--hold-id", "h-1", "--drop")) == 0
    assert "dropped (not spent)" in capsys.readouterr().out
    args = cli(redis_url, prefix, "holds", "release", "--hold-id", "h-2", "--charge", "--json")
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["charged"], out["hold"]["amount"]) == (True, "1")
    assert ledger.totals(KEY, None, NOW)[1:] == (0, 0, D(1))
    # The hold is no longer open: exit code 4, as for a session that is not found.
    assert main(cli(redis_url, prefix, "holds", "release", "--hold-id", "h-2", "--drop")) == 4
    assert "No open hold h-2" in capsys.readouterr().err


@pytest.mark.redis
def test_cli_freezes_and_unfreezes_a_session(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    ledger = RedisLedger.from_url(redis_url, prefix=prefix)
    assert main(cli(redis_url, prefix, "session", "freeze")) == 0
    assert f"Payment session {SID} is frozen." in capsys.readouterr().out
    with pytest.raises(SessionFrozenError):
        ledger.reserve(KEY, "a", D(1), VIEW, "external", 600, NOW)
    assert main(cli(redis_url, prefix, "session", "freeze", "--json")) == 0
    assert json.loads(capsys.readouterr().out) == {
        "session_id": SID,
        "frozen": True,
        "changed": False,
    }
    assert main(cli(redis_url, prefix, "holds", "list")) == 0
    assert "FROZEN" in capsys.readouterr().out
    assert main(cli(redis_url, prefix, "session", "unfreeze")) == 0
    assert "not frozen." in capsys.readouterr().out
    assert ledger.reserve(KEY, "a", D(1), VIEW, "external", 600, NOW)[0]


def test_cli_exit_codes_for_an_unreachable_redis_and_bad_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    assert main(cli(url, "p", "holds", "list")) == 6
    assert "Shared ledger" in capsys.readouterr().err
    assert main(cli(url, "p", "session", "freeze", "--json")) == 6
    assert json.loads(capsys.readouterr().out)["exit_code"] == 6
    with pytest.raises(SystemExit) as usage:  # neither --drop nor --charge
        main(cli(url, "p", "holds", "release", "--hold-id", "h-1"))
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as both:
        main(cli(url, "p", "holds", "release", "--hold-id", "h-1", "--drop", "--charge"))
    assert both.value.code == 2


@pytest.mark.redis
def test_cli_takes_session_id_as_session_show_does(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    ledger = RedisLedger.from_url(redis_url, prefix=prefix)
    assert ledger.reserve(KEY, "h-1", D(1), VIEW, "external", 600, NOW)[0]
    args = ["holds", "list", "--redis-url", redis_url, "--prefix", prefix, "--json"]
    assert main([*args, "--payment-manager-arn", ARN, "--session-id", SID]) == 0
    assert [h["hold_id"] for h in json.loads(capsys.readouterr().out)["holds"]] == ["h-1"]
