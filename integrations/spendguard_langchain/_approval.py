"""Approval of a tool call through a LangGraph ``interrupt``, for the agent middleware.

The call's price is held, then the run pauses with the request's payload as the interrupt
value. The person answers with ``Command(resume=spendguard.approval.answer(value, approved))``.
LangGraph runs the tool step again on resume; the middleware finds the call pinned (by
thread and tool call id), so it takes the answer for the request asked, with the money
held then, whatever the threshold or the budget say by now. An answer for another request
(the call's arguments were edited meanwhile) makes it ask again.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast

from spendguard import Hold
from spendguard.approval import Approvals, PendingApproval
from spendguard.gate import ToolGate
from spendguard.pricing import Blocked
from spendguard_langchain._common import INSTALL_HINT

try:
    from langchain.agents.middleware.types import ToolCallRequest
    from langchain_core.runnables import RunnableConfig
    from langchain_core.runnables.config import set_config_context, var_child_runnable_config
    from langgraph.errors import GraphBubbleUp
    from langgraph.types import interrupt
except ImportError as exc:  # tested by test_install_hint.py
    raise ImportError(INSTALL_HINT) from exc

__all__ = ["aapprove", "approve"]


def approve(
    approvals: Approvals, gate: ToolGate, request: ToolCallRequest
) -> Hold | Blocked | None:
    """The approved hold of this call, a refusal, or None when it needs no approval."""
    key, call = _identity(request)
    tool_call = request.tool_call
    pending = approvals.open(
        gate, key, tool_call["name"], tool_call["args"], call=call, context=_context(request)
    )
    if pending is None or isinstance(pending, Blocked):
        return pending
    return _ask(approvals, gate, key, pending, request)


async def aapprove(
    approvals: Approvals, gate: ToolGate, request: ToolCallRequest
) -> Hold | Blocked | None:
    """Async :func:`approve`."""
    key, call = _identity(request)
    tool_call = request.tool_call
    pending = await approvals.aopen(
        gate, key, tool_call["name"], tool_call["args"], call=call, context=_context(request)
    )
    if pending is None or isinstance(pending, Blocked):
        return pending
    return _ask(approvals, gate, key, pending, request)


def _ask(
    approvals: Approvals,
    gate: ToolGate,
    key: Hashable,
    pending: PendingApproval,
    request: ToolCallRequest,
) -> Hold | Blocked:
    while True:
        try:
            reply = _interrupt(request, pending.payload())
        except GraphBubbleUp:
            raise  # the run pauses; the hold stays pinned for the resume
        except BaseException:
            approvals.abandon(key)  # e.g. no checkpointer: nothing will ever answer
            raise
        outcome = approvals.close(gate, key, pending, reply)
        if outcome is not None:
            return outcome


def _interrupt(request: ToolCallRequest, payload: dict[str, object]) -> object:
    config = getattr(request.runtime, "config", None)
    if var_child_runnable_config.get() is None and isinstance(config, dict):
        # Python 3.10 does not carry the run's config into async tasks: give it back.
        with set_config_context(cast(RunnableConfig, config)) as context:
            return context.run(interrupt, payload)
    return interrupt(payload)


def _identity(request: ToolCallRequest) -> tuple[Hashable, str]:
    """The call's key across the pause (thread and tool call id; the task when the id is
    blank), and its identity bound into the request (thread, task and tool call id: a state
    edited meanwhile makes a new task, so a new request)."""
    config: Any = getattr(request.runtime, "config", None) or {}
    configurable = config.get("configurable", {}) if isinstance(config, dict) else {}
    thread = str(configurable.get("thread_id", ""))
    task = str(configurable.get("checkpoint_ns", ""))
    call_id = str(request.tool_call.get("id") or "")
    return ("langgraph", thread, call_id or task), f"{thread}/{task}/{call_id}"


def _context(request: ToolCallRequest) -> object:
    return getattr(request.runtime, "context", None)
