"""SpendGuardToolGuardrails inside real OpenAI Agents SDK runs, with ScriptedModel and the
emulator."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from decimal import Decimal
from typing import Any

import pytest
from agents import (
    Agent,
    RunConfig,
    Runner,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrailData,
    ToolInputGuardrailTripwireTriggered,
    function_tool,
    tool_input_guardrail,
)
from agents.exceptions import ModelBehaviorError, UserError
from agents.testing import ScriptedModel, assistant_message, function_call

from spendguard import InvalidArgumentError, NothingSpentError, SpendGuard
from spendguard.pricing import Blocked, Pricing, from_argument
from spendguard_openai_agents import SpendGuardToolGuardrails

PRICING = Pricing({"buy_report": "0.40", "pay": from_argument("amount")})


def model_saw(model: ScriptedModel) -> dict[str, str]:
    """The function call outputs sent to the model in its last call, by call id."""
    last = model.last_call
    assert last is not None
    items = last.input if isinstance(last.input, list) else []
    return {
        item["call_id"]: str(item["output"])
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


def run(agent: Agent[Any], prompt: str = "go") -> Any:
    return asyncio.run(Runner.run(agent, prompt, run_config=RunConfig(tracing_disabled=True)))


def make_agent(spend: SpendGuardToolGuardrails, model: ScriptedModel, ran: list[str]) -> Agent[Any]:
    @function_tool(**spend.tool_options())
    async def buy_report(topic: str) -> str:
        """Buy a research report."""
        ran.append(topic)
        return f"report on {topic}"

    @function_tool(**spend.tool_options())
    def pay(amount: float) -> str:
        """Pay an amount of US dollars."""
        ran.append(str(amount))
        return f"paid {amount}"

    return Agent(name="buyer", model=model, tools=[buy_report, pay])


def test_allowed_call_runs_and_is_committed(guard: SpendGuard) -> None:
    ran: list[str] = []
    spend = SpendGuardToolGuardrails(guard, PRICING)
    model = ScriptedModel(
        [[function_call("buy_report", {"topic": "tea"}, call_id="c1")], [assistant_message("ok")]]
    )

    result = run(make_agent(spend, model, ran))

    assert result.final_output == "ok"
    assert ran == ["tea"]
    assert model_saw(model) == {"c1": "report on tea"}
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.40"))
    assert spend.open_holds == {}


def test_raw_json_arguments_are_priced_exactly(guard: SpendGuard) -> None:
    ran: list[str] = []
    spend = SpendGuardToolGuardrails(guard, PRICING)
    model = ScriptedModel(
        [[function_call("pay", '{"amount": 0.1}', call_id="c1")], [assistant_message("ok")]]
    )

    run(make_agent(spend, model, ran))

    assert guard.snapshot().external.amount == Decimal("0.1")


def test_over_budget_call_is_rejected_with_a_message_and_the_run_continues(
    guard: SpendGuard,
) -> None:
    ran: list[str] = []
    spend = SpendGuardToolGuardrails(guard, PRICING)
    model = ScriptedModel(
        [[function_call("pay", {"amount": 1.5}, call_id="c1")], [assistant_message("no budget")]]
    )

    result = run(make_agent(spend, model, ran))

    assert result.final_output == "no budget"
    assert ran == []
    message = model_saw(model)["c1"]
    assert "costs 1.5 USD" in message
    assert "Do not retry" in message
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal(0))


def test_raise_exception_behavior_stops_the_run_and_holds_nothing(guard: SpendGuard) -> None:
    ran: list[str] = []
    spend = SpendGuardToolGuardrails(guard, PRICING, block_behavior="raise_exception")
    model = ScriptedModel([[function_call("pay", {"amount": 2}, call_id="c1")]])

    with pytest.raises(ToolInputGuardrailTripwireTriggered) as caught:
        run(make_agent(spend, model, ran))

    blocked = caught.value.output.output_info
    assert isinstance(blocked, Blocked)
    assert blocked.tool_name == "pay"
    assert ran == []
    assert guard.snapshot().held.amount == 0
    assert spend.open_holds == {}


def purchases(spend: SpendGuardToolGuardrails, error: Exception, ran: list[str]) -> Agent[Any]:
    """An agent asked three times in a row for a paid tool that raises ``error`` once called."""

    @function_tool(**spend.tool_options())
    def purchase(topic: str) -> str:
        """Buy something from an upstream that fails."""
        ran.append(topic)
        raise error

    turns = [[function_call("purchase", {"topic": f"t{i}"}, call_id=f"c{i}")] for i in range(3)]
    model = ScriptedModel([*turns, [assistant_message("sorry")]])
    return Agent(name="buyer", model=model, tools=[purchase])


def test_a_tool_that_raises_keeps_its_charge(guard: SpendGuard) -> None:
    """A timeout says nothing about the money: the charge stays, so only one call fits."""
    ran: list[str] = []
    spend = SpendGuardToolGuardrails(guard, {"purchase": "0.60"})
    agent = purchases(spend, TimeoutError("upstream timed out"), ran)

    result = run(agent)

    assert result.final_output == "sorry"
    assert ran == ["t0"]
    assert "Payment blocked" in model_saw(agent.model)["c2"]  # type: ignore[arg-type]
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.60"))
    assert not spend.open_holds


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
    ran: list[str] = []
    spend = SpendGuardToolGuardrails(guard, {"purchase": "0.60"}, release_on=release_on)

    run(purchases(spend, error, ran))

    assert ran == ["t0", "t1", "t2"]
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal(0))
    assert not spend.open_holds


def test_runs_sharing_a_call_id_cannot_run_uncharged(guard: SpendGuard) -> None:
    """Local model servers number call ids per response, so two runs may both send call_1."""
    spend = SpendGuardToolGuardrails(guard, {"costly": "0.90"})
    entered: list[str] = []
    first_running, second_done = asyncio.Event(), asyncio.Event()

    @function_tool(**spend.tool_options())
    async def costly(topic: str) -> str:
        """A paid tool; the first call stays in flight until the second run is over."""
        entered.append(topic)
        if topic == "first":
            first_running.set()
            await asyncio.wait_for(second_done.wait(), timeout=5)
        return f"report on {topic}"

    def asking(topic: str) -> Agent[Any]:
        call = function_call("costly", {"topic": topic}, call_id="call_1")
        model = ScriptedModel([[call], [assistant_message("ok")]])
        return Agent(name="buyer", model=model, tools=[costly])

    async def both() -> str:
        config = RunConfig(tracing_disabled=True)
        first = asyncio.create_task(Runner.run(asking("first"), "go", run_config=config))
        await asyncio.wait_for(first_running.wait(), timeout=5)
        second = asking("second")
        await Runner.run(second, "go", run_config=config)
        second_done.set()
        await first
        return model_saw(second.model)["call_1"]  # type: ignore[arg-type]

    second_saw = asyncio.run(both())

    assert entered == ["first"]
    assert "Payment blocked" in second_saw
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.90"))
    assert not spend.open_holds


@pytest.mark.parametrize(
    "ids_and_topics",
    [[("dup", "a"), ("dup", "a")], [("dup", "a"), ("dup", "b")], [("", "a"), ("", "b")]],
    ids=["repeated-same-arguments", "repeated-other-arguments", "blank"],
)
def test_repeated_or_blank_call_ids_in_one_response_cannot_run_uncharged(
    guard: SpendGuard, ids_and_topics: list[tuple[str, str]]
) -> None:
    """openai-agents 0.24 runs an exact repeat once and refuses the rest; whatever runs pays."""
    spend = SpendGuardToolGuardrails(guard, {"costly": "0.90"})
    entered: list[str] = []

    @function_tool(**spend.tool_options())
    def costly(topic: str) -> str:
        """A paid tool."""
        entered.append(topic)
        return f"report on {topic}"

    calls = [function_call("costly", {"topic": t}, call_id=i) for i, t in ids_and_topics]
    model = ScriptedModel([calls, [assistant_message("ok")]])
    with contextlib.suppress(ModelBehaviorError):  # the SDK refused the response: none ran
        run(Agent(name="buyer", model=model, tools=[costly]))

    assert len(entered) <= 1
    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.90") * len(entered))
    assert not spend.open_holds


def test_parallel_calls_in_one_turn_cannot_overspend(guard: SpendGuard) -> None:
    spend = SpendGuardToolGuardrails(guard, Pricing({"slow_report": "0.40"}))
    in_flight: list[str] = []
    both_running = asyncio.Event()

    @function_tool(**spend.tool_options())
    async def slow_report(topic: str) -> str:
        """A paid tool that waits until another paid call is in flight too."""
        in_flight.append(topic)
        if len(in_flight) == 2:
            both_running.set()
        await asyncio.wait_for(both_running.wait(), timeout=5)
        return f"report on {topic}"

    calls = [function_call("slow_report", {"topic": f"t{i}"}, call_id=f"c{i}") for i in range(3)]
    model = ScriptedModel([calls, [assistant_message("done")]])

    run(Agent(name="buyer", model=model, tools=[slow_report]))

    seen = model_saw(model)
    assert sum("Payment blocked" in text for text in seen.values()) == 1
    assert len(in_flight) == 2  # ran together, the third was refused while they were held
    snap = guard.snapshot()
    assert snap.external.amount == Decimal("0.80")
    assert snap.effective_available.amount == Decimal("0.20")


def test_a_call_rejected_by_an_earlier_guardrail_holds_nothing(guard: SpendGuard) -> None:
    @tool_input_guardrail
    def deny(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        return ToolGuardrailFunctionOutput.reject_content("not allowed")

    spend = SpendGuardToolGuardrails(guard, PRICING)
    ran: list[str] = []

    @function_tool(**spend.tool_options(input_guardrails=[deny]))
    def buy_report(topic: str) -> str:
        """Buy a research report."""
        ran.append(topic)
        return "report"

    model = ScriptedModel(
        [[function_call("buy_report", {"topic": "tea"}, call_id="c1")], [assistant_message("ok")]]
    )
    run(Agent(name="buyer", model=model, tools=[buy_report]))

    assert model_saw(model) == {"c1": "not allowed"}
    assert ran == []
    assert guard.snapshot().effective_available.amount == Decimal("1.00")


def test_block_behavior_and_on_blocked_are_validated(guard: SpendGuard) -> None:
    with pytest.raises(InvalidArgumentError, match="block_behavior"):
        SpendGuardToolGuardrails(guard, PRICING, block_behavior="ignore")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="on_blocked"):
        SpendGuardToolGuardrails(guard, PRICING, on_blocked=42)  # type: ignore[arg-type]


def test_on_blocked_sees_every_blocked_call(guard: SpendGuard) -> None:
    blocked: list[Blocked] = []
    spend = SpendGuardToolGuardrails(guard, PRICING, on_blocked=blocked.append)
    model = ScriptedModel(
        [[function_call("pay", {"amount": 1.5}, call_id="c1")], [assistant_message("ok")]]
    )

    run(make_agent(spend, model, []))

    assert [b.tool_name for b in blocked] == ["pay"]
    assert model_saw(model)["c1"] == blocked[0].message


def test_a_block_behavior_passed_as_on_blocked_still_works_with_a_warning(
    guard: SpendGuard,
) -> None:
    with pytest.warns(DeprecationWarning, match="block_behavior"):
        spend = SpendGuardToolGuardrails(guard, PRICING, on_blocked="raise_exception")
    model = ScriptedModel([[function_call("pay", {"amount": 2}, call_id="c1")]])

    with pytest.raises(ToolInputGuardrailTripwireTriggered):
        run(make_agent(spend, model, []))


def test_missing_sdk_raises_import_error_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "agents", None)
    monkeypatch.delitem(sys.modules, "spendguard_openai_agents")
    with pytest.raises(ImportError, match=r'pip install "spendguard\[openai-agents\]"'):
        importlib.import_module("spendguard_openai_agents")


def test_without_a_formatter_the_error_fails_the_run_and_the_charge_is_kept(
    guard: SpendGuard,
) -> None:
    spend = SpendGuardToolGuardrails(guard, Pricing({"failing": "0.40"}))

    @function_tool(**spend.tool_options(failure_error_function=None))
    def failing(topic: str) -> str:
        """A paid tool whose upstream fails."""
        raise RuntimeError("upstream is down")

    model = ScriptedModel([[function_call("failing", {"topic": "x"}, call_id="c1")]])
    with pytest.raises(UserError, match="upstream is down"):  # the SDK wraps tool errors
        run(Agent(name="buyer", model=model, tools=[failing]))

    snap = guard.snapshot()
    assert (snap.held.amount, snap.external.amount) == (Decimal(0), Decimal("0.40"))
    assert not spend.open_holds
