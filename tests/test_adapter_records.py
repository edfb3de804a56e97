"""Decision records through every adapter: each framework's tool calls leave the same trail.

One script of tool calls, each in its own agent run, through every adapter: a free tool is
``allowed``; a paid one ``held`` then ``committed`` (it pays through the session); one over
budget ``blocked``; one that says it spent nothing ``held`` then ``released``; one that runs
past its hold's lease ``held`` then ``lapsed``; the next paid call reads the session again,
which shows the first payment (``session_read``, ``reconciled``); then a failing
GetPaymentSession (``session_failure``) and a ledger that is down (``ledger_failure``) each
block a call. Every record names its tool, and the records of one call share a call key.

The AgentCore pre-sign policy prices a payment and commits it at once, and has no free or
failing tools: through it the same script shows every event but ``allowed``, ``released``
and ``lapsed``, which it cannot produce.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from conftest import PaymentSessionFixture
from support import Clock
from test_events import ALL_EVENTS, Recording, SwitchableLedger

from spendguard import NothingSpentError, SpendGuard
from spendguard.emulator import Faults, x402_challenge
from spendguard.pricing import Pricing, from_argument

PRICING = Pricing(
    {"buy_report": "0.40", "pay": from_argument("amount"), "flaky": "0.10", "slow": "0.10"}
)
RunOne = Callable[[str, dict[str, Any]], None]


@dataclass
class Shop:
    """A guard on a 2.00 USD session whose clock, ledger and service a test can upset."""

    guard: SpendGuard
    sink: Recording
    clock: Clock
    ledger: SwitchableLedger
    payment: PaymentSessionFixture
    faults: Faults

    def search(self, query: str) -> str:
        return "results"

    def buy_report(self, topic: str) -> str:
        self.payment.pay("0.40")
        return "report"

    def pay(self, amount: str) -> str:
        return "paid"

    def flaky(self) -> str:
        raise NothingSpentError("the API refused before charging")

    def slow(self) -> str:
        self.clock.advance(61)  # longer than the hold's lease
        return "late"

    def tools(self) -> dict[str, Callable[..., str]]:
        return {
            "search": self.search,
            "buy_report": self.buy_report,
            "pay": self.pay,
            "flaky": self.flaky,
            "slow": self.slow,
        }


@pytest.fixture
def shop(
    new_payment_session: Callable[..., PaymentSessionFixture], agentcore_faults: Faults
) -> Shop:
    sink, clock, ledger = Recording(), Clock(), SwitchableLedger()
    payment = new_payment_session(budget="2.00")
    guard = payment.guard(sinks=[sink], ledger=ledger, timer=clock.timer, hold_lease=60)
    return Shop(guard, sink, clock, ledger, payment, agentcore_faults)


def play(shop: Shop, run_one: RunOne) -> None:
    """The script, one tool call per agent run."""
    run_one("search", {"query": "tea"})
    run_one("buy_report", {"topic": "tea"})
    run_one("pay", {"amount": "5.00"})
    run_one("flaky", {})
    run_one("slow", {})
    run_one("buy_report", {"topic": "coffee"})  # a fresh reading shows the first 0.40
    shop.faults.fail("GetPaymentSession", "AccessDeniedException", times=3)
    shop.clock.advance(61)
    run_one("buy_report", {"topic": "cocoa"})
    shop.faults.clear()
    shop.ledger.broken = True
    run_one("buy_report", {"topic": "sugar"})


def trail(sink: Recording) -> list[tuple[str, str | None]]:
    return [
        (r.event, r.tool)
        for r in sink.records
        if r.event not in ("session_read", "reconciled", "session_failure")
    ]


EXPECTED = [
    ("allowed", "search"),
    ("held", "buy_report"),
    ("committed", "buy_report"),
    ("blocked", "pay"),
    ("held", "flaky"),
    ("released", "flaky"),
    ("held", "slow"),
    ("lapsed", "slow"),
    ("held", "buy_report"),
    ("committed", "buy_report"),
    ("blocked", "buy_report"),  # the session could not be read
    ("ledger_failure", "buy_report"),
    ("blocked", "buy_report"),  # the ledger is down
]


def check(sink: Recording) -> None:
    assert {r.event for r in sink.records} == ALL_EVENTS
    assert trail(sink) == EXPECTED
    calls = [r for r in sink.records if r.tool is not None]
    assert all(r.call_key for r in calls)
    by_hold: dict[str, set[str | None]] = {}
    for r in calls:
        if r.hold_id:
            by_hold.setdefault(r.hold_id, set()).add(r.call_key)
    assert all(len(keys) == 1 for keys in by_hold.values())  # one call, one key
    rules = [r.rule for r in sink.of("blocked")]  # type: ignore[attr-defined]
    assert rules == ["session_limit", "session_unavailable", "ledger_unavailable"]
    assert reconciled(sink) == Decimal("0.80")  # both payments, as readings showed them
    assert sink.of("lapsed")[0].amount == "0.10"


def reconciled(sink: Recording) -> Decimal:
    return sum((Decimal(r.amount) for r in sink.of("reconciled")), Decimal(0))


def test_langchain_callback_handler(shop: Shop) -> None:
    from langchain_core.tools import StructuredTool  # noqa: PLC0415

    from spendguard_langchain import SpendGuardCallbackHandler  # noqa: PLC0415

    handler = SpendGuardCallbackHandler(shop.guard, PRICING)
    tools = {
        name: StructuredTool.from_function(func=fn, name=name, description=name)
        for name, fn in shop.tools().items()
    }

    def run_one(name: str, args: dict[str, Any]) -> None:
        # A blocked call raises from the handler; a failing tool raises its error.
        with contextlib.suppress(Exception):
            tools[name].invoke(args, config={"callbacks": [handler]})

    play(shop, run_one)
    check(shop.sink)


def test_langchain_middleware(shop: Shop) -> None:
    from langchain.agents import create_agent  # noqa: PLC0415
    from langchain_core.messages import AIMessage, HumanMessage  # noqa: PLC0415
    from langchain_core.tools import StructuredTool  # noqa: PLC0415

    from spendguard_langchain import SpendLimitMiddleware  # noqa: PLC0415
    from tests.integrations.langchain.conftest import ToolCallingModel, tool_calls  # noqa: PLC0415

    middleware = SpendLimitMiddleware(shop.guard, PRICING)
    tools = [
        StructuredTool.from_function(func=fn, name=name, description=name)
        for name, fn in shop.tools().items()
    ]

    def run_one(name: str, args: dict[str, Any]) -> None:
        model = ToolCallingModel(responses=[tool_calls((name, args)), AIMessage("done")])
        agent = create_agent(model, tools=tools, middleware=[middleware])
        with contextlib.suppress(NothingSpentError):  # a tool error ends the agent's run
            agent.invoke({"messages": [HumanMessage("go")]})

    play(shop, run_one)
    check(shop.sink)


def test_strands_hooks(shop: Shop) -> None:
    from strands import Agent  # noqa: PLC0415
    from strands.tools import PythonAgentTool  # noqa: PLC0415
    from strands_model import ScriptedModel  # noqa: PLC0415

    from spendguard_strands import SpendGuardHooks  # noqa: PLC0415

    def as_tool(name: str, fn: Callable[..., str]) -> Any:
        def run(tool_use: Any, **kwargs: Any) -> Any:
            text = fn(**tool_use["input"])  # a failing tool raises, as a Strands tool may
            return {
                "toolUseId": tool_use["toolUseId"],
                "status": "success",
                "content": [{"text": text}],
            }

        spec = {"name": name, "description": name, "inputSchema": {"json": {"type": "object"}}}
        return PythonAgentTool(name, spec, run)

    tools = [as_tool(name, fn) for name, fn in shop.tools().items()]
    hooks = SpendGuardHooks(shop.guard, PRICING)

    def run_one(name: str, args: dict[str, Any]) -> None:
        model = ScriptedModel([[("t1", name, args)], "done"])
        Agent(model=model, tools=tools, hooks=[hooks], callback_handler=None)("go")

    play(shop, run_one)
    check(shop.sink)


def test_openai_agents_guardrails(shop: Shop) -> None:
    from agents import Agent, RunConfig, Runner, function_tool  # noqa: PLC0415
    from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: PLC0415

    from spendguard_openai_agents import SpendGuardToolGuardrails  # noqa: PLC0415

    spend = SpendGuardToolGuardrails(shop.guard, PRICING)
    options = spend.tool_options()

    @function_tool(**options)
    def search(query: str) -> str:
        """Search."""
        return shop.search(query)

    @function_tool(**options)
    def buy_report(topic: str) -> str:
        """Buy a report."""
        return shop.buy_report(topic)

    @function_tool(**options)
    def pay(amount: str) -> str:
        """Pay."""
        return shop.pay(amount)

    @function_tool(**options)
    def flaky() -> str:
        """Fail before paying."""
        return shop.flaky()

    @function_tool(**options)
    def slow() -> str:
        """Take long."""
        return shop.slow()

    tools = [search, buy_report, pay, flaky, slow]

    def run_one(name: str, args: dict[str, Any]) -> None:
        model = ScriptedModel(
            [[function_call(name, args, call_id="c1")], [assistant_message("ok")]]
        )
        agent = Agent(name="buyer", model=model, tools=tools)
        asyncio.run(Runner.run(agent, "go", run_config=RunConfig(tracing_disabled=True)))

    play(shop, run_one)
    check(shop.sink)


def test_agentcore_pre_sign_policy(shop: Shop) -> None:
    from spendguard_agentcore import SpendGuardPreSignPolicy  # noqa: PLC0415

    policy = SpendGuardPreSignPolicy(shop.guard)

    def run_one(name: str, args: dict[str, Any]) -> None:
        if name in ("buy_report", "pay"):  # the SDK asks before signing each payment
            amount = args.get("amount", "0.40")
            if policy(x402_challenge(amount)) and name == "buy_report":
                shop.payment.pay(amount)

    play(shop, run_one)
    assert policy({"statusCode": 402, "headers": {}, "body": "not a challenge"}) is False
    events = {r.event for r in shop.sink.records}
    assert events == ALL_EVENTS - {"allowed", "released", "lapsed"}
    assert {r.tool for r in shop.sink.records if r.tool} == {"pre_sign_policy"}
    rules = [r.rule for r in shop.sink.of("blocked")]
    assert rules == ["session_limit", "session_unavailable", "ledger_unavailable", "pricing"]
    assert [Decimal(r.amount) for r in shop.sink.of("committed")] == [Decimal("0.40")] * 2
    assert reconciled(shop.sink) == Decimal("0.80")
