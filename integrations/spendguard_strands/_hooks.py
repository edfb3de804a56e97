"""The Strands hook provider: reserve before a tool call, settle after it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from strands.hooks import (
    AfterToolCallEvent,
    BeforeToolCallEvent,
    HookOrder,
    HookProvider,
    HookRegistry,
)

from spendguard import Hold, Settlement, SpendGuard
from spendguard.pricing import Blocked, Pricing, aadmit, settle

__all__ = ["SpendGuardHooks"]

# (id of the agent, toolUseId): tool use ids are unique per model response, not across agents.
_Key = tuple[int, str]


class SpendGuardHooks(HookProvider):
    """Keeps a Strands agent's tool calls inside its AgentCore payment session budget.

    On ``BeforeToolCallEvent`` the call is priced with ``pricing`` and the price is held in the
    guard. A call that does not fit is cancelled with ``event.cancel_tool`` set to a message the
    model can act on (the agent keeps running; raising here would abort the whole agent call).
    On ``AfterToolCallEvent`` the hold is committed when the tool ran, and released when it was
    cancelled, not found, or raised.

    The callbacks run last among ``BeforeToolCallEvent`` hooks (so the price is taken from the
    final ``tool_use``, after other hooks rewrote or cancelled it) and last among
    ``AfterToolCallEvent`` hooks. Holds are atomic in the guard's ledger, so the concurrent tool
    executor (Strands' default) cannot overspend.

    A hold whose ``AfterToolCallEvent`` never comes (another hook interrupted the call, or the
    agent was cancelled mid-tool) stays held; if the same call is resumed it is released before
    the call is priced again, otherwise the ledger's lease turns it into a charge (fail closed).

    Args:
        guard: The guard of the payment session the agent spends from.
        pricing: Price rules by tool name; tools without a rule are free unless strict.
        settlement: How committed charges settle, default the guard's.
    """

    def __init__(
        self, guard: SpendGuard, pricing: Pricing, *, settlement: Settlement | None = None
    ) -> None:
        self._guard = guard
        self._pricing = pricing
        self._settlement = settlement
        self._holds: dict[_Key, Hold] = {}
        self._lock = threading.Lock()

    @property
    def open_holds(self) -> Mapping[str, Hold]:
        """Holds of calls in flight, by ``toolUseId`` (a snapshot)."""
        with self._lock:
            return {tool_use_id: hold for (_, tool_use_id), hold in self._holds.items()}

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """Register the before and after tool call callbacks.

        Args:
            registry: The agent's hook registry.
            **kwargs: Unused, for forward compatibility with Strands.
        """
        registry.add_callback(BeforeToolCallEvent, self._before_tool, order=HookOrder.SDK_LAST)
        registry.add_callback(AfterToolCallEvent, self._after_tool, order=HookOrder.SDK_LAST)

    async def _before_tool(self, event: BeforeToolCallEvent) -> None:
        if event.cancel_tool:  # an earlier hook cancelled it: nothing will run, nothing to hold
            return
        key = _key(event.agent, event.tool_use)
        self._settle(key, ran=False)  # a stale hold from an interrupted attempt of this call
        tool_input = event.tool_use.get("input")
        arguments = tool_input if isinstance(tool_input, Mapping | str) else {}
        outcome = await aadmit(
            self._guard,
            self._pricing,
            event.tool_use["name"],
            arguments,
            settlement=self._settlement,
        )
        if isinstance(outcome, Blocked):
            event.cancel_tool = outcome.message
        elif outcome is not None:
            with self._lock:
                self._holds[key] = outcome

    async def _after_tool(self, event: AfterToolCallEvent) -> None:
        ran = (
            event.cancel_message is None
            and event.exception is None
            and event.selected_tool is not None
        )
        self._settle(_key(event.agent, event.tool_use), ran=ran)

    def _settle(self, key: _Key, *, ran: bool) -> None:
        with self._lock:
            hold = self._holds.pop(key, None)
        if hold is not None:
            settle(hold, ran=ran)


def _key(agent: object, tool_use: Mapping[str, Any]) -> _Key:
    return (id(agent), str(tool_use.get("toolUseId")))
