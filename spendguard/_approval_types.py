"""Approval requests, answers and refusals; see :mod:`spendguard.approval`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from spendguard._errors import InvalidArgumentError, SpendGuardError
from spendguard._money import Money

if TYPE_CHECKING:
    from spendguard._hold import Hold

__all__ = [
    "ApprovalAnswer",
    "ApprovalRejectedError",
    "ApprovalRequest",
    "Approver",
    "PendingApproval",
    "answer",
    "canonical",
]


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
            "arguments": json.loads(canonical(self.arguments)),
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


def canonical(value: object) -> str:
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
