"""The rules of :class:`~spendguard.approval.Approvals`, and the pinning of calls that wait
for a person in frameworks that pause a run."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from spendguard._approval_types import (
    ApprovalRejectedError,
    ApprovalRequest,
    Approver,
    PendingApproval,
    canonical,
)
from spendguard._checks import check_seconds
from spendguard._errors import InvalidArgumentError, SpendGuardError
from spendguard._ledger import OperatorLedger
from spendguard._money import Amount, Money
from spendguard.pricing import Blocked, _blocked

if TYPE_CHECKING:
    from spendguard._guard import SpendGuard
    from spendguard._hold import Hold, ReleaseOn
    from spendguard._ledger import Settlement
    from spendguard.gate import ToolGate

__all__ = ["ApprovalRules", "PausedCalls"]

_KEEP_USED = 10_000
_log = logging.getLogger("spendguard")


class ApprovalRules:
    """Thresholds, requests and answers (the base of ``Approvals``)."""

    def __init__(
        self,
        *,
        above: Amount | None = None,
        tools: Mapping[str, Amount] | None = None,
        approver: Approver | None = None,
        timeout: float = 300.0,
        currency: str = "USD",
        timer: Callable[[], float] | None = None,
    ) -> None:
        if tools is not None and not isinstance(tools, Mapping):
            raise InvalidArgumentError(
                f"tools must be a mapping of tool name to amount, got {tools!r}", argument="tools"
            )
        for name, value in (("approver", approver), ("timer", timer)):
            if value is not None and not callable(value):
                raise InvalidArgumentError(f"{name} must be callable, got {value!r}", argument=name)
        self.above = None if above is None else Money.of(above, currency)
        self.tools: Mapping[str, Money] = MappingProxyType(
            {_tool_name(name): Money.of(value, currency) for name, value in (tools or {}).items()}
        )
        self.approver = approver
        self.timeout = check_seconds("timeout", timeout)
        self._timer = timer or time.monotonic
        self._lock = threading.Lock()
        self._used: OrderedDict[str, None] = OrderedDict()
        self._pinned: dict[Hashable, PendingApproval] = {}

    # -- the rule ------------------------------------------------------------------------

    def required(self, amount: Money, tool: str | None = None) -> bool:
        """Whether a charge of ``amount`` for ``tool`` needs a person's approval."""
        limit = self.tools.get(tool, self.above) if tool is not None else self.above
        return limit is not None and amount.amount > 0 and amount > limit

    def request(
        self,
        amount: Money,
        *,
        tool: str | None,
        arguments: Mapping[str, object] | None,
        call: str,
    ) -> ApprovalRequest:
        """The request for one call, bound to its amount, tool, arguments and call id."""
        args = MappingProxyType(dict(arguments or {}))
        digest = hashlib.sha256(
            canonical(
                {
                    "amount": str(amount.amount),
                    "currency": amount.currency,
                    "tool": tool,
                    "arguments": args,
                    "call": call,
                }
            ).encode()
        ).hexdigest()
        return ApprovalRequest(digest, amount, tool, args, call)

    def decide(self, request: ApprovalRequest, answer: object) -> bool | None:
        """Take a person's answer to ``request``, once.

        Args:
            request: The request the answer should be for.
            answer: An :class:`ApprovalAnswer`, as received.

        Returns:
            True: approved (and now used). False: rejected, malformed, or an approval of
            this request used already. None: an answer to another request (other
            arguments, amount or call): ask again.
        """
        if not isinstance(answer, Mapping) or not isinstance(answer.get("request_id"), str):
            return False
        if answer["request_id"] != request.id:
            return None
        if answer.get("approved") is not True:
            return False
        with self._lock:
            if request.id in self._used:
                return False
            self._used[request.id] = None
            while len(self._used) > _KEEP_USED:
                self._used.popitem(last=False)
        return True

    # -- holding and asking --------------------------------------------------------------

    def hold(
        self,
        guard: SpendGuard,
        request: ApprovalRequest,
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
    ) -> Hold:
        """Hold ``request.amount`` with the approval lease while a person decides.

        Raises:
            The errors of :meth:`SpendGuard.reserve`.
        """
        return guard.reserve(
            request.amount,
            settlement=settlement,
            release_on=release_on,
            tool=request.tool,
            lease=self.timeout,
        )

    async def ahold(
        self,
        guard: SpendGuard,
        request: ApprovalRequest,
        *,
        settlement: Settlement | None = None,
        release_on: ReleaseOn = (),
    ) -> Hold:
        """Async :meth:`hold`."""
        return await guard.areserve(
            request.amount,
            settlement=settlement,
            release_on=release_on,
            tool=request.tool,
            lease=self.timeout,
        )

    def blocked(self, gate: ToolGate, tool_name: str, error: SpendGuardError) -> Blocked:
        """For adapters: the refusal of a call (logged, and given to the gate's
        ``on_blocked``)."""
        outcome = _blocked(tool_name, error)
        if gate._on_blocked is not None:
            gate._on_blocked(outcome)
        return outcome


