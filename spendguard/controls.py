"""Operator controls on a ledger: list a session's holds, settle a stuck one, freeze a session.

Both built-in ledgers implement them (:class:`~spendguard.ledger.OperatorLedger`); on the Redis
ledger they act on what every process shares, so an operator's freeze blocks every guard of the
session in every process::

    from spendguard.controls import SessionControls

    controls = SessionControls(ledger, payment_manager_arn, payment_session_id)
    for hold in controls.holds():
        print(hold.hold_id, hold.amount, hold.tool, round(hold.age), round(hold.lease_left))
    controls.release(hold_id)               # a stuck hold: drop it as not spent
    controls.release(hold_id, charge=True)  # or count it as spent, as a lapse would
    controls.freeze()                       # every reserve raises SessionFrozenError
    controls.unfreeze()

The same from a shell: ``spendguard holds list|release`` and ``spendguard session
freeze|unfreeze`` (see ``spendguard --help``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from spendguard._checks import check_text
from spendguard._errors import InvalidArgumentError, SessionFrozenError
from spendguard._ledger import HoldInfo, Ledger, OperatorLedger

__all__ = ["HoldInfo", "SessionControls", "SessionFrozenError"]


class SessionControls:
    """An operator's handle on one payment session's book in a ledger.

    Args:
        ledger: The guards' ledger (an :class:`~spendguard.InMemoryLedger` is only seen by its
            own process; use the shared Redis ledger to act on other processes' guards).
        payment_manager_arn: The session's payment manager ARN, as given to the guards.
        payment_session_id: The session's id, as given to the guards.
        timer: The guards' monotonic clock (default ``time.monotonic``); only the in-memory
            ledger uses it (the Redis ledger follows Redis ``TIME``).

    Raises:
        InvalidArgumentError: The ledger has no operator controls, or an id is empty.
    """

    def __init__(
        self,
        ledger: Ledger,
        payment_manager_arn: str,
        payment_session_id: str,
        *,
        timer: Callable[[], float] | None = None,
    ) -> None:
        check_text("payment_manager_arn", payment_manager_arn)
        check_text("payment_session_id", payment_session_id)
        if not isinstance(ledger, OperatorLedger):
            raise InvalidArgumentError(
                f"ledger {ledger!r} has no operator controls (holds, settle_stuck, set_frozen, "
                "is_frozen)",
                argument="ledger",
            )
        if timer is not None and not callable(timer):
            raise InvalidArgumentError(f"timer must be callable, got {timer!r}", argument="timer")
        self._ledger: OperatorLedger = ledger
        self._key = f"{payment_manager_arn}/{payment_session_id}"  # SpendGuard's ledger key
        self._timer = timer or time.monotonic
        self.payment_session_id = payment_session_id

    def holds(self) -> list[HoldInfo]:
        """The session's open holds, oldest first (holds past their lease lapse first).

        Raises:
            LedgerUnavailableError: A shared ledger could not be reached.
        """
        return self._ledger.holds(self._key, self._timer())

    def release(self, hold_id: str, *, charge: bool = False) -> HoldInfo | None:
        """Settle a stuck hold now instead of waiting for its lease.

        Args:
            hold_id: The hold's id (from :meth:`holds`).
            charge: False (default): the call spent nothing, the money is available again (if
                its guard commits the hold after all, the charge still counts). True: count the
                full amount as spent for the session's life, as a lapsed hold is.

        Returns:
            The hold as it was, or None if no such hold was open (nothing changed).

        Raises:
            LedgerUnavailableError: A shared ledger could not be reached.
        """
        check_text("hold_id", hold_id)
        return self._ledger.settle_stuck(self._key, hold_id, bool(charge), self._timer())

    def freeze(self) -> bool:
        """Block every charge of the session: each guard's ``reserve`` raises
        :class:`SessionFrozenError` (checked atomically with the hold) and ``check`` answers
        not allowed with rule ``"session_frozen"``. Open holds stay and may still settle.

        Returns:
            Whether the session was not frozen before.

        Raises:
            LedgerUnavailableError: A shared ledger could not be reached.
        """
        return self._ledger.set_frozen(self._key, True)

    def unfreeze(self) -> bool:
        """Let the session's guards charge again.

        Returns:
            Whether the session was frozen.

        Raises:
            LedgerUnavailableError: A shared ledger could not be reached.
        """
        return self._ledger.set_frozen(self._key, False)

    @property
    def frozen(self) -> bool:
        """Whether the session is frozen (asks the ledger each time)."""
        return self._ledger.is_frozen(self._key)

    def __repr__(self) -> str:
        return f"SessionControls(session={self.payment_session_id!r})"
