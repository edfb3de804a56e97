"""What the guard answers: decisions and budget snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from spendguard._errors import BudgetExceededError, SessionExpiredError
from spendguard._money import Money

__all__ = ["Decision", "GuardSnapshot"]

_POLICY_WORDS = {
    "per_call_max": "above the most one call may cost",
    "tool_cap": "more than the tool's cap leaves",
    "window_amount": "more than the rolling window leaves",
    "window_count": "one call too many for the rolling window",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of :meth:`SpendGuard.check`.

    Attributes:
        allowed: Whether the charge fits now.
        requested: The amount asked about.
        available: What was effectively available.
        session_id: The payment session.
        expired_at: When the session expired, if that is why the charge does not fit.
        rule: The code of the rule that refuses the charge (``"session_limit"``,
            ``"session_expired"``, ...), None when it is allowed.
        tool: The tool the charge was asked for, when one was named.
    """

    allowed: bool
    requested: Money
    available: Money
    session_id: str
    expired_at: datetime | None = None
    rule: str | None = None
    tool: str | None = None

    @property
    def reason(self) -> str:
        """A sentence for a person or a model."""
        if self.expired_at is not None:
            return str(SessionExpiredError(self.expired_at, session_id=self.session_id))
        if self.allowed:
            return f"{self.requested} fits in {self.available} available"
        if self.rule in _POLICY_WORDS:
            return (
                f"{self.requested} is {_POLICY_WORDS[self.rule]} (spend policy {self.rule}); "
                f"{self.available} is left under it"
            )
        error = BudgetExceededError(self.requested, self.available, session_id=self.session_id)
        return str(error)


@dataclass(frozen=True, slots=True)
class GuardSnapshot:
    """Everything the guard knows about the session's budget, at one moment.

    Attributes:
        session_id: The payment session.
        max_spend: The session's limit, None if the service sent none.
        server_available: What the server says is available.
        held: Held for calls in flight.
        pending_session: Session charges awaiting evidence that the server absorbed them.
        external: Charges settled elsewhere (and lapsed holds), deducted for the session's life.
        effective_available: What a new charge may use.
        expires_at: Session expiry, UTC.
        expired: Whether charges are refused for expiry (inside the safety margin).
        updated_at: The server's last update of the available amount, UTC.
        fetched_at: When the session was read, UTC.
        fresh_until: When the cached reading goes stale, UTC.
    """

    session_id: str
    max_spend: Money | None
    server_available: Money
    held: Money
    pending_session: Money
    external: Money
    effective_available: Money
    expires_at: datetime
    expired: bool
    updated_at: datetime
    fetched_at: datetime
    fresh_until: datetime

    @property
    def committed_unreflected(self) -> Money:
        """Committed locally and not (yet) reflected by the server: pending plus external."""
        return self.pending_session + self.external
