"""Tool guardrails for the OpenAI Agents SDK: hold before a function tool runs, settle after."""

from __future__ import annotations

import inspect
import json
import warnings
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

from spendguard import Hold, InvalidArgumentError, Settlement, SpendGuard
from spendguard.approval import Approvals
from spendguard.gate import GuardResolver, OnBlocked, ToolGate, call_key
from spendguard.pricing import Blocked, PriceRule, Pricing
from spendguard.types import ReleaseOn
from spendguard_openai_agents._approval import (
    Formatter,
    NeedsApproval,
    approval_formatter,
    needs_approval,
    take_approved,
)

__all__ = ["BlockBehavior", "SpendGuardToolGuardrails", "ToolOptions"]

BlockBehavior = Literal["reject_content", "raise_exception"]


class ToolOptions(TypedDict):
    """Keyword arguments for ``agents.function_tool`` that wire the guard into one tool."""

    tool_input_guardrails: list[ToolInputGuardrail[Any]]
    tool_output_guardrails: list[ToolOutputGuardrail[Any]]
    failure_error_function: ToolErrorFunction | None


class SpendGuardToolGuardrails:
    """Keeps an OpenAI Agents SDK run's function tool calls inside the session budget.

    :attr:`input_guardrail` holds each call's price; a call that does not fit gets
    ``reject_content`` (the model reads why) or, with ``block_behavior="raise_exception"``,
    ``ToolInputGuardrailTripwireTriggered`` (``output_info`` is the ``Blocked``). The SDK has no
    "after tool" event, so :attr:`output_guardrail` commits a call that returned and
    :meth:`failure_error_function` settles one that raised: kept unless the error says nothing
    was spent. Holds are keyed by the call's ``ToolContext``, never by ``tool_call_id``.

    One agent serving many users resolves the guard per call: pass a resolver of the run's
    context (``RunContextWrapper.context``, what ``Runner.run(..., context=...)`` was given),
    e.g. ``lambda ctx: pool.get(ARN, ctx.session_id, user_id=ctx.user_id)``. A resolver that
    raises or returns no guard blocks the call (rule ``"session_unresolved"``).

    Args:
        guard: The guard of the payment session the agent spends from, or a resolver: a
            callable of the run's context returning the guard.
        pricing: Price rules by tool name, a :class:`~spendguard.pricing.Pricing` or a mapping.
        settlement: How committed charges settle, default the guard's.
        release_on: Exception types that, raised by a tool, mean it spent nothing.
        on_blocked: Called with each ``Blocked`` call (a :data:`BlockBehavior` is deprecated).
        block_behavior: What the SDK does with a blocked call.
        approvals: Calls whose price needs a person's approval
            (:class:`spendguard.approval.Approvals`) stop the run through the SDK's
            ``needs_approval`` while their price is held: give each priced tool
            ``needs_approval=guardrails.needs_approval(name)`` and the run config
            ``tool_error_formatter=guardrails.tool_error_formatter()`` (a rejection releases
            the money). Approve or reject ``result.interruptions`` on the run state and run
            again in the same process; each call above the threshold needs its own approval
            (``always_approve`` does not carry over to the next call).
    """

    def __init__(
        self,
        guard: SpendGuard | GuardResolver,
        pricing: Pricing | Mapping[str, PriceRule],
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
        on_blocked: OnBlocked | BlockBehavior | None = None,
        block_behavior: BlockBehavior = "reject_content",
        approvals: Approvals | None = None,
    ) -> None:
        if isinstance(on_blocked, str):
            msg = f"on_blocked takes a callback now; pass block_behavior={on_blocked!r} instead"
            warnings.warn(msg, DeprecationWarning, stacklevel=2)
            block_behavior, on_blocked = on_blocked, None
        if block_behavior not in ("reject_content", "raise_exception"):
            msg = f"unknown block_behavior {block_behavior!r}, see BlockBehavior"
            raise InvalidArgumentError(msg, argument="block_behavior")
        self._block_behavior = block_behavior
        if approvals is not None and not isinstance(approvals, Approvals):
            msg = f"approvals must be an Approvals, got {approvals!r}"
            raise InvalidArgumentError(msg, argument="approvals")
        self.approvals = approvals
        self._gate = ToolGate(
            guard, pricing, settlement=settlement, release_on=release_on, on_blocked=on_blocked
        )
        self.input_guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(
            guardrail_function=self._check_input, name="spendguard_budget"
        )
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(
            guardrail_function=self._commit_output, name="spendguard_settle"
        )

    @property
    def open_holds(self) -> Mapping[str, Hold]:
        """Holds of calls in flight, by hold id (a snapshot; falsy when none)."""
        return self._gate.open_holds

    def failure_error_function(
        self, formatter: ToolErrorFunction | None = default_tool_error_function
    ) -> ToolErrorFunction:
        """A ``failure_error_function`` that settles the failed call, then calls ``formatter``
        (the SDK's default; ``None`` re-raises, failing the run as the SDK would)."""

        async def settle_then_format(ctx: RunContextWrapper[Any], error: Exception) -> str:
            await self._gate.asettle(call_key(ctx), ran=True, error=error)
            if formatter is None:
                raise error
            message = formatter(ctx, error)
            return await message if inspect.isawaitable(message) else message

        return settle_then_format

    def tool_options(
        self,
        *,
        input_guardrails: Sequence[ToolInputGuardrail[Any]] = (),
        output_guardrails: Sequence[ToolOutputGuardrail[Any]] = (),
        failure_error_function: ToolErrorFunction | None = default_tool_error_function,
    ) -> ToolOptions:
        """``function_tool`` keyword arguments wiring the guard in beside your own guardrails
        and error formatter: the budget check runs after your input guardrails (a call they
        reject holds nothing), the commit before your output guardrails."""
        return ToolOptions(
            tool_input_guardrails=[*input_guardrails, self.input_guardrail],
            tool_output_guardrails=[self.output_guardrail, *output_guardrails],
            failure_error_function=self.failure_error_function(failure_error_function),
        )

    def needs_approval(self, tool_name: str) -> NeedsApproval:
        """``function_tool(needs_approval=...)`` for the tool ``tool_name``: above the
        threshold, hold the price and have the SDK ask a person.

        Raises:
            InvalidArgumentError: The guardrails have no ``approvals``.
        """
        return needs_approval(self._approvals(), self._gate, tool_name)

    def tool_error_formatter(self, formatter: Formatter | None = None) -> Formatter:
        """``RunConfig(tool_error_formatter=...)``: releases the money of a rejected call and
        tells the model a person declined it, then defers to ``formatter`` for the rest.

        Raises:
            InvalidArgumentError: The guardrails have no ``approvals``.
        """
        return approval_formatter(self._approvals(), formatter)

    def _approvals(self) -> Approvals:
        if self.approvals is None:
            raise InvalidArgumentError("pass approvals= to use approvals", argument="approvals")
        return self.approvals

    async def _check_input(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        if self.approvals is not None:
            taken = take_approved(self.approvals, self._gate, ctx, _arguments(ctx.tool_arguments))
            if isinstance(taken, Blocked):
                return self._refuse(taken)
            if isinstance(taken, Hold):  # approved: settled like any admitted call
                self._gate.adopt(call_key(ctx), taken)
            if taken is not None:
                return ToolGuardrailFunctionOutput.allow()
        blocked = await self._gate.aadmit(
            call_key(ctx), ctx.tool_name, ctx.tool_arguments, ctx.context
        )
        if blocked is None:
            return ToolGuardrailFunctionOutput.allow()
        return self._refuse(blocked)

    def _refuse(self, blocked: Blocked) -> ToolGuardrailFunctionOutput:
        if self._block_behavior == "raise_exception":
            return ToolGuardrailFunctionOutput.raise_exception(output_info=blocked)
        return ToolGuardrailFunctionOutput.reject_content(blocked.message, output_info=blocked)

    async def _commit_output(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        await self._gate.asettle(call_key(data.context), ran=True)
        return ToolGuardrailFunctionOutput.allow()


def _arguments(raw: str) -> dict[str, object]:
    try:
        parsed = json.loads(raw or "{}")
    except (ValueError, RecursionError):
        return {}  # unreadable: the gate refuses it with the pricing error
    return parsed if isinstance(parsed, dict) else {}
