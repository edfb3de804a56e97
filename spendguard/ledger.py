"""Ledgers: where holds and unreflected charges live, and the contract a custom one keeps.

A custom ledger implements the four methods of :class:`Ledger` (``reserve``, ``commit``,
``release``, ``totals``), atomically per session key, with the rules written in
:mod:`spendguard._ledger`'s docstring; the contract tests in the project's test suite run the
same assertions against every ledger. ``now`` arguments are readings of the calling
process's monotonic clock: a ledger shared between processes must measure leases on a clock
of its own (the Redis ledger uses Redis ``TIME``). Every operation is idempotent per hold id.

Operator controls (:class:`OperatorLedger`: list holds, settle a stuck one, freeze a session)
are optional for a custom ledger; :mod:`spendguard.controls` drives them. A process that forks
while an :class:`InMemoryLedger` holds money warns in the child with
:class:`ForkedLedgerWarning` (and a log record on the ``spendguard`` logger).
"""

from spendguard._fork import ForkedLedgerWarning
from spendguard._ledger import (
    HoldInfo,
    Ledger,
    LedgerTotals,
    OperatorLedger,
    ServerView,
    Settlement,
)
from spendguard._memory_ledger import InMemoryLedger

__all__ = [
    "ForkedLedgerWarning",
    "HoldInfo",
    "InMemoryLedger",
    "Ledger",
    "LedgerTotals",
    "OperatorLedger",
    "ServerView",
    "Settlement",
]
