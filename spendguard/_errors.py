"""The one exception tree of spendguard.

Every error the library raises derives from :class:`SpendGuardError`; errors about a value the
caller passed also derive from :class:`ValueError`::

    SpendGuardError                        .session_id, .model_message, .rule
    ├── InvalidArgumentError(ValueError)   .argument: a caller's argument is unacceptable
    │   ├── InvalidAmountError             .value
    │   └── CurrencyMismatchError          .expected, .actual
    ├── PricingError                       .tool_name
    ├── BudgetExceededError                .requested, .available, .currency
    │   └── PolicyViolationError           .tool, .limit, .window: a spend policy refused it
    ├── SessionExpiredError                .expires_at
    ├── SessionFrozenError                 an operator froze the session
    ├── SessionError                       reading the payment session failed
    │   ├── SessionConfigurationError      no region, no credentials, unknown profile, no endpoint
    │   ├── SessionAccessDeniedError       AccessDeniedException, rejected credentials
    │   ├── SessionNotFoundError           ResourceNotFoundException
    │   ├── SessionRequestError            ValidationException, bad parameters
    │   ├── SessionUnavailableError        throttling, internal errors, network, after retries
    │   └── MalformedSessionError(ValueError)  .field
    ├── HoldStateError                     a hold used against its state
    ├── NothingSpentError                  raised by YOUR code: the failed call spent nothing
    ├── GuardResolutionError               no guard could be found for a call's run context
    └── LedgerUnavailableError             the shared ledger cannot be reached
        └── LedgerDataLostError            the shared ledger lost a session's book

Failures of lower layers are chained with ``raise ... from exc``. ``str(error)`` is for
operators and logs (it may name sessions and endpoints); ``error.model_message`` is what a
language model may be told: what was asked, what is left, and not to retry, never an endpoint,
credential, ARN or session id.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spendguard._money import Money

__all__ = [
    "BudgetExceededError",
    "CurrencyMismatchError",
    "GuardResolutionError",
    "HoldStateError",
    "InvalidAmountError",
    "InvalidArgumentError",
    "LedgerDataLostError",
    "LedgerUnavailableError",
    "MalformedSessionError",
    "NothingSpentError",
    "PolicyViolationError",
    "PricingError",
    "SessionAccessDeniedError",
    "SessionConfigurationError",
    "SessionError",
    "SessionExpiredError",
    "SessionFrozenError",
    "SessionNotFoundError",
    "SessionRequestError",
    "SessionUnavailableError",
    "SpendGuardError",
]


class SpendGuardError(Exception):
    """Root of every error raised by spendguard.

    Attributes:
        session_id: The payment session concerned, when one is.
    """

    #: Why the call is blocked, in words a model may read; subclasses refine it.
    _model_reason = "the spend guard could not approve it"
    #: The rule that refused the call, a stable code for logs, metrics and audit records
    #: (``"session_limit"``, ``"session_expired"``, ``"pricing"``, ...).
    rule: str = "error"

    def __init__(self, message: str, *, session_id: str | None = None) -> None:
        super().__init__(message)
        self.session_id = session_id

    @property
    def model_message(self) -> str:
        """What to tell a language model about this block: no ids, URLs or credentials."""
        return f"Payment blocked: {self._model_reason}. Do not retry this call."


class InvalidArgumentError(SpendGuardError, ValueError):
    """An argument passed to spendguard is of the wrong kind or out of range.

    Attributes:
        argument: The parameter's name, when one is concerned.
    """

    rule = "invalid_argument"

    def __init__(
        self, message: str, *, argument: str | None = None, session_id: str | None = None
    ) -> None:
        super().__init__(message, session_id=session_id)
        self.argument = argument

    @property
    def model_message(self) -> str:
        """The message itself: it names the caller's value, never an id."""
        return f"Payment blocked: {self}. Do not retry this call."


class InvalidAmountError(InvalidArgumentError):
    """An amount of money could not be accepted (type, sign, size or syntax).

    Attributes:
        value: The rejected input, as given.
    """

    def __init__(self, message: str, *, value: object = None, argument: str | None = None) -> None:
        super().__init__(message, argument=argument)
        self.value = value


