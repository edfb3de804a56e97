"""Approval above an amount: a person says yes or no while the money is held.

An :class:`Approvals` object says which charges need a person's approval (above an amount,
guard-wide or per tool) and who gives it (an *approver*: a sync or async callable). The flow
is the same for the decorator, :meth:`Approvals.reserve` and every framework adapter:

1. the charge is priced; at or below the threshold it is held as usual;
2. above it, the money is **held first**, with its own lease (``timeout``, capped by the
   session's expiry) instead of the guard's ``hold_lease``, so a slow answer cannot lapse
   into a charge of a call that never ran before the person is done deciding;
3. an :class:`ApprovalRequest` is made, bound to the amount, the tool, the arguments and the
   call: its :attr:`~ApprovalRequest.id` is a digest of all four, so an answer for other
   arguments or another call does not fit it;
4. the answer is taken once: an approval runs the call with the hold, anything else
   releases it and raises :class:`ApprovalRejectedError` (rule ``"approval_rejected"``, or
   ``"approval_timeout"`` when no answer came in time).

Frameworks that pause a run for a person (a LangGraph ``interrupt``, OpenAI Agents
``needs_approval``, Strands interrupts) use the same request and :meth:`Approvals.decide`,
and pin the pending request to the call (:meth:`Approvals.open`), so that a resumed run honours
the answer even if the budget or the threshold changed while the person decided.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from spendguard._approval_calls import PausedCalls
from spendguard._approval_types import (
    ApprovalAnswer,
    ApprovalRejectedError,
    ApprovalRequest,
    Approver,
    PendingApproval,
    answer,
)
from spendguard._errors import InvalidArgumentError
from spendguard._money import Amount, Money

if TYPE_CHECKING:
    from spendguard._guard import SpendGuard
    from spendguard._hold import Hold, ReleaseOn
    from spendguard._ledger import Settlement

__all__ = [
    "ApprovalAnswer",
    "ApprovalRejectedError",
    "ApprovalRequest",
    "Approvals",
    "Approver",
    "PendingApproval",
    "answer",
]


class Approvals(PausedCalls):
    """Which charges need a person's approval, who approves them, and for how long money is
    held while they decide.

    Args:
        above: Charges strictly above this amount need approval (None: none guard-wide).
        tools: Per tool name, a threshold that replaces ``above`` for that tool.
        approver: Called with each :class:`ApprovalRequest` by :meth:`reserve`,
            :meth:`areserve` and ``guard.charges(..., approvals=...)``; sync or async; only
            exactly ``True`` approves. Framework adapters ask through their own mechanism
            instead and do not need it.
        timeout: Seconds a person has to answer; also the lease of the hold meanwhile
            (capped by the session's expiry). After approval the call runs within what is
            left of it: a hold still unsettled then lapses into a charge (never forgotten).
        currency: Currency of the thresholds.
        timer: Monotonic clock the timeout is measured on (default ``time.monotonic``).

    Raises:
        InvalidArgumentError: A threshold, ``approver``, ``timeout`` or ``timer`` is invalid.
    """

    def reserve(
        self,
        guard: SpendGuard,
        amount: Amount,
        *,
        tool: str | None = None,
        arguments: Mapping[str, object] | None = None,
        call: str | None = None,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
    ) -> Hold:
        """Hold ``amount`` in ``guard``, asking the approver first when it needs approval.

        Blocks while the approver decides (the money is held meanwhile).

        Args:
            guard: The guard paying.
            amount: The most the call may cost.
            tool: The tool (or action) the charge is for.
            arguments: The call's arguments, shown to the approver and bound to the answer.
            call: The call's identity (default: a fresh one, so every call asks anew).
            settlement: See :meth:`SpendGuard.reserve`.
            release_on: See :meth:`SpendGuard.reserve`.

        Returns:
            The hold, approved.

        Raises:
            ApprovalRejectedError: The approver said no (or not exactly yes) or answered
                after ``timeout``; nothing stays held.
            InvalidArgumentError: No approver is set, or it is async (use :meth:`areserve`).
            The errors of :meth:`SpendGuard.reserve`.
        """
        money = Money.of(amount, guard.currency)
        if not self.required(money, tool):
            return guard.reserve(money, settlement=settlement, release_on=release_on, tool=tool)
        approver = self._approver()
        request = self.request(money, tool=tool, arguments=arguments, call=call or _new_call())
        hold = self.hold(guard, request, settlement=settlement, release_on=release_on)
        started = self._timer()
        try:
            verdict = approver(request)
            if inspect.isawaitable(verdict):
                _close(verdict)
                raise InvalidArgumentError(
                    "an async approver needs the async path (areserve, an async function)",
                    argument="approver",
                )
        except BaseException:
            hold.release()
            raise
        late = self._timer() - started > self.timeout
        return self._settle_verdict(request, hold, verdict is True and not late, late)

    async def areserve(
        self,
        guard: SpendGuard,
        amount: Amount,
        *,
        tool: str | None = None,
        arguments: Mapping[str, object] | None = None,
        call: str | None = None,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
    ) -> Hold:
        """Async :meth:`reserve`: an async approver is awaited, a sync one runs in a worker
        thread; either is abandoned (and the hold released) after ``timeout``."""
        money = Money.of(amount, guard.currency)
        if not self.required(money, tool):
            return await guard.areserve(
                money, settlement=settlement, release_on=release_on, tool=tool
            )
        approver = self._approver()
        request = self.request(money, tool=tool, arguments=arguments, call=call or _new_call())
        hold = await self.ahold(guard, request, settlement=settlement, release_on=release_on)
        try:
            verdict = await asyncio.wait_for(_ask(approver, request), self.timeout)
        except asyncio.TimeoutError:
            await hold.arelease()
            raise ApprovalRejectedError(request, rule="approval_timeout") from None
        except BaseException:
            await hold.arelease()
            raise
        return self._settle_verdict(request, hold, verdict is True, False)

    def _approver(self) -> Approver:
        if self.approver is None:
            raise InvalidArgumentError(
                "this charge needs approval but Approvals has no approver", argument="approver"
            )
        return self.approver

    def _settle_verdict(
        self, request: ApprovalRequest, hold: Hold, approved: bool, late: bool
    ) -> Hold:
        if approved:  # the approver's yes is fresh: it answered this very call
            return hold
        hold.release()
        raise ApprovalRejectedError(
            request, rule="approval_timeout" if late else "approval_rejected"
        )

    def __repr__(self) -> str:
        return f"Approvals(above={self.above}, tools={dict(self.tools)}, timeout={self.timeout})"


async def _ask(approver: Approver, request: ApprovalRequest) -> object:
    if inspect.iscoroutinefunction(approver):
        return await approver(request)
    verdict = await asyncio.to_thread(approver, request)
    if inspect.isawaitable(verdict):
        return await verdict
    return verdict


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _new_call() -> str:
    return secrets.token_hex(8)
