"""Fork detection: an in-memory ledger copied into a child process spends the same money twice.

A pre-forking server (gunicorn, uvicorn ``--workers``, a ``multiprocessing`` pool with the
"fork" start method) copies the parent's memory into each worker. An :class:`InMemoryLedger`
that held money or carried charges at the fork is then one budget in several processes, each
unaware of the others' holds. The child warns loudly; the fix is a shared ledger (Redis).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
import weakref
from typing import Protocol

__all__ = ["ForkedLedgerWarning", "track_for_fork"]

_log = logging.getLogger("spendguard")


class ForkedLedgerWarning(UserWarning):
    """A process forked while an in-memory ledger held money or carried charges."""


class _Forkable(Protocol):
    def _live(self) -> bool: ...

    def _after_fork_in_child(self) -> None: ...


_ledgers: weakref.WeakSet[_Forkable] = weakref.WeakSet()
_lock = threading.Lock()

_MESSAGE = (
    "this process was forked while an InMemoryLedger held money or carried charges: the "
    "in-memory ledger is per process, so every forked worker (gunicorn, uvicorn workers, a "
    "forked pool) spends the same budget without seeing the others' holds and together they "
    "can overspend the payment session. Use the Redis ledger "
    "(spendguard.redis_ledger.RedisLedger) when several processes spend from one session, or "
    "create the guards in each worker after the fork"
)


def track_for_fork(ledger: _Forkable) -> None:
    """Watch ``ledger`` (weakly: it is not kept alive) for forks while it has live state."""
    with _lock:
        _ledgers.add(ledger)


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603 - the parent's lock may have been held at the fork
    _lock = threading.Lock()
    live = 0
    for ledger in list(_ledgers):
        ledger._after_fork_in_child()
        live += ledger._live()
    if live:
        _log.warning("spendguard: %s (pid %d)", _MESSAGE, os.getpid())
        warnings.warn(_MESSAGE, ForkedLedgerWarning, stacklevel=2)


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent on Windows only
    os.register_at_fork(after_in_child=_after_fork_in_child)