class CurrencyMismatchError(InvalidArgumentError):
    """Two amounts in different currencies met; spendguard never converts.

    Attributes:
        expected: The currency required.
        actual: The currency found.
    """

    def __init__(self, expected: str, actual: str, *, session_id: str | None = None) -> None:
        super().__init__(
            f"currency mismatch: expected {expected}, got {actual}", session_id=session_id
        )
        self.expected = expected
        self.actual = actual


class PricingError(SpendGuardError):
    """A tool call could not be priced, so it is blocked.

    Attributes:
        tool_name: The tool whose price rule failed.
    """

    rule = "pricing"

    def __init__(self, message: str, *, tool_name: str) -> None:
        super().__init__(message)
        self.tool_name = tool_name

    @property
    def model_message(self) -> str:
        """Why the price could not be found: the model's own arguments may be the cause."""
        return f"Payment blocked: {self}. Do not retry this call."


class BudgetExceededError(SpendGuardError):
    """A charge does not fit in what the session has left.

    The message is written for a language model: what was asked, what is left, and not to retry.

    Attributes:
        requested: The amount asked for.
        available: What was effectively available when the charge was refused.
        currency: The currency of both.
    """

    def __init__(
        self,
        requested: Money,
        available: Money,
        *,
        session_id: str,
        rule: str = "session_limit",
    ) -> None:
        super().__init__(
            f"Payment blocked by spend limit: this call costs {requested} but only "
            f"{available} is left in payment session {session_id}. Do not retry this call; "
            "choose a cheaper option or tell the user the budget is exhausted.",
            session_id=session_id,
        )
        self.requested = requested
        self.available = available
        self.currency = requested.currency
        self.rule = rule

    @property
    def model_message(self) -> str:
        """What was asked, what is left, and not to retry."""
        return (
            f"Payment blocked by spend limit: this call costs {self.requested} but only "
            f"{self.available} is left. Do not retry this call; choose a cheaper option or "
            "tell the user the budget is exhausted."
        )


_RULE_WORDS = {
    "per_call_max": "the most one call{of_tool} may cost is {limit}",
    "tool_cap": "{this_tool} may spend at most {limit} in this session and {available} is left",
    "window_amount": "at most {limit} may be spent {per}{on_tool} and {available} is left now",
    "window_count": "at most {limit} paid calls{of_tool} are allowed {per}",
}


def _per(seconds: float | None) -> str:
    names = {1.0: "per second", 60.0: "per minute", 3600.0: "per hour", 86400.0: "per day"}
    if seconds is None:
        return ""
    return names.get(seconds, f"per {seconds:g} seconds")


class PolicyViolationError(BudgetExceededError):
    """A spend policy refused the charge (see :mod:`spendguard.policies`).

    Still a :class:`BudgetExceededError`, so code and adapters that block on it keep working;
    :attr:`rule` says which policy fired: ``"per_call_max"``, ``"tool_cap"``,
    ``"window_amount"`` or ``"window_count"``.

    Attributes:
        tool: The tool the charge was for, when one was named.
        limit: The policy's limit: an amount, or a number of calls for ``"window_count"``.
        window: The rolling window's length in seconds, for the window rules.
    """

    def __init__(
        self,
        requested: Money,
        available: Money,
        *,
        session_id: str,
        rule: str,
        limit: Money | int,
        tool: str | None = None,
        window: float | None = None,
    ) -> None:
        super().__init__(requested, available, session_id=session_id, rule=rule)
        self.tool = tool
        self.limit = limit
        self.window = window
        # The operator's text names the tool and the session; the model's names neither.
        self.args = (
            f"Payment blocked by spend policy {rule} in payment session {session_id}"
            f"{'' if tool is None else f' (tool {tool})'}: this call costs {requested} but "
            f"{self._words(tool_name=tool)}.",
        )

    def _words(self, *, tool_name: str | None = None) -> str:
        tool = self.tool is not None
        named = f" {tool_name}" if tool_name else ""
        return _RULE_WORDS.get(self.rule, "a spend policy does not allow it").format(
            limit=self.limit,
            available=self.available,
            per=_per(self.window),
            of_tool=f" of this tool{named}" if tool else "",
            on_tool=f" on this tool{named}" if tool else "",
            this_tool=f"this tool{named}" if tool else "this call",
        )

    @property
    def model_message(self) -> str:
        """Which policy refused the call, in words, and not to retry."""
        return (
            f"Payment blocked by spend policy: this call costs {self.requested} but "
            f"{self._words()}. Do not retry this call; choose a cheaper option or tell the "
            "user the spending policy does not allow it."
        )


