"""spendguard for the OpenAI Agents SDK: tool guardrails that keep tool calls inside the budget.

Install with ``pip install "spendguard[openai-agents]"``::

    from spendguard_openai_agents import SpendGuardToolGuardrails

    spend = SpendGuardToolGuardrails(guard, {"buy_report": "0.25"})

    @function_tool(**spend.tool_options())
    async def buy_report(topic: str) -> str: ...
"""

from __future__ import annotations

try:
    import agents  # noqa: F401
except ImportError as exc:  # pragma: no cover - covered by test_import_hint
    raise ImportError(
        "spendguard_openai_agents needs the OpenAI Agents SDK: "
        'pip install "spendguard[openai-agents]"'
    ) from exc

from spendguard.gate import OnBlocked
from spendguard_openai_agents._guardrails import (
    BlockBehavior,
    SpendGuardToolGuardrails,
    ToolOptions,
)

__all__ = ["BlockBehavior", "OnBlocked", "SpendGuardToolGuardrails", "ToolOptions"]
