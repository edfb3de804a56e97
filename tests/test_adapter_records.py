"""Decision records through every adapter: each framework's calls leave the same trail.

Per adapter, a free tool is ``allowed``, a paid one ``held`` then ``committed``, one that says
it spent nothing ``held`` then ``released``, and one over budget ``blocked``; every record
names its tool, and the records of one call share a call key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from conftest import PaymentSessionFixture
from test_events import Recording

from spendguard import BudgetExceededError, NothingSpentError, SpendGuard
from spendguard.emulator import x402_challenge
from spendguard.pricing import Pricing, from_argument

PRICING = Pricing({"buy_report": "0.40", "pay": from_argument("amount"), "flaky": "0.10"})
EXPECTED = [
    ("allowed", "search"),
    ("held", "buy_report"),
    ("committed", "buy_report"),
    ("blocked", "pay"),
    ("held", "flaky"),
    ("released", "flaky"),
]


@pytest.fixture
def recorded(
    new_payment_session: Callable[..., PaymentSessionFixture],
) -> tuple[SpendGuard, Recording]:
    sink = Recording()
    payment = new_payment_session(budget="1.00")
    guard = payment.guard(settlement="external", sinks=[sink])
    return guard, sink


def trail(sink: Recording) -> list[tuple[str, str | None]]:
    return [(r.event, r.tool) for r in sink.records if r.event != "session_read"]


def check_trail(sink: Recording) -> None:
    assert trail(sink) == EXPECTED
    records = [r for r in sink.records if r.event != "session_read"]
    assert all(r.call_key for r in records)
    held, committed = records[1], records[2]
    assert (held.call_key, held.hold_id) == (committed.call_key, committed.hold_id)
    assert records[3].rule == "session_limit"  # type: ignore[attr-defined]
    assert len({r.call_key for r in records}) == 4  # four calls


def test_langchain_callback_handler(recorded: tuple[SpendGuard, Recording]) -> None:
    from langchain_core.tools import StructuredTool  # noqa: PLC0415

    from spendguard_langchain import SpendGuardCallbackHandler  # noqa: PLC0415

    guard, sink = recorded
    handler = SpendGuardCallbackHandler(guard, PRICING)
    config: Any = {"callbacks": [handler]}

    def make(name: str, fn: Callable[..., str]) -> StructuredTool:
        return StructuredTool.from_function(func=fn, name=name, description=name)

    def flaky() -> str:
        raise NothingSpentError("the API refused before charging")

    make("search", lambda query: "results").invoke({"query": "tea"}, config=config)
    make("buy_report", lambda topic: "report").invoke({"topic": "tea"}, config=config)
    with pytest.raises(BudgetExceededError):
        make("pay", lambda amount: "paid").invoke({"amount": "5.00"}, config=config)
    with pytest.raises(NothingSpentError):
        make("flaky", flaky).invoke({}, config=config)
    check_trail(sink)


def test_langchain_middleware(recorded: tuple[SpendGuard, Recording]) -> None:
    from langchain.agents import create_agent  # noqa: PLC0415
    from langchain_core.messages import AIMessage, HumanMessage  # noqa: PLC0415
    from langchain_core.tools import StructuredTool  # noqa: PLC0415

    from spendguard_langchain import SpendLimitMiddleware  # noqa: PLC0415
    from tests.integrations.langchain.conftest import ToolCallingModel, tool_calls  # noqa: PLC0415

    guard, sink = recorded

    def flaky() -> str:
        raise NothingSpentError("the API refused before charging")

    def make(name: str, fn: Callable[..., str]) -> StructuredTool:
        return StructuredTool.from_function(func=fn, name=name, description=name)

    tools = [
        make("search", lambda query: "results"),
        make("buy_report", lambda topic: "report"),
        make("pay", lambda amount: "paid"),
        make("flaky", flaky),
    ]
    turns = [
        tool_calls(("search", {"query": "tea"})),
        tool_calls(("buy_report", {"topic": "tea"})),
        tool_calls(("pay", {"amount": "5.00"})),
        tool_calls(("flaky", {})),
        AIMessage("done"),
    ]
    model = ToolCallingModel(responses=turns)
    agent = create_agent(model, tools=tools, middleware=[SpendLimitMiddleware(guard, PRICING)])
    with pytest.raises(NothingSpentError):  # a tool error ends the agent's run
        agent.invoke({"messages": [HumanMessage("go")]})
    check_trail(sink)


def test_strands_hooks(recorded: tuple[SpendGuard, Recording]) -> None:
    from strands import Agent, tool  # noqa: PLC0415
    from strands_model import ScriptedModel  # noqa: PLC0415

    from spendguard_strands import SpendGuardHooks  # noqa: PLC0415

    guard, sink = recorded

    @tool
    def search(query: str) -> str:
        """Search."""
        return "results"

    @tool
    def buy_report(topic: str) -> str:
        """Buy a report."""
        return "report"

    @tool
    def pay(amount: str) -> str:
        """Pay."""
        return "paid"

    @tool
    def flaky() -> str:
        """Fail before paying."""
        raise NothingSpentError("the API refused before charging")

    turns: list[Any] = [
        [("t1", "search", {"query": "tea"})],
        [("t2", "buy_report", {"topic": "tea"})],
        [("t3", "pay", {"amount": "5.00"})],
        [("t4", "flaky", {})],
        "done",
    ]
    hooks = SpendGuardHooks(guard, PRICING)
    agent = Agent(
        model=ScriptedModel(turns),
        tools=[search, buy_report, pay, flaky],
        hooks=[hooks],
        callback_handler=None,
    )
    agent("go")
    check_trail(sink)


def test_openai_agents_guardrails(recorded: tuple[SpendGuard, Recording]) -> None:
    from agents import Agent, RunConfig, Runner, function_tool  # noqa: PLC0415
    from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: PLC0415

    from spendguard_openai_agents import SpendGuardToolGuardrails  # noqa: PLC0415

    guard, sink = recorded
    spend = SpendGuardToolGuardrails(guard, PRICING)
    options = spend.tool_options()

    @function_tool(**options)
    def search(query: str) -> str:
        """Search."""
        return "results"

    @function_tool(**options)
    def buy_report(topic: str) -> str:
        """Buy a report."""
        return "report"

    @function_tool(**options)
    def pay(amount: str) -> str:
        """Pay."""
        return "paid"

    @function_tool(**options)
    def flaky() -> str:
        """Fail before paying."""
        raise NothingSpentError("the API refused before charging")

    model = ScriptedModel(
        [
            [function_call("search", {"query": "tea"}, call_id="c1")],
            [function_call("buy_report", {"topic": "tea"}, call_id="c2")],
            [function_call("pay", {"amount": "5.00"}, call_id="c3")],
            [function_call("flaky", {}, call_id="c4")],
            [assistant_message("done")],
        ]
    )
    agent = Agent(name="buyer", model=model, tools=[search, buy_report, pay, flaky])
    asyncio.run(Runner.run(agent, "go", run_config=RunConfig(tracing_disabled=True)))
    check_trail(sink)


def test_agentcore_pre_sign_policy(recorded: tuple[SpendGuard, Recording]) -> None:
    from spendguard_agentcore import SpendGuardPreSignPolicy  # noqa: PLC0415

    guard, sink = recorded
    policy = SpendGuardPreSignPolicy(guard)
    assert policy(x402_challenge("0.40")) is True
    assert policy(x402_challenge("5.00")) is False
    assert policy({"statusCode": 402, "headers": {}, "body": "not a challenge"}) is False
    assert trail(sink) == [
        ("held", "pre_sign_policy"),
        ("committed", "pre_sign_policy"),
        ("blocked", "pre_sign_policy"),
        ("blocked", "pre_sign_policy"),
    ]
    rules = [r.rule for r in sink.of("blocked")]
    assert rules == ["session_limit", "pricing"]
    assert Decimal(sink.of("committed")[0].amount) == Decimal("0.40")