class PausedCalls(ApprovalRules):
    """Calls that wait for a person across a framework's pause (the base of ``Approvals``)."""

    # -- for adapters of frameworks that pause a run -------------------------------------

    def pinned(self, key: Hashable) -> PendingApproval | None:
        """The approval the call ``key`` waits on, if any."""
        with self._lock:
            return self._pinned.get(key)

    def open(
        self,
        gate: ToolGate,
        key: Hashable,
        tool_name: str,
        arguments: Mapping[str, object],
        *,
        call: str,
        context: object = None,
    ) -> PendingApproval | Blocked | None:
        """For adapters: the approval the call ``key`` waits on, opened if its price needs one.

        A call already pinned keeps its request and hold, whatever the threshold or the
        budget say now (the decision is pinned when the person is asked), unless its
        arguments or price changed: that request is dropped (its hold released) and the call
        is judged afresh. A new request holds the price with the approval lease.

        Args:
            gate: The adapter's gate (pricing, settlement, resolver, ``on_blocked``).
            key: A key the framework keeps for this call across a pause and resume.
            tool_name: The tool about to run.
            arguments: Its arguments.
            call: The call's identity, bound into the request.
            context: The framework's run context, for the gate's resolver.

        Returns:
            The pending approval to ask about; a :class:`~spendguard.pricing.Blocked` when
            the call must not run; None when it needs no approval (admit it as usual).
        """
        asked = self._ask(gate, key, tool_name, arguments, call, context)
        if not isinstance(asked, tuple):
            return asked
        guard, request = asked
        try:
            hold = self.hold(guard, request, settlement=gate.settlement, release_on=gate.release_on)
        except SpendGuardError as exc:
            return self.blocked(gate, tool_name, exc)
        return self._pin(key, request, hold)

    async def aopen(
        self,
        gate: ToolGate,
        key: Hashable,
        tool_name: str,
        arguments: Mapping[str, object],
        *,
        call: str,
        context: object = None,
    ) -> PendingApproval | Blocked | None:
        """Async :meth:`open`: a shared ledger's round trip runs in a worker thread."""
        asked = self._ask(gate, key, tool_name, arguments, call, context)
        if not isinstance(asked, tuple):
            return asked
        guard, request = asked
        try:
            hold = await self.ahold(
                guard, request, settlement=gate.settlement, release_on=gate.release_on
            )
        except SpendGuardError as exc:
            return self.blocked(gate, tool_name, exc)
        return self._pin(key, request, hold)

    def close(
        self, gate: ToolGate, key: Hashable, pending: PendingApproval, reply: object
    ) -> Hold | Blocked | None:
        """For adapters: take the person's ``reply`` for the call ``key``.

        Returns:
            The hold to run the call with (approved); a :class:`~spendguard.pricing.Blocked`
            (rule ``"approval_rejected"`` or ``"approval_timeout"``) after releasing the hold;
            None when ``reply`` answers another request: ask again, the call stays pinned.
        """
        verdict = self.decide(pending.request, reply)
        if verdict is None:
            return None
        self.unpin(key)
        _retire_elsewhere(pending, reply)
        if verdict and self._timer() <= pending.deadline:
            return pending.hold
        pending.hold.release()
        rule = "approval_timeout" if verdict else "approval_rejected"
        error = ApprovalRejectedError(pending.request, rule=rule)
        return self.blocked(gate, pending.request.tool or "", error)

    def unpin(self, key: Hashable) -> None:
        """Forget the approval the call ``key`` waited on (answered)."""
        with self._lock:
            self._pinned.pop(key, None)

    def abandon(self, key: Hashable) -> None:
        """Forget the approval of the call ``key`` and release its hold (the run failed)."""
        self._drop(key)

    def fits(
        self,
        gate: ToolGate,
        pending: PendingApproval,
        tool_name: str,
        arguments: Mapping[str, object],
        call: str,
    ) -> bool:
        """Whether the call as it is now (price, tool, arguments, call id) is the one
        ``pending`` asked about."""
        try:
            price = gate.pricing.price(tool_name, arguments)
        except SpendGuardError:
            return False
        return price is not None and self._same(pending, price, tool_name, arguments, call)

    def _same(
        self,
        pending: PendingApproval,
        price: Money,
        tool_name: str,
        arguments: Mapping[str, object],
        call: str,
    ) -> bool:
        now = self.request(price, tool=tool_name, arguments=arguments, call=call)
        return now.id == pending.request.id

    def _ask(
        self,
        gate: ToolGate,
        key: Hashable,
        tool_name: str,
        arguments: Mapping[str, object],
        call: str,
        context: object,
    ) -> PendingApproval | Blocked | tuple[SpendGuard, ApprovalRequest] | None:
        """What :meth:`open` decides before holding: an outcome, or the guard and the request
        whose price must be held."""
        try:
            price = gate.pricing.price(tool_name, arguments)
        except SpendGuardError as exc:
            self._drop(key)
            return self.blocked(gate, tool_name, exc)
        found = self._fresh_pin(key, price, tool_name, arguments, call)
        if found is not None or price is None or not self.required(price, tool_name):
            return found
        guard = gate.resolve(tool_name, context)
        if guard is None or isinstance(guard, Blocked):
            return guard
        return guard, self.request(price, tool=tool_name, arguments=arguments, call=call)

    def _fresh_pin(
        self,
        key: Hashable,
        price: Money | None,
        tool_name: str,
        arguments: Mapping[str, object],
        call: str,
    ) -> PendingApproval | None:
        pinned = self.pinned(key)
        if pinned is None:
            return None
        if price is not None and self._same(pinned, price, tool_name, arguments, call):
            return pinned
        self._drop(key)  # the call changed while it waited: it needs a new approval
        return None

    def _pin(self, key: Hashable, request: ApprovalRequest, hold: Hold) -> PendingApproval:
        now = self._timer()
        pending = PendingApproval(request, hold, now + self.timeout)
        with self._lock:
            # Calls never resumed: their holds lapsed with their lease, forget them.
            for stale in [k for k, p in self._pinned.items() if p.deadline < now]:
                del self._pinned[stale]
            self._pinned[key] = pending
        return pending

    def _drop(self, key: Hashable) -> None:
        with self._lock:
            pending = self._pinned.pop(key, None)
        if pending is not None:
            _release_quietly(pending.hold)


def _retire_elsewhere(pending: PendingApproval, reply: object) -> None:
    """A run resumed away from the process that asked: that process's hold, found open in a
    shared ledger with this request's tool and amount, is released (this call holds its own)."""
    other = reply.get("hold_id") if isinstance(reply, Mapping) else None
    if not isinstance(other, str) or other == pending.hold.id:
        return
    guard = pending.hold._guard
    ledger = guard._ledger
    if not isinstance(ledger, OperatorLedger):
        return
    try:
        for info in ledger.holds(guard._key, guard._timer()):
            if (info.hold_id, info.tool, info.amount) == (
                other,
                pending.request.tool,
                pending.request.amount.amount,
            ):
                ledger.settle_stuck(guard._key, other, False, guard._timer())
    except SpendGuardError:
        _log.warning("could not release hold %s of the asking process", other, exc_info=True)


def _release_quietly(hold: Hold) -> None:
    try:
        hold.release()
    except SpendGuardError:
        _log.warning("could not release hold %s; it will lapse as spent", hold.id, exc_info=True)


def _tool_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"tools must map non-empty tool names to amounts, got {name!r}", argument="tools"
        )
    return name
