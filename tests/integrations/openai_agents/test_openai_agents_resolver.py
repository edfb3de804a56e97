"""One OpenAI Agents SDK agent serving two users: the guard comes from the run's context."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from spendguard.pool import GuardPool
from spendguard.pricing import Blocked
from spendguard_openai_agents import SpendGuardToolGuardrails


@dataclass
class User:
    name: str
    session_id: str | None


def two_calls() -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("buy_report", {"topic": "a"}, call_id="c1")],
            [function_call("buy_report", {"topic": "b"}, call_id="c2")],
            [assistant_message("done")],
        ]
    )


def outputs(model: ScriptedModel) -> dict[str, str]:
    last = model.last_call
    assert last is not None
    items = last.input if isinstance(last.input, list) else []
    return {
        item["call_id"]: str(item["output"])
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


@pytest.fixture
def setup(new_payment_session: Callable[..., Any]) -> tuple[Any, Any, GuardPool, str]:
    alice = new_payment_session("1.00", user_id="alice")
    bob = new_payment_session("0.50", user_id="bob")
    return alice, bob, GuardPool(client=alice.client, settlement="external"), alice.arn


def test_two_users_share_one_agent_with_separate_budgets(
    setup: tuple[Any, Any, GuardPool, str],
) -> None:
    alice, bob, pool, arn = setup
    ran: list[str] = []
    blocked: list[Blocked] = []
    spend = SpendGuardToolGuardrails(
        lambda user: pool.get(arn, user.session_id, user_id=user.name),
        {"buy_report": "0.40"},
        on_blocked=blocked.append,
    )

    @function_tool(**spend.tool_options())
    def buy_report(topic: str) -> str:
        """Buy a research report."""
        ran.append(topic)
        return f"report on {topic}"

    def run(user: User) -> dict[str, str]:
        model = two_calls()
        agent: Agent[User] = Agent(name="buyer", model=model, tools=[buy_report])
        config = RunConfig(tracing_disabled=True)
        asyncio.run(Runner.run(agent, "go", context=user, run_config=config))
        return outputs(model)

    assert run(User("alice", alice.session_id)) == {"c1": "report on a", "c2": "report on b"}
    seen = run(User("bob", bob.session_id))
    assert seen["c1"] == "report on a"
    assert "Payment blocked by spend limit" in seen["c2"]
    assert ran == ["a", "b", "a"]
    alice_guard = pool.get(arn, alice.session_id, user_id="alice")
    bob_guard = pool.get(arn, bob.session_id, user_id="bob")
    assert alice_guard.snapshot().effective_available.amount == Decimal("0.20")
    assert bob_guard.snapshot().effective_available.amount == Decimal("0.10")
    assert [b.error.rule for b in blocked] == ["session_limit"]
    assert spend.open_holds == {}


@pytest.mark.parametrize("context", [User("carol", None), None])
def test_a_run_without_a_session_is_blocked(
    setup: tuple[Any, Any, GuardPool, str], context: User | None
) -> None:
    _, _, pool, arn = setup
    ran: list[str] = []
    blocked: list[Blocked] = []
    spend = SpendGuardToolGuardrails(
        lambda user: pool.get(arn, user.session_id, user_id=user.name),
        {"buy_report": "0.40"},
        on_blocked=blocked.append,
    )

    @function_tool(**spend.tool_options())
    def buy_report(topic: str) -> str:
        """Buy a research report."""
        ran.append(topic)
        return "report"

    model = two_calls()
    agent: Agent[Any] = Agent(name="buyer", model=model, tools=[buy_report])
    asyncio.run(
        Runner.run(agent, "go", context=context, run_config=RunConfig(tracing_disabled=True))
    )

    assert ran == []
    seen = outputs(model)
    assert set(seen) == {"c1", "c2"}
    for text in seen.values():
        assert "no payment session is available" in text
        assert arn not in text
        assert "payment-session-" not in text
    assert [b.error.rule for b in blocked] == ["session_unresolved"] * 2
    assert len(pool) == 0
