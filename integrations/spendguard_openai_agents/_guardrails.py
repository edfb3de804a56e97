"""Tool guardrails for the OpenAI Agents SDK: hold before a function tool runs, settle after."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from agents import (
    RunContextWrapper,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
    default_tool_error_function,
)
from agents.tool import ToolErrorFunction
from agents.tool_context import ToolContext

from spendguard import Hold, Settlement, SpendGuard
from spendguard.pricing import Blocked, Pricing, aadmit, settle

__all__ = ["OnBlocked", "SpendGuardToolGuardrails", "ToolOptions"]

OnBlocked = Literal["reject_content", "raise_exception"]


class ToolOptions(TypedDict):
    """Keyword arguments for ``agents.function_tool`` that wire the guard into one tool."""

    tool_input_guardrails: list[ToolInputGuardrail[Any]]
    tool_output_guardrails: list[ToolOutputGuardrail[Any]]
    failure_error_function: ToolErrorFunction | None


class SpendGuardToolGuardrails:
    """Keeps an OpenAI Agents SDK run's function tool calls inside the session budget.

    * :attr:`input_guardrail` prices ``tool_arguments`` (the raw JSON string) and holds the
      price, keyed by ``tool_call_id``. A call that does not fit gets ``reject_content`` with a
      message for the model (the run continues), or ``raise_exception``
      (``ToolInputGuardrailTripwireTriggered``, ``output_info`` is the
      :class:`~spendguard.pricing.Blocked`) when ``on_blocked="raise_exception"``.
    * The SDK has no "after tool" event for guardrails, so :attr:`output_guardrail` commits the
      hold once the tool returned, and :meth:`failure_error_function` releases it when the tool
      raised (before formatting the error for the model as usual). A rejected call never holds.

    Wire all three with ``@function_tool(**spend.tool_options())``. Output guardrails run
    after the tool's own timeout handling: a tool that timed out is committed (it may have
    spent). Call ids must be unique among the runs sharing one instance, as the model
    provider's are; a second input check for a call id already held (the SDK's
    pre-approval guardrail mode runs the check twice) reuses the hold.

    Args:
        guard: The guard of the payment session the agent spends from.
        pricing: Price rules by tool name; tools without a rule are free unless strict.
        on_blocked: What the SDK does with a blocked call.
        settlement: How committed charges settle, default the guard's.
    """

    def __init__(
        self,
        guard: SpendGuard,
        pricing: Pricing,
        *,
        on_blocked: OnBlocked = "reject_content",
        settlement: Settlement | None = None,
    ) -> None:
        if on_blocked not in ("reject_content", "raise_exception"):
            raise ValueError(
                f"on_blocked must be 'reject_content' or 'raise_exception', got {on_blocked!r}"
            )
        self._guard = guard
        self._pricing = pricing
        self._on_blocked = on_blocked
        self._settlement = settlement
        self._holds: dict[str, Hold] = {}
        self._lock = threading.Lock()
        self.input_guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self._check_input, name="spendguard_budget"
        )
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(
            guardrail_function=self._commit_output, name="spendguard_settle"
        )

    @property
    def open_holds(self) -> Mapping[str, Hold]:
        """Holds of calls in flight, by ``tool_call_id`` (a snapshot)."""
        with self._lock:
            return dict(self._holds)

    def failure_error_function(
        self, formatter: ToolErrorFunction | None = default_tool_error_function
    ) -> ToolErrorFunction:
        """Build a ``failure_error_function`` that releases the failed call's hold.

        Args:
            formatter: What the model sees for the error, the SDK's default unless given.
                ``None`` keeps the SDK meaning: the error propagates and the run fails.

        Returns:
            A function for ``function_tool(failure_error_function=...)``.
        """

        async def release_then_format(ctx: RunContextWrapper[Any], error: Exception) -> str:
            if isinstance(ctx, ToolContext):
                self._settle(ctx.tool_call_id, ran=False)
            if formatter is None:
                raise error
            message = formatter(ctx, error)
            return await message if inspect.isawaitable(message) else message

        return release_then_format

    def tool_options(
        self,
        *,
        input_guardrails: Sequence[ToolInputGuardrail[Any]] = (),
        output_guardrails: Sequence[ToolOutputGuardrail[Any]] = (),
        failure_error_function: ToolErrorFunction | None = default_tool_error_function,
    ) -> ToolOptions:
        """Keyword arguments for ``function_tool`` that wire the guard in beside your own.

        The budget check runs after your input guardrails (a call they reject never holds
        money) and the commit before your output guardrails.

        Args:
            input_guardrails: Your own input guardrails.
            output_guardrails: Your own output guardrails.
            failure_error_function: Your own error formatter (see
                :meth:`failure_error_function`).

        Returns:
            ``tool_input_guardrails``, ``tool_output_guardrails`` and ``failure_error_function``.
        """
        return ToolOptions(
            tool_input_guardrails=[*input_guardrails, self.input_guardrail],
            tool_output_guardrails=[self.output_guardrail, *output_guardrails],
            failure_error_function=self.failure_error_function(failure_error_function),
        )

    async def _check_input(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        context = data.context
        with self._lock:
            if context.tool_call_id in self._holds:
                return ToolGuardrailFunctionOutput.allow()
        outcome = await aadmit(
            self._guard,
            self._pricing,
            context.tool_name,
            context.tool_arguments,
            settlement=self._settlement,
        )
        if isinstance(outcome, Blocked):
            if self._on_blocked == "raise_exception":
                return ToolGuardrailFunctionOutput.raise_exception(output_info=outcome)
            return ToolGuardrailFunctionOutput.reject_content(outcome.message, output_info=outcome)
        if outcome is not None:
            with self._lock:
                self._holds[context.tool_call_id] = outcome
        return ToolGuardrailFunctionOutput.allow()

    def _commit_output(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        self._settle(data.context.tool_call_id, ran=True)
        return ToolGuardrailFunctionOutput.allow()

    def _settle(self, tool_call_id: str, *, ran: bool) -> None:
        with self._lock:
            hold = self._holds.pop(tool_call_id, None)
        if hold is not None:
            settle(hold, ran=ran)
