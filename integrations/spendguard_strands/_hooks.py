"""The Strands hook provider: hold before a tool call, settle after it, through a ToolGate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strands.hooks import (
    AfterToolCallEvent,
    BeforeToolCallEvent,
    HookOrder,
    HookProvider,
    HookRegistry,
)

from spendguard import Hold, InvalidArgumentError, Settlement, SpendGuard
from spendguard.approval import Approvals
from spendguard.gate import GuardResolver, OnBlocked, ToolGate, call_key
from spendguard.pricing import Blocked, PriceRule, Pricing
from spendguard.types import ReleaseOn
from spendguard_strands._approval import approve

__all__ = ["SpendGuardHooks"]


class SpendGuardHooks(HookProvider):
    """Keeps a Strands agent's tool calls inside its AgentCore payment session budget.

    ``BeforeToolCallEvent`` prices the call and holds the price; a call that does not fit is
    cancelled with ``event.cancel_tool`` set to a message the model can act on (raising there
    would abort the whole agent call). ``AfterToolCallEvent`` releases the hold of a call that
    did not run (cancelled, tool not found) and commits the hold of one that ran, also when it
    raised, unless the error says nothing was spent (:class:`~spendguard.NothingSpentError` or
    a ``release_on`` type).

    Holds are keyed by the identity of the call's ``tool_use`` dict, which Strands passes to
    both events, never by the model's ``toolUseId`` (servers repeat or blank it). Both
    callbacks run at ``HookOrder.SDK_LAST``: the price comes from the final ``tool_use`` and a
    call another hook cancelled holds nothing.

    One agent serving many users resolves the guard per call: pass a resolver of the call's
    ``invocation_state`` (what ``agent(prompt, invocation_state={...})`` was given; Strands
    adds ``"agent"``, so ``state["agent"].state`` is the agent state), e.g.
    ``lambda state: pool.get(ARN, state["session_id"], user_id=state["user_id"])``. A resolver
    that raises or returns no guard cancels the call (rule ``"session_unresolved"``).

    Args:
        guard: The guard of the payment session the agent spends from, or a resolver: a
            callable of the call's ``invocation_state`` returning the guard.
        pricing: Price rules by tool name, a :class:`~spendguard.pricing.Pricing` or a mapping.
        settlement: How committed charges settle, default the guard's.
        release_on: Exception types that, raised by a tool, mean it spent nothing.
        on_blocked: Called with each :class:`~spendguard.pricing.Blocked` call.
        approvals: Calls whose price needs a person's approval
            (:class:`spendguard.approval.Approvals`) raise the Strands interrupt
            ``"spendguard_approval"`` while their price is held; resume the agent with an
            ``interruptResponse`` whose response is
            ``spendguard.approval.answer(interrupt.reason, approved)``. A rejection releases
            the money and cancels the call with a message for the model.

    Raises:
        InvalidArgumentError: ``approvals`` is not an ``Approvals``.
    """

    def __init__(
        self,
        guard: SpendGuard | GuardResolver,
        pricing: Pricing | Mapping[str, PriceRule],
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        on_blocked: OnBlocked | None = None,
        approvals: Approvals | None = None,
    ) -> None:
        if approvals is not None and not isinstance(approvals, Approvals):
            msg = f"approvals must be an Approvals, got {approvals!r}"
            raise InvalidArgumentError(msg, argument="approvals")
        self.approvals = approvals
        self._gate = ToolGate(
            guard, pricing, settlement=settlement, release_on=release_on, on_blocked=on_blocked
        )

    @property
    def open_holds(self) -> Mapping[str, Hold]:
        """Holds of calls in flight, by hold id (a snapshot; falsy when none)."""
        return self._gate.open_holds

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
        tool_use = event.tool_use
        if self.approvals is not None:
            approved = await approve(self.approvals, self._gate, event)
            if isinstance(approved, Blocked):
                event.cancel_tool = approved.message
                return
            if approved is not None:  # settled after the call like any admitted one
                self._gate.adopt(call_key(tool_use), approved)
                return
        arguments = tool_use.get("input")
        arguments = arguments if isinstance(arguments, Mapping | str) else {}
        blocked = await self._gate.aadmit(
            call_key(tool_use), tool_use["name"], arguments, event.invocation_state
        )
        if blocked is not None:
            event.cancel_tool = blocked.message

    async def _after_tool(self, event: AfterToolCallEvent) -> None:
        ran = event.cancel_message is None and event.selected_tool is not None
        await self._gate.asettle(call_key(event.tool_use), ran=ran, error=event.exception)
