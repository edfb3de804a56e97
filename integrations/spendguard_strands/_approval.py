"""Approval of a tool call through a Strands interrupt, for the hook provider.

``BeforeToolCallEvent`` holds the call's price (approval lease), pins the request to the call
and raises the interrupt ``"spendguard_approval"`` with the request's payload as its reason:
the agent stops with ``result.stop_reason == "interrupt"``. The application resumes with
``agent([{"interruptResponse": {"interruptId": interrupt.id, "response": answer}}])``, the
answer made by ``spendguard.approval.answer(interrupt.reason, approved)``. The resumed tool
call finds its pin and takes the answer for the request asked, with the money held then.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from strands.hooks import BeforeToolCallEvent
from strands.interrupt import InterruptException

from spendguard import Hold
from spendguard.approval import ApprovalRejectedError, Approvals
from spendguard.gate import ToolGate
from spendguard.pricing import Blocked

__all__ = ["INTERRUPT_NAME", "approve"]

#: The name of the interrupt a call waiting for approval raises.
INTERRUPT_NAME = "spendguard_approval"


async def approve(
    approvals: Approvals, gate: ToolGate, event: BeforeToolCallEvent
) -> Hold | Blocked | None:
    """The approved hold of this call, a refusal, or None when it needs no approval."""
    tool_use = event.tool_use
    call = str(tool_use.get("toolUseId") or "")
    key: Hashable = ("strands", id(event.agent), call)
    arguments = tool_use.get("input")
    arguments = arguments if isinstance(arguments, Mapping) else {}
    pending = await approvals.aopen(
        gate, key, tool_use["name"], arguments, call=call, context=event.invocation_state
    )
    if pending is None or isinstance(pending, Blocked):
        return pending
    try:
        reply = event.interrupt(INTERRUPT_NAME, reason=pending.payload())
    except InterruptException:
        raise  # the agent stops; the hold stays pinned for the resume
    except BaseException:
        approvals.abandon(key)
        raise
    outcome = approvals.close(gate, key, pending, reply)
    if outcome is not None:
        return outcome
    # An answer to another request; one callback raises one interrupt, so it counts as no.
    approvals.abandon(key)
    return approvals.blocked(gate, tool_use["name"], ApprovalRejectedError(pending.request))