class SessionExpiredError(SpendGuardError):
    """The payment session has expired (or is inside the expiry safety margin).

    Attributes:
        expires_at: When the session expires, timezone-aware UTC.
    """

    rule = "session_expired"

    def __init__(self, expires_at: datetime, *, session_id: str) -> None:
        super().__init__(
            f"Payment blocked: payment session {session_id} expired at "
            f"{expires_at.isoformat()}. Do not retry; a new payment session is needed.",
            session_id=session_id,
        )
        self.expires_at = expires_at

    @property
    def model_message(self) -> str:
        """The session is over; only a new one helps."""
        return (
            "Payment blocked: the payment session has expired. Do not retry; a new payment "
            "session is needed."
        )


class SessionFrozenError(SpendGuardError):
    """An operator froze the payment session: every guard of it blocks until it is unfrozen.

    Raised by ``reserve`` (checked in the same atomic step as the hold); ``check`` answers
    not allowed with the same rule.
    """

    _model_reason = "payments for this session are paused by an operator"
    rule = "session_frozen"


class SessionError(SpendGuardError):
    """The payment session could not be read; the guard blocks until it can."""

    _model_reason = "the payment budget could not be checked right now"
    rule = "session_unavailable"


class SessionConfigurationError(SessionError):
    """The AWS client cannot be set up: no region, no credentials, an unknown profile, or
    an endpoint that cannot be reached. Fix the configuration; retrying will not help."""


class SessionAccessDeniedError(SessionError):
    """The service refused access to the session (wrong user, credentials or policy)."""


class SessionNotFoundError(SessionError):
    """The session (or its payment manager) does not exist."""


class SessionRequestError(SessionError):
    """The service rejected the request's parameters (ValidationException)."""


class SessionUnavailableError(SessionError):
    """The service could not be reached or kept failing after retries."""


class MalformedSessionError(SessionError, ValueError):
    """The session the service returned is missing a field or has a bad value.

    Attributes:
        field: Dotted path of the offending field, e.g. ``availableLimits.availableSpendAmount``.
    """

    def __init__(self, message: str, *, field: str, session_id: str | None = None) -> None:
        super().__init__(
            f"malformed payment session field {field}: {message}", session_id=session_id
        )
        self.field = field


class HoldStateError(SpendGuardError):
    """A hold was used against its state, e.g. committing more than was held."""

    rule = "hold_state"


class NothingSpentError(SpendGuardError):
    """Raise it (or a subclass) from a guarded call to say that it failed before spending.

    spendguard never raises it. By default an exception inside a hold keeps the charge: a paid
    API may take the money and then time out, and the guard cannot tell. A call that knows
    nothing moved says so with this error (typically ``raise NothingSpentError(...) from
    exc``) or with the ``release_on`` exception types of the guard's decorator, context
    manager and adapters; the hold is then released.
    """


class GuardResolutionError(SpendGuardError):
    """No guard could be found for a call: the resolver an adapter was given raised, returned
    None or returned something that is not a guard (a run without a payment session, say).

    The call is blocked. ``str(error)`` names what went wrong for the operator's log; the
    model is only told that no payment session is available.
    """

    _model_reason = "no payment session is available for this request"
    rule = "session_unresolved"


class LedgerUnavailableError(SpendGuardError):
    """The shared ledger could not be reached; the guard blocks until it is back."""

    _model_reason = "the payment budget could not be checked right now"
    rule = "ledger_unavailable"


class LedgerDataLostError(LedgerUnavailableError):
    """The shared ledger lost the book of a session it had written to (e.g. Redis restarted
    without persistence, failed over to an empty replica, or was flushed).

    Holds and charges recorded there are gone, so what is spent is unknown: the guard blocks
    this session until an operator reopens it (see ``RedisLedger.reopen``).
    """
