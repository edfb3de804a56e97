"""The middleware form: a langchain 1.x agent middleware that admits every tool call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from spendguard import Settlement, SpendGuard
from spendguard.pricing import Blocked, aadmit, admit, settle
from spendguard_langchain._common import INSTALL_HINT, Prices, as_pricing

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

    Each call is priced and reserved in ``wrap_tool_call``/``awrap_tool_call``; the hold is
    committed when the tool returns and released when it raises or returns an error
    ``ToolMessage``, so a hold never outlives its call. Parallel tool calls from one model turn
    are reserved one at a time against the same budget: each either gets a hold and runs, or is
    answered by its own error ``ToolMessage`` (requested, available, do not retry).

    Example:
        ```python
        agent = create_agent(
            model,
            tools=[buy_report],
            middleware=[SpendLimitMiddleware(guard, prices={"buy_report": "2.50"})],
        )
        ```

    Args:
        guard: The guard whose payment session pays for the tools.
        prices: Tool name -> price rule, or a ready :class:`~spendguard.pricing.Pricing`.
            Tools without a rule are free (unless the Pricing is strict).
        exit_behavior: ``"continue"`` (default), ``"error"`` or ``"end"``, see
            :data:`ExitBehavior`.
        settlement: Passed to every reservation; None uses the guard's default.

    Raises:
        ValueError: ``exit_behavior`` is not one of the three values.
    """

    def __init__(
        self,
        guard: SpendGuard,
        prices: Prices,
        *,
        exit_behavior: ExitBehavior = "continue",
        settlement: Settlement | None = None,
    ) -> None:
        super().__init__()
        if exit_behavior not in ("continue", "error", "end"):
            msg = f"exit_behavior must be 'continue', 'error' or 'end', not {exit_behavior!r}"
            raise ValueError(msg)
        self.guard = guard
        self.pricing = as_pricing(prices)
        self.exit_behavior: ExitBehavior = exit_behavior
        self.settlement = settlement

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], _Result]
    ) -> _Result:
        """Reserve the call's price, run it, then commit or release."""
        call = request.tool_call
        outcome = admit(
            self.guard, self.pricing, call["name"], call["args"], settlement=self.settlement
        )
        if outcome is None:
            return handler(request)
        if isinstance(outcome, Blocked):
            return self._blocked(request, outcome)
        try:
            result = handler(request)
        except BaseException:
            settle(outcome, ran=False)
            raise
        settle(outcome, ran=not _is_error(result))
        return result

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[_Result]],
    ) -> _Result:
        """Async twin of :meth:`wrap_tool_call` (needed under ``ainvoke``)."""
        call = request.tool_call
        outcome = await aadmit(
            self.guard, self.pricing, call["name"], call["args"], settlement=self.settlement
        )
        if outcome is None:
            return await handler(request)
        if isinstance(outcome, Blocked):
            return self._blocked(request, outcome)
        try:
            result = await handler(request)
        except BaseException:
            settle(outcome, ran=False)
            raise
        settle(outcome, ran=not _is_error(result))
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
        """Unique per payment session, so two guards (say per user and per agent) can stack."""
        return f"{type(self).__name__}[{self.guard.payment_session_id}]"

    def _blocked(self, request: ToolCallRequest, blocked: Blocked) -> ToolMessage:
        if self.exit_behavior == "error":
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


def _is_error(result: _Result) -> bool:
    return isinstance(result, ToolMessage) and result.status == "error"


def _blocked_by(message: AnyMessage) -> object:
    artifact = getattr(message, "artifact", None) if isinstance(message, ToolMessage) else None
    return artifact.get(_MARK) if isinstance(artifact, dict) else None
