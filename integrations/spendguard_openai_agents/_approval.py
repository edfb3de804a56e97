"""Approval of a function tool call through the OpenAI Agents SDK's ``needs_approval``.

``needs_approval`` prices the call; above the threshold it holds the price (approval lease),
pins the request to the call id and answers True: the run stops with an interruption. The
application approves or rejects it on the run state (``state.approve(item)``,
``state.reject(item)``) and runs again. The SDK records the answer per call and does not ask
``needs_approval`` again, so the decision stays the one made when the person was asked. On
the approved run, the budget guardrail takes the pinned hold (once, and only if the call's
arguments are still those approved); a rejection reaches the run config's
``tool_error_formatter``, which releases the hold.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from agents import RunContextWrapper, ToolErrorFormatterArgs
from agents.tool_context import ToolContext

from spendguard import Hold, SpendGuardError
from spendguard.approval import ApprovalRejectedError, Approvals, PendingApproval
from spendguard.gate import ToolGate
from spendguard.pricing import Blocked

__all__ = ["Formatter", "NeedsApproval", "approval_formatter", "needs_approval", "take_approved"]

#: The ``needs_approval`` callable of ``function_tool``.
NeedsApproval = Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]
#: ``RunConfig.tool_error_formatter``.
Formatter = Callable[[ToolErrorFormatterArgs[Any]], Any]


def key_of(call_id: str) -> Hashable:
    return ("openai-agents", call_id)


def needs_approval(approvals: Approvals, gate: ToolGate, tool_name: str) -> NeedsApproval:
    """The ``needs_approval`` of the tool ``tool_name``: hold and pin above the threshold."""

    async def decide(ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
        pending = await approvals.aopen(
            gate, key_of(call_id), tool_name, params, call=call_id, context=ctx.context
        )
        return isinstance(pending, PendingApproval)

    return decide


def take_approved(
    approvals: Approvals, gate: ToolGate, ctx: ToolContext[Any], arguments: dict[str, Any]
) -> Hold | PendingApproval | Blocked | None:
    """In the budget guardrail: the approved hold of this call; its pending approval (input
    guardrails run before the person answered: the money is held, let the SDK ask); a
    refusal; or None when the call needs no approval (admit it as usual).

    A call above the threshold runs only with the hold pinned when the person was asked,
    approved by the SDK for this very call, with the arguments asked about.
    """
    key = key_of(ctx.tool_call_id)
    pending = approvals.pinned(key)
    if pending is None:
        try:
            price = gate.pricing.price(ctx.tool_name, arguments)
        except SpendGuardError:
            return None  # the gate refuses it with the pricing error
        if price is None or not approvals.required(price, ctx.tool_name):
            return None
        # Asked in another process, or approved for every call ("always_approve"): each
        # charge above the threshold needs its own approval, with its money held here.
        request = approvals.request(
            price, tool=ctx.tool_name, arguments=arguments, call=ctx.tool_call_id
        )
        missing = ApprovalRejectedError(request, rule="approval_missing")
        return approvals.blocked(gate, ctx.tool_name, missing)
    status = ctx.is_tool_approved(ctx.tool_name, ctx.tool_call_id)
    if status is None:
        return pending
    fits = approvals.fits(gate, pending, ctx.tool_name, arguments, ctx.tool_call_id)
    request = pending.request
    return approvals.close(
        gate, key, pending, request.approve() if status is True and fits else request.reject()
    )


def approval_formatter(approvals: Approvals, formatter: Formatter | None) -> Formatter:
    """A ``tool_error_formatter`` that releases the hold of a rejected call first."""

    async def format_error(args: ToolErrorFormatterArgs[Any]) -> Any:
        if args.kind == "approval_rejected":
            pending = approvals.pinned(key_of(args.call_id))
            if pending is not None:
                approvals.abandon(key_of(args.call_id))
                message: Any = ApprovalRejectedError(pending.request).model_message
                if formatter is None:
                    return message
        if formatter is None:
            return None
        message = formatter(args)
        return await message if inspect.isawaitable(message) else message

    return format_error
