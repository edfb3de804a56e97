"""spendguard: stop AI agents from spending more than their payment session allows.

>>> guard = SpendGuard(payment_manager_arn, payment_session_id, user_id="user-1")
>>> with guard.reserve("0.005"):        # raises BudgetExceededError if it does not fit
...     pay_for_the_call()
"""

import logging as _logging
from importlib import metadata as _metadata

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
from spendguard._ledger import Ledger, Settlement
from spendguard._memory_ledger import InMemoryLedger
from spendguard._money import Money
from spendguard._report import Decision, GuardSnapshot

try:
    __version__ = _metadata.version("spendguard")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

# A library never configures logging: records go nowhere until the application says where.
_logging.getLogger("spendguard").addHandler(_logging.NullHandler())

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
