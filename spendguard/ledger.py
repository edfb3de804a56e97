"""Ledgers: where holds and unreflected charges live, and the contract a custom one keeps.

A custom ledger implements the four methods of :class:`Ledger` (``reserve``, ``commit``,
``release``, ``totals``), atomically per session key, with the rules written in
:mod:`spendguard._ledger`'s docstring; the contract tests in the project's test suite run the
same assertions against every ledger. ``now`` arguments are readings of the calling
process's monotonic clock: a ledger shared between processes must measure leases on a clock
of its own (the Redis ledger uses Redis ``TIME``).
"""

from spendguard._ledger import InMemoryLedger, Ledger, LedgerTotals, ServerView, Settlement

__all__ = ["InMemoryLedger", "Ledger", "LedgerTotals", "ServerView", "Settlement"]
