"""One Strands agent serving two users: the guard comes from the invocation state."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from strands import Agent, tool
from strands_model import ScriptedModel

from spendguard.pool import GuardPool
from spendguard.pricing import Blocked
from spendguard_strands import SpendGuardHooks

ran: list[str] = []


@tool
def buy_report(topic: str) -> str:
    """Buy a research report on a topic."""
    ran.append(topic)
    return f"report on {topic}"


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    ran.clear()


def results(agent: Agent) -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for message in agent.messages:
        for block in message["content"]:
            if "toolResult" in block:
                result = block["toolResult"]
                text = " ".join(c.get("text", "") for c in result["content"])
                found[result["toolUseId"]] = (result["status"], text)
    return found


def two_calls() -> ScriptedModel:
    return ScriptedModel(
        [[("t1", "buy_report", {"topic": "a"})], [("t2", "buy_report", {"topic": "b"})], "done"]
    )


@pytest.fixture
def setup(new_payment_session: Callable[..., Any]) -> tuple[Any, Any, GuardPool]:
    alice = new_payment_session("1.00", user_id="alice")
    bob = new_payment_session("0.50", user_id="bob")
    return alice, bob, GuardPool(client=alice.client, settlement="external")


def test_two_users_share_one_agent_with_separate_budgets(
    setup: tuple[Any, Any, GuardPool],
) -> None:
    alice, bob, pool = setup
    arn = alice.arn
    hooks = SpendGuardHooks(
        lambda state: pool.get(arn, state["session_id"], user_id=state["user_id"]),
        {"buy_report": "0.40"},
    )

    def run(user: Any) -> dict[str, tuple[str, str]]:
        agent = Agent(model=two_calls(), tools=[buy_report], hooks=[hooks], callback_handler=None)
        agent("go", invocation_state={"session_id": user.session_id, "user_id": user.user_id})
        return results(agent)

    assert run(alice) == {"t1": ("success", "report on a"), "t2": ("success", "report on b")}
    seen = run(bob)
    assert seen["t1"] == ("success", "report on a")
    assert seen["t2"][0] == "error"
    assert "Payment blocked by spend limit" in seen["t2"][1]
    assert ran == ["a", "b", "a"]
    snap = pool.get(arn, alice.session_id, user_id="alice").snapshot()
    assert snap.effective_available.amount == Decimal("0.20")
    snap = pool.get(arn, bob.session_id, user_id="bob").snapshot()
    assert snap.effective_available.amount == Decimal("0.10")
    assert hooks.open_holds == {}


def test_the_session_may_come_from_the_agent_state(setup: tuple[Any, Any, GuardPool]) -> None:
    alice, _, pool = setup

    def resolve(state: dict[str, Any]) -> Any:
        agent_state = state["agent"].state
        return pool.get(alice.arn, agent_state.get("session_id"), user_id="alice")

    hooks = SpendGuardHooks(resolve, {"buy_report": "0.40"})
    agent = Agent(
        model=two_calls(),
        tools=[buy_report],
        hooks=[hooks],
        callback_handler=None,
        state={"session_id": alice.session_id},
    )
    agent("go")
    assert ran == ["a", "b"]
    snap = pool.get(alice.arn, alice.session_id, user_id="alice").snapshot()
    assert snap.effective_available.amount == Decimal("0.20")


def test_a_call_without_a_session_is_cancelled(setup: tuple[Any, Any, GuardPool]) -> None:
    alice, _, pool = setup
    blocked: list[Blocked] = []
    hooks = SpendGuardHooks(
        lambda state: pool.get(alice.arn, state["session_id"], user_id="alice"),
        {"buy_report": "0.40"},
        on_blocked=blocked.append,
    )
    agent = Agent(model=two_calls(), tools=[buy_report], hooks=[hooks], callback_handler=None)
    agent("go")  # no session_id in the invocation state: KeyError in the resolver

    assert ran == []
    for status, text in results(agent).values():
        assert status == "error"
        assert "no payment session is available" in text
        assert alice.arn not in text
        assert "session_id" not in text
    assert [b.error.rule for b in blocked] == ["session_unresolved"] * 2
    assert "KeyError" in str(blocked[0].error)  # the operator's detail
