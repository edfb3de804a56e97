"""spendguard for Strands Agents: a hook provider that keeps tool calls inside the budget.

Install with ``pip install "spendguard[strands]"``::

    from spendguard import SpendGuard
    from spendguard.pricing import Pricing
    from spendguard_strands import SpendGuardHooks

    hooks = SpendGuardHooks(guard, Pricing({"buy_report": "0.25"}))
    agent = Agent(model=model, tools=[buy_report], hooks=[hooks])
"""

from __future__ import annotations

try:
    import strands.hooks  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a subprocess-free test
    raise ImportError(
        'spendguard_strands needs Strands Agents: pip install "spendguard[strands]"'
    ) from exc

from spendguard_strands._hooks import SpendGuardHooks

__all__ = ["SpendGuardHooks"]
