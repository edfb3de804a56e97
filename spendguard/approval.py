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
and pin the pending request to the call (:meth:`Approvals.pin`), so that a resumed run honours
the answer even if the budget or the threshold changed while the person decided.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, TypedDict

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

__all__ = [
    "ApprovalAnswer",
    "ApprovalRejectedError",
    "ApprovalRequest",
    "Approvals",
    "Approver",
    "PendingApproval",
    "answer",
]

_KEEP_USED = 10_000
_log = logging.getLogger("spendguard")


class _Answer(TypedDict):
    request_id: str
    approved: bool


class ApprovalAnswer(_Answer, total=False):
    """A person's answer to one :class:`ApprovalRequest`, as it travels through a framework
    (e.g. ``Command(resume=answer)``). Make it with :func:`answer`,
    :meth:`ApprovalRequest.approve` or :meth:`ApprovalRequest.reject`.

    ``hold_id`` (copied from the payload by :func:`answer`) names the hold the asking process
    took: a run resumed in another process releases it through a shared ledger.
    """

    hold_id: str


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a person is asked to approve: one call's charge.

    Attributes:
        id: A digest of amount, tool, arguments and call: the binding of an answer.
        amount: The charge held.
        tool: The tool (or action), when named.
        arguments: The call's arguments (read-only).
        call: The call's identity (a framework's call id, or one made per call).
    """

    id: str
    amount: Money
    tool: str | None
    arguments: Mapping[str, object] = field(repr=False)
    call: str

    def approve(self) -> ApprovalAnswer:
        """The answer that approves this request (and no other)."""
        return {"request_id": self.id, "approved": True}

    def reject(self) -> ApprovalAnswer:
        """The answer that rejects this request."""
        return {"request_id": self.id, "approved": False}

    def payload(self) -> dict[str, object]:
        """A JSON-safe description for a person's screen (what an interrupt carries)."""
        return {
            "type": "spendguard_approval",
            "request_id": self.id,
            "tool": self.tool,
            "amount": str(self.amount.amount),
            "currency": self.amount.currency,
            "arguments": json.loads(_canonical(self.arguments)),
        }


def answer(payload: Mapping[str, object], approved: bool) -> ApprovalAnswer:
    """The answer to the request described by ``payload`` (:meth:`ApprovalRequest.payload`,
    e.g. the value of a LangGraph interrupt).

    Raises:
        InvalidArgumentError: ``payload`` names no request, or ``approved`` is not a bool.
    """
    request_id = payload.get("request_id") if isinstance(payload, Mapping) else None
    if not isinstance(request_id, str) or not isinstance(approved, bool):
        raise InvalidArgumentError(
            "answer needs an approval payload with a request_id and approved=True or False",
            argument="payload",
        )
    made: ApprovalAnswer = {"request_id": request_id, "approved": approved}
    hold_id = payload.get("hold_id")
    if isinstance(hold_id, str):
        made["hold_id"] = hold_id
    return made


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A call waiting for a person: its request, the money held for it, and until when
    (the guard's monotonic timer) an answer is taken.

    Attributes:
        request: What the person is asked.
        hold: The money held meanwhile.
        deadline: Monotonic time after which an answer is refused (``"approval_timeout"``).
    """

    request: ApprovalRequest
    hold: Hold
    deadline: float

    def payload(self) -> dict[str, object]:
        """The request's payload and the id of the hold taken for it."""
        return {**self.request.payload(), "hold_id": self.hold.id}


#: Decides an :class:`ApprovalRequest`: returns (or resolves to) exactly ``True`` to approve.
Approver = Callable[[ApprovalRequest], "bool | Awaitable[bool]"]


class ApprovalRejectedError(SpendGuardError):
    """A charge that needed a person's approval did not get it; its hold was released.

    Attributes:
        request: The request that was refused.
        rule: ``"approval_rejected"`` (the answer was no, or not a yes),
            ``"approval_timeout"`` (no answer within the approval timeout) or
            ``"approval_missing"`` (the call came without the approval it needs, e.g. a
            framework approved every call of a tool at once).
    """

    def __init__(self, request: ApprovalRequest, *, rule: str = "approval_rejected") -> None:
        what = {
            "approval_timeout": "was not approved in time",
            "approval_missing": "came without its own approval",
        }.get(rule, "was not approved")
        super().__init__(f"the charge of {request.amount} for {request.tool or 'a call'} {what}")
        self.request = request
        self.rule = rule

    @property
    def model_message(self) -> str:
        """The person's decision, without ids."""
        if self.rule == "approval_timeout":
            return "Payment blocked: nobody approved this payment in time. Do not retry this call."
        if self.rule == "approval_missing":
            return (
                "Payment blocked: this payment needs a person's approval, which it does not "
                "have. Do not retry this call."
            )
        return "Payment blocked: a person declined this payment. Do not retry this call."


class Approvals:
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
            _canonical(
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
        request = self.request(price, tool=tool_name, arguments=arguments, call=call)
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
        request = self.request(price, tool=tool_name, arguments=arguments, call=call)
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

    def blocked(self, gate: ToolGate, tool_name: str, error: SpendGuardError) -> Blocked:
        """For adapters: the refusal of a call (logged, and given to the gate's
        ``on_blocked``)."""
        outcome = _blocked(tool_name, error)
        if gate._on_blocked is not None:
            gate._on_blocked(outcome)
        return outcome

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


def _new_call() -> str:
    return secrets.token_hex(8)


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Money):
        return str(value.amount)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)
