"""SpendGuardHooks inside a real Strands Agent, with a scripted model and the emulator."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from strands import Agent, tool
from strands.hooks import (
    AfterToolCallEvent,
    BeforeToolCallEvent,
    HookProvider,
    HookRegistry,
)
from strands.tools.executors import ConcurrentToolExecutor, SequentialToolExecutor
from strands.types.interrupt import InterruptResponseContent
from strands_model import Call, ScriptedModel

from spendguard import NothingSpentError, SpendGuard
from spendguard.pricing import Blocked, Pricing, from_argument
from spendguard_strands import SpendGuardHooks


def tool_results(agent: Agent) -> dict[str, dict[str, Any]]:
    """Every toolResult the model was sent, by toolUseId."""
    results: dict[str, dict[str, Any]] = {}
    for message in agent.messages:
        for block in message["content"]:
            if "toolResult" in block:
                result = block["toolResult"]
                results[result["toolUseId"]] = {
                    "status": result["status"],
                    "text": " ".join(c.get("text", "") for c in result["content"]),
                }
    return results


PRICING = Pricing({"buy_report": "0.40", "pay": from_argument("amount")}, strict=False)
ran: list[str] = []


@tool
async def buy_report(topic: str) -> str:
    """Buy a research report on a topic."""
    ran.append(topic)
    return f"report on {topic}"


@tool
def pay(amount: str) -> str:
    """Pay an amount of US dollars."""
    ran.append(amount)
    return f"paid {amount}"


@tool
def search(query: str) -> str:
    """A free tool."""
    ran.append(query)
    return "results"


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    ran.clear()


def make_agent(turns: Sequence[Sequence[Call] | str], hooks: list[Any]) -> Agent:
    tools = [buy_report, pay, search]
    return Agent(model=ScriptedModel(turns), tools=tools, hooks=hooks, callback_handler=None)


def test_allowed_call_runs_and_is_committed(guard: SpendGuard) -> None:
    hooks = SpendGuardHooks(guard, PRICING)
    agent = make_agent([[("t1", "buy_report", {"topic": "tea"})], "done"], [hooks])

    result = agent("buy a report on tea")

    assert str(result).strip() == "done"
    assert ran == ["tea"]
    assert tool_results(agent)["t1"]["status"] == "success"
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.40"))
    assert snap.effective_available.amount == Decimal("0.60")
    assert hooks.open_holds == {}


def test_call_over_budget_is_cancelled_with_a_message_and_the_agent_continues(
    guard: SpendGuard,
) -> None:
    hooks = SpendGuardHooks(guard, PRICING)
    agent = make_agent([[("t1", "pay", {"amount": "1.50"})], "I could not pay"], [hooks])

    result = agent("pay 1.50")

    assert str(result).strip() == "I could not pay"
    assert ran == []
    seen = tool_results(agent)["t1"]
    assert seen["status"] == "error"
    assert "costs 1.50 USD" in seen["text"]
    assert "Do not retry" in seen["text"]
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal(0))


def test_concurrent_tool_calls_cannot_overspend(guard: SpendGuard) -> None:
    in_flight: list[str] = []
    both_running = asyncio.Event()

    @tool
    async def slow_report(topic: str) -> str:
        """A paid tool that waits until another paid call is in flight too."""
        in_flight.append(topic)
        if len(in_flight) == 2:
            both_running.set()
        await asyncio.wait_for(both_running.wait(), timeout=5)
        return f"report on {topic}"

    calls = [(f"t{i}", "slow_report", {"topic": f"topic-{i}"}) for i in range(3)]
    hooks = SpendGuardHooks(guard, Pricing({"slow_report": "0.40"}))
    agent = Agent(
        model=ScriptedModel([calls, "done"]),
        tools=[slow_report],
        hooks=[hooks],
        callback_handler=None,
    )
    assert isinstance(agent.tool_executor, ConcurrentToolExecutor)  # Strands' default

    agent("three reports at once")

    results = tool_results(agent)
    assert sorted(r["status"] for r in results.values()) == ["error", "success", "success"]
    assert len(in_flight) == 2  # ran together, the third was refused while they were held
    snap = guard.snapshot()
    assert snap.external.amount == Decimal("0.80")
    assert snap.effective_available.amount == Decimal("0.20")
    assert snap.held.amount == 0


def raising(error: BaseException) -> Any:
    """A paid tool that raises ``error`` once called, as an upstream that took the money may."""

    @tool
    def purchase(topic: str) -> str:
        """Buy something from an upstream that fails."""
        ran.append(topic)
        raise error

    return purchase


def one_at_a_time(calls: Sequence[Call], tools: list[Any], hooks: SpendGuardHooks) -> Agent:
    """An agent that runs the tool calls of one turn in order (each settled before the next)."""
    return Agent(
        model=ScriptedModel([calls, "done"]),
        tools=tools,
        hooks=[hooks],
        callback_handler=None,
        tool_executor=SequentialToolExecutor(),
    )


THREE_PURCHASES = [(f"t{i}", "purchase", {"topic": f"topic-{i}"}) for i in range(3)]


def test_a_tool_that_raises_keeps_its_charge(guard: SpendGuard) -> None:
    """A timeout says nothing about the money: the charge stays, so only one call fits."""
    hooks = SpendGuardHooks(guard, {"purchase": "0.60"})
    agent = one_at_a_time(THREE_PURCHASES, [raising(TimeoutError("upstream timed out"))], hooks)

    agent("buy three")

    assert ran == ["topic-0"]
    results = tool_results(agent)
    assert all(r["status"] == "error" for r in results.values())
    assert "Payment blocked" in results["t1"]["text"]
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.60"))
    assert not hooks.open_holds


class OutOfStock(Exception):
    """The upstream refused before taking any money."""


@pytest.mark.parametrize(
    ("error", "release_on"),
    [(NothingSpentError("out of stock"), ()), (OutOfStock("out of stock"), (OutOfStock,))],
    ids=["NothingSpentError", "release_on"],
)
def test_a_tool_that_says_it_spent_nothing_is_released(
    guard: SpendGuard, error: Exception, release_on: tuple[type[BaseException], ...]
) -> None:
    hooks = SpendGuardHooks(guard, {"purchase": "0.60"}, release_on=release_on)
    agent = one_at_a_time(THREE_PURCHASES, [raising(error)], hooks)

    agent("buy three")

    assert ran == ["topic-0", "topic-1", "topic-2"]
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal(0))
    assert not hooks.open_holds


@pytest.mark.parametrize("tool_use_id", ["call_0", ""], ids=["repeated", "blank"])
def test_repeated_tool_use_ids_cannot_run_uncharged(guard: SpendGuard, tool_use_id: str) -> None:
    """Model servers repeat or blank ids: each call holds its own price, whatever its id."""
    entered: list[str] = []
    settled = asyncio.Event()  # the other call ran, or was refused

    @tool
    async def costly(topic: str) -> str:
        """A paid tool that waits until the other call of the turn is decided."""
        entered.append(topic)
        if len(entered) == 2:
            settled.set()
        await asyncio.wait_for(settled.wait(), timeout=5)
        return f"report on {topic}"

    class Refusals(HookProvider):
        def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
            registry.add_callback(AfterToolCallEvent, self.after)

        def after(self, event: AfterToolCallEvent) -> None:
            if event.cancel_message is not None:
                settled.set()

    hooks = SpendGuardHooks(guard, {"costly": "0.90"})
    calls = [(tool_use_id, "costly", {"topic": topic}) for topic in ("a", "b")]
    agent = Agent(
        model=ScriptedModel([calls, "done"]),
        tools=[costly],
        hooks=[hooks, Refusals()],
        callback_handler=None,
    )

    agent("buy two")

    # Strands 1.62 drops tool uses with a blank id before any hook; whatever runs is paid.
    assert len(entered) <= 1
    assert len(entered) == 1 or not tool_use_id
    snap = guard.snapshot()
    assert snap.external.amount == Decimal("0.90") * len(entered)
    assert snap.held.amount == 0
    assert not hooks.open_holds


def test_an_interrupted_call_keeps_one_hold_until_it_resumes(guard: SpendGuard) -> None:
    class Approve(HookProvider):
        def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
            registry.add_callback(BeforeToolCallEvent, self.ask)

        def ask(self, event: BeforeToolCallEvent) -> None:
            event.interrupt("approve", reason="buy?")

    hooks = SpendGuardHooks(guard, PRICING)
    agent = make_agent([[("t1", "buy_report", {"topic": "tea"})], "done"], [Approve(), hooks])

    paused = agent("buy")
    assert ran == []
    assert guard.snapshot().held.amount == Decimal("0.40")  # kept for the call while paused

    assert paused.interrupts
    answer: InterruptResponseContent = {
        "interruptResponse": {"interruptId": paused.interrupts[0].id, "response": "yes"}
    }
    agent([answer])

    assert ran == ["tea"]
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.40"))
    assert not hooks.open_holds


def test_on_blocked_sees_every_blocked_call(guard: SpendGuard) -> None:
    blocked: list[Blocked] = []
    hooks = SpendGuardHooks(guard, PRICING, on_blocked=blocked.append)
    agent = make_agent([[("t1", "pay", {"amount": "1.50"})], "ok"], [hooks])

    agent("pay")

    assert [b.tool_name for b in blocked] == ["pay"]
    assert tool_results(agent)["t1"]["text"] == blocked[0].message


def test_a_call_cancelled_by_an_earlier_hook_holds_nothing(guard: SpendGuard) -> None:
    class Deny(HookProvider):
        def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
            registry.add_callback(BeforeToolCallEvent, self.deny)

        def deny(self, event: BeforeToolCallEvent) -> None:
            event.cancel_tool = "not allowed"

    hooks = SpendGuardHooks(guard, PRICING)
    agent = make_agent([[("t1", "buy_report", {"topic": "tea"})], "ok"], [hooks, Deny()])

    agent("buy")

    assert tool_results(agent)["t1"]["text"] == "not allowed"
    assert guard.snapshot().effective_available.amount == Decimal("1.00")


def test_a_hook_requested_retry_charges_each_attempt(guard: SpendGuard) -> None:
    class RetryOnce(HookProvider):
        def __init__(self) -> None:
            self.retried = False

        def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
            registry.add_callback(AfterToolCallEvent, self.retry)

        def retry(self, event: AfterToolCallEvent) -> None:
            if not self.retried:
                self.retried = event.retry = True

    hooks = SpendGuardHooks(guard, PRICING)
    agent = make_agent([[("t1", "buy_report", {"topic": "tea"})], "ok"], [hooks, RetryOnce()])

    agent("buy")

    assert ran == ["tea", "tea"]
    assert guard.snapshot().external.amount == Decimal("0.80")


def test_unpriceable_and_free_calls(guard: SpendGuard) -> None:
    hooks = SpendGuardHooks(guard, {"pay": from_argument("amount")})  # a plain mapping
    calls = [("t1", "pay", {"amount": "-1"}), ("t2", "search", {"query": "tea"})]
    agent = make_agent([calls, "ok"], [hooks])

    agent("go")

    results = tool_results(agent)
    assert results["t1"]["status"] == "error"
    assert "Payment blocked" in results["t1"]["text"]
    assert results["t2"]["status"] == "success"
    assert ran == ["tea"]
    assert guard.snapshot().effective_available.amount == Decimal("1.00")


def test_missing_strands_raises_import_error_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "strands", None)
    monkeypatch.setitem(sys.modules, "strands.hooks", None)
    monkeypatch.delitem(sys.modules, "spendguard_strands")
    with pytest.raises(ImportError, match=r'pip install "spendguard\[strands\]"'):
        importlib.import_module("spendguard_strands")
