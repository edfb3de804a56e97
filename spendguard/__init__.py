"""spendguard: stop AI agents from spending more than their payment session allows.

>>> guard = SpendGuard(payment_manager_arn, payment_session_id, user_id="user-1")
>>> with guard.reserve("0.005"):        # raises BudgetExceededError if it does not fit
...     pay_for_the_call()
"""

from spendguard._cache import Freshness
from spendguard._errors import (
    BudgetExceededError,
    CurrencyMismatchError,
    HoldStateError,
    InvalidAmountError,
    InvalidArgumentError,
    LedgerDataLostError,
    LedgerUnavailableError,
    MalformedSessionError,
    NothingSpentError,
    PricingError,
    SessionAccessDeniedError,
    SessionConfigurationError,
    SessionError,
    SessionExpiredError,
    SessionNotFoundError,
    SessionRequestError,
    SessionUnavailableError,
    SpendGuardError,
)
from spendguard._guard import SpendGuard
from spendguard._hold import Hold
from spendguard._ledger import InMemoryLedger, Ledger, Settlement
from spendguard._money import Money
from spendguard._report import Decision, GuardSnapshot

__all__ = [
    "BudgetExceededError",
    "CurrencyMismatchError",
    "Decision",
    "Freshness",
    "GuardSnapshot",
    "Hold",
    "HoldStateError",
    "InMemoryLedger",
    "InvalidAmountError",
    "InvalidArgumentError",
    "Ledger",
    "LedgerDataLostError",
    "LedgerUnavailableError",
    "MalformedSessionError",
    "Money",
    "NothingSpentError",
    "PricingError",
    "SessionAccessDeniedError",
    "SessionConfigurationError",
    "SessionError",
    "SessionExpiredError",
    "SessionNotFoundError",
    "SessionRequestError",
    "SessionUnavailableError",
    "Settlement",
    "SpendGuard",
    "SpendGuardError",
]
