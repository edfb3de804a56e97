"""Fault injection and call counting, for tests of the code that talks to the emulator.

Faults are queued per operation (or ``"*"`` for every operation) and consumed in
order, one per matching request, until their ``times`` run out.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from spendguard._errors import InvalidArgumentError
from spendguard.emulator._model import OPERATIONS, error_status

FaultKind = Literal["error", "delay", "drop"]


@dataclass(slots=True)
class Fault:
    """One queued fault.

    Attributes:
        kind: ``"error"`` answers ``code``; ``"delay"`` waits ``seconds`` then serves the
            request normally; ``"drop"`` closes the connection without answering.
        times: How many more requests it applies to.
        code: Error code (an exception shape name) for ``"error"``.
        status: HTTP status for ``"error"`` (from the model unless given).
        message: Error message for ``"error"``.
        seconds: Wait for ``"delay"``.
        after: For ``"drop"``: serve the request (state changes happen) before dropping,
            so the client never learns that, e.g., a payment went through.
    """

    kind: FaultKind
    times: int
    code: str = ""
    status: int = 500
    message: str = ""
    seconds: float = 0.0
    after: bool = False


class Faults:
    """The fault controls of one emulator (thread-safe)."""

    def __init__(self) -> None:
        """Create empty fault queues and zeroed call counters."""
        self._lock = threading.Lock()
        self._queues: dict[str, list[Fault]] = {}
        self._calls: Counter[str] = Counter()

    def fail(
        self,
        operation: str,
        code: str,
        *,
        times: int = 1,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with error ``code``.

        Args:
            operation: Operation name (``"GetPaymentSession"``) or ``"*"`` for all.
            code: Error code, e.g. ``"ThrottlingException"``, ``"InternalServerException"``.
            times: Number of calls to fail.
            status: HTTP status; defaults to the status botocore's model gives ``code``.
            message: Error message; a default names the injected fault.
        """
        text = message or f"Injected {code} for {operation}"
        fault = Fault("error", times, code, status or error_status(code), text)
        self._push(operation, fault)

    def delay(self, operation: str, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` calls of ``operation``."""
        self._push(operation, Fault("delay", times, seconds=seconds))

    def drop(self, operation: str, *, times: int = 1, after: bool = False) -> None:
        """Close the connection without a response on the next ``times`` calls.

        Args:
            operation: Operation name or ``"*"``.
            times: Number of calls to drop.
            after: Process the request first (its effects persist), then drop the reply.
        """
        self._push(operation, Fault("drop", times, after=after))

    def clear(self) -> None:
        """Remove every queued fault (call counters are kept)."""
        with self._lock:
            self._queues.clear()

    def calls(self, operation: str | None = None) -> int:
        """Requests received for ``operation`` (all operations when None)."""
        with self._lock:
            if operation is None:
                return sum(self._calls.values())
            return self._calls[operation]

    def reset_calls(self) -> None:
        """Zero the call counters."""
        with self._lock:
            self._calls.clear()

    def take(self, operation: str) -> Fault | None:
        """Count a request for ``operation`` and consume the fault it meets, if any."""
        with self._lock:
            self._calls[operation] += 1
            for key in (operation, "*"):
                queue = self._queues.get(key)
                if queue:
                    fault = queue[0]
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.pop(0)
                    return fault
        return None

    def _push(self, operation: str, fault: Fault) -> None:
        if operation != "*" and operation not in OPERATIONS:
            raise InvalidArgumentError(
                f"unknown operation {operation!r}; expected one of {OPERATIONS}",
                argument="operation",
            )
        if isinstance(fault.times, bool) or not isinstance(fault.times, int) or fault.times < 1:
            raise InvalidArgumentError("times must be an int of at least 1", argument="times")
        with self._lock:
            self._queues.setdefault(operation, []).append(fault)
