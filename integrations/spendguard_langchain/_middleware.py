"""The middleware form: a langchain 1.x agent middleware that admits every tool call."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from spendguard import Hold, InvalidArgumentError, Settlement, SpendGuard
from spendguard.approval import Approvals
from spendguard.gate import GuardResolver, OnBlocked, ToolGate
from spendguard.pricing import Blocked, settle
from spendguard.types import ReleaseOn
from spendguard_langchain._approval import aapprove, approve
from spendguard_langchain._common import INSTALL_HINT, Prices, pricing_argument

try:
    from langchain.agents.middleware import AgentMiddleware, AgentState, hook_config
    from langchain.agents.middleware.types import ToolCallRequest
    from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
    from langgraph.runtime import Runtime
    from langgraph.types import Command
except ImportError as exc:  # tested by test_install_hint.py
    raise ImportError(INSTALL_HINT) from exc

__all__ = ["ExitBehavior", "SpendLimitMiddleware"]

ExitBehavior = Literal["continue", "error", "end"]
"""What happens when a tool call is blocked (as in LangChain's ``ToolCallLimitMiddleware``).

- ``"continue"``: the call gets an error ``ToolMessage`` and the model carries on.
- ``"error"``: the core's error (``BudgetExceededError``...) is raised out of the agent run.
- ``"end"``: the call gets an error ``ToolMessage``; once the tool step is over the run stops
  with a final ``AIMessage`` instead of calling the model again.
"""

_MARK = "spendguard_blocked"
_Result = ToolMessage | Command[Any]


class SpendLimitMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Admit each tool call against the payment session before it runs.

    ``wrap_tool_call``/``awrap_tool_call`` hold the call's price, run it, then commit, also
    when the tool raised or returned an error ``ToolMessage`` (it may have spent), unless the
    error says nothing was spent (``NothingSpentError``, a ``release_on`` type). The hold lives
    in the wrap call, never keyed by the model's tool call id. Parallel calls of one turn are
    held one at a time against one budget; a call that does not fit gets its own error
    ``ToolMessage`` (requested, available, do not retry).

    One agent serving many users resolves the guard per call: pass a resolver of the run's
    ``runtime.context`` (what ``agent.invoke(..., context=...)`` was given), e.g.
    ``lambda ctx: pool.get(ARN, ctx.session_id, user_id=ctx.user_id)`` with a
    :class:`~spendguard.pool.GuardPool`. To read the run's config instead, call
    ``langgraph.config.get_config()`` inside the resolver. A resolver that raises or returns
    no guard blocks the call (rule ``"session_unresolved"``).

    Args:
        guard: The guard whose payment session pays for the tools, or a resolver: a callable
            of the run's ``runtime.context`` returning the guard.
        pricing: Price rules by tool name, a :class:`~spendguard.pricing.Pricing` or a mapping.
        settlement: How committed charges settle, default the guard's.
        release_on: Exception types that, raised by a tool, mean it spent nothing.
        on_blocked: Called with each :class:`~spendguard.pricing.Blocked` call.
        exit_behavior: ``"continue"`` (default), ``"error"`` or ``"end"``, see
            :data:`ExitBehavior`.
        approvals: Calls whose price needs a person's approval
            (:class:`spendguard.approval.Approvals`) pause the run with a LangGraph
            ``interrupt`` while their price is held (the agent needs a checkpointer); resume
            with ``Command(resume=spendguard.approval.answer(interrupt.value, approved))``.
            A rejection releases the money and gives the model an error ``ToolMessage``.
        prices: Deprecated alias of ``pricing``.

    Raises:
        InvalidArgumentError: An argument is of the wrong kind, e.g. ``exit_behavior``.
    """

    def __init__(
        self,
        guard: SpendGuard | GuardResolver,
        pricing: Prices | None = None,
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        on_blocked: OnBlocked | None = None,
        exit_behavior: ExitBehavior = "continue",
        approvals: Approvals | None = None,
        prices: Prices | None = None,
    ) -> None:
        super().__init__()
        if exit_behavior not in ("continue", "error", "end"):
            msg = f"exit_behavior must be 'continue', 'error' or 'end', not {exit_behavior!r}"
            raise InvalidArgumentError(msg, argument="exit_behavior")
        self.guard = guard
        self.exit_behavior: ExitBehavior = exit_behavior
        if approvals is not None and not isinstance(approvals, Approvals):
            msg = f"approvals must be an Approvals, got {approvals!r}"
            raise InvalidArgumentError(msg, argument="approvals")
        self.approvals = approvals
        self._gate = ToolGate(
            guard,
            pricing_argument(pricing, prices),
            settlement=settlement,
            release_on=release_on,
            on_blocked=on_blocked,
        )

    @property
    def open_holds(self) -> Mapping[str, Hold]:
        """Holds of tool calls in flight, by hold id (a snapshot; falsy when none)."""
        return self._gate.open_holds

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], _Result]
    ) -> _Result:
        """Hold the call's price, run it, then settle."""
        if self.approvals is not None:
            approved = approve(self.approvals, self._gate, request)
            if isinstance(approved, Blocked):
                return self._blocked(request, approved)
            if approved is not None:
                return _run_held(approved, handler, request)
        key = object()
        call = request.tool_call
        if blocked := self._gate.admit(key, call["name"], call["args"], _context(request)):
            return self._blocked(request, blocked)
        try:
            result = handler(request)
        except BaseException as error:
            self._gate.settle(key, ran=not _is_block(error), error=error)
            raise
        self._gate.settle(key, ran=not _is_block(result))
        return result

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[_Result]],
    ) -> _Result:
        """Async twin of :meth:`wrap_tool_call` (needed under ``ainvoke``)."""
        if self.approvals is not None:
            approved = await aapprove(self.approvals, self._gate, request)
            if isinstance(approved, Blocked):
                return self._blocked(request, approved)
            if approved is not None:
                return await _arun_held(approved, handler, request)
        key = object()
        call = request.tool_call
        context = _context(request)
        if blocked := await self._gate.aadmit(key, call["name"], call["args"], context):
            return self._blocked(request, blocked)
        try:
            result = await handler(request)
        except BaseException as error:
            await self._gate.asettle(key, ran=not _is_block(error), error=error)
            raise
        await self._gate.asettle(key, ran=not _is_block(result))
        return result

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """With ``exit_behavior="end"``, stop the run after a tool step that had a blocked call."""
        return self._end_after_block(state["messages"])

    @hook_config(can_jump_to=["end"])
    async def abefore_model(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`before_model`."""
        return self._end_after_block(state["messages"])

    @property
    def name(self) -> str:
        """Unique per payment session, so two guards (say per user and per agent) can stack.

        With a resolver: the resolver's name (``SpendLimitMiddleware[<lambda>]``), so two
        stacked resolving middlewares need resolvers of different names.
        """
        guard = self._gate.guard
        if guard is not None:
            return f"{type(self).__name__}[{guard.payment_session_id}]"
        return f"{type(self).__name__}[{getattr(self.guard, '__qualname__', 'resolver')}]"

    def _blocked(self, request: ToolCallRequest, blocked: Blocked) -> ToolMessage:
        if self.exit_behavior == "error":
            _BLOCK_ERRORS[id(blocked.error)] = blocked.error
            raise blocked.error
        call = request.tool_call
        return ToolMessage(
            content=blocked.message,
            tool_call_id=call["id"],
            name=call["name"],
            status="error",
            artifact={_MARK: self.name, "tool": blocked.tool_name},
        )

    def _end_after_block(self, messages: Sequence[AnyMessage]) -> dict[str, Any] | None:
        if self.exit_behavior != "end":
            return None
        reasons: list[str] = []
        for message in reversed(messages):
            if isinstance(message, AIMessage):
                break
            if _blocked_by(message) == self.name:
                reasons.append(str(message.content))
        if not reasons:
            return None
        text = "Stopped to stay within the payment budget. " + " ".join(reversed(reasons))
        return {"jump_to": "end", "messages": [AIMessage(content=text)]}


def _context(request: ToolCallRequest) -> object:
    runtime = request.runtime
    return getattr(runtime, "context", None)


def _run_held(
    hold: Hold, handler: Callable[[ToolCallRequest], _Result], request: ToolCallRequest
) -> _Result:
    """Run an approved call with its hold, then settle it as the gate would."""
    try:
        result = handler(request)
    except BaseException as error:
        settle(hold, ran=not _is_block(error), error=error)
        raise
    settle(hold, ran=not _is_block(result))
    return result


async def _arun_held(
    hold: Hold,
    handler: Callable[[ToolCallRequest], Awaitable[_Result]],
    request: ToolCallRequest,
) -> _Result:
    try:
        result = await handler(request)
    except BaseException as error:
        await hold._guard._offload(
            functools.partial(settle, hold, ran=not _is_block(error), error=error)
        )
        raise
    await hold._guard._offload(functools.partial(settle, hold, ran=not _is_block(result)))
    return result


# Errors raised for blocked calls (exit_behavior="error"), by id: exceptions may be unhashable.
_BLOCK_ERRORS: weakref.WeakValueDictionary[int, BaseException] = weakref.WeakValueDictionary()


def _is_block(outcome: BaseException | _Result) -> bool:
    """Whether a stacked spendguard middleware blocked the call: the tool never ran."""
    if isinstance(outcome, BaseException):
        return _BLOCK_ERRORS.get(id(outcome)) is outcome
    return isinstance(outcome, ToolMessage) and _blocked_by(outcome) is not None


def _blocked_by(message: AnyMessage) -> object:
    artifact = getattr(message, "artifact", None) if isinstance(message, ToolMessage) else None
    return artifact.get(_MARK) if isinstance(artifact, dict) else None
