"""How long a fetched session stays fresh, and the single-flight cache that holds it.

Every duration here runs on the monotonic clock: a host whose wall clock steps (NTP) neither
keeps a reading fresh longer nor ages it early.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from spendguard._checks import check_seconds
from spendguard._errors import InvalidArgumentError
from spendguard._session import SessionSnapshot

__all__ = ["Freshness", "SessionCache"]


@dataclass(frozen=True, slots=True)
class Freshness:
    """Freshness rules for the cached payment session.

    A snapshot's lifetime is ``fraction`` of its age (the time since the server last changed
    the available amount), the heuristic freshness of RFC 9111 section 4.2.2 with ``updatedAt``
    as Last-Modified: a session nobody has spent from for ten minutes is unlikely to change in
    the next minute, one spent from a second ago may change any moment. The lifetime is
    clamped to ``[min_ttl, max_ttl]`` and never runs past the session's expiry minus
    ``expiry_margin``.

    Staleness is safe for the guard's own spending (holds and local commits are subtracted
    from what the server reports); it only hides spending by others that bypass this guard's
    ledger, for at most ``max_ttl`` seconds.

    Attributes:
        fraction: Share of the snapshot's age it stays fresh (default 10 %).
        min_ttl: Floor in seconds (default 1 s): one read serves a burst of calls.
        max_ttl: Ceiling in seconds (default 30 s): bounds how long outside spending is unseen.
        expiry_margin: Seconds before expiry at which charges stop (default 30 s), so a call
            admitted just before expiry still has time to complete and settle.
        skew_tolerance: Seconds of clock uncertainty allowed when matching local commits to
            server update times (default 2 s: the ``Date`` header has 1 s resolution).
    """

    fraction: float = 0.1
    min_ttl: float = 1.0
    max_ttl: float = 30.0
    expiry_margin: float = 30.0
    skew_tolerance: float = 2.0

    def __post_init__(self) -> None:
        for name in ("fraction", "min_ttl", "max_ttl", "expiry_margin", "skew_tolerance"):
            check_seconds(f"Freshness.{name}", getattr(self, name), allow_zero=True)
        if self.min_ttl > self.max_ttl:
            raise InvalidArgumentError(
                "Freshness.min_ttl must not exceed max_ttl", argument="Freshness.min_ttl"
            )

    def ttl(self, snapshot: SessionSnapshot) -> float:
        """Seconds after its fetch that ``snapshot`` stays fresh."""
        age = max(0.0, snapshot.server_time - snapshot.view.updated_at)
        ttl = min(max(self.fraction * age, self.min_ttl), self.max_ttl)
        until_expiry = snapshot.expires_at.timestamp() - self.expiry_margin - snapshot.server_time
        # An expired session cannot come back: keep it for min_ttl rather than refetching.
        return min(ttl, until_expiry) if until_expiry > 0 else self.min_ttl


class _Flight:
    """One fetch in progress; callers that arrive meanwhile share its result or failure."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: SessionSnapshot | None = None
        self.error: BaseException | None = None

    def wait(self) -> SessionSnapshot:
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class SessionCache:
    """One session's newest snapshot and when it goes stale, with single-flight refills.

    Monotonic: a fetched snapshot whose server update time is older than the newest one seen
    never replaces it (a lagging replica cannot roll the budget back), unless the newest one
    claims an update time after the later response's ``Date``: its server clock ran ahead, and
    keeping it would discard every correct reading after it.

    Args:
        freshness: The lifetime rules.
        timer: The monotonic clock durations are measured on.
    """

    def __init__(self, freshness: Freshness, timer: Callable[[], float]) -> None:
        self._freshness = freshness
        self._timer = timer
        self._lock = threading.Lock()
        # (newest snapshot, monotonic time it goes stale): one tuple, read and replaced whole.
        self._entry: tuple[SessionSnapshot | None, float] = (None, float("-inf"))
        self._flight: _Flight | None = None

    def get(self) -> SessionSnapshot | None:
        """The fresh snapshot, or None when a fetch is due."""
        snapshot, until = self._entry
        if snapshot is not None and self._timer() < until:
            return snapshot
        return None

    def get_or_fill(self, fetch: Callable[[], SessionSnapshot]) -> SessionSnapshot:
        """The fresh snapshot, fetching it once however many callers miss together.

        Callers that wait on a fetch share its outcome: when it fails, they all fail with its
        error at once instead of each trying again in turn behind a hanging service.
        """
        cached = self.get()
        if cached is not None:
            return cached
        with self._lock:
            cached = self.get()
            if cached is not None:
                return cached
            flight = self._flight
            if flight is not None:
                leader = False
            else:
                leader, flight = True, _Flight()
                self._flight = flight
        if not leader:
            return flight.wait()
        try:
            flight.result = self.put(fetch())
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()

    def put(self, snapshot: SessionSnapshot) -> SessionSnapshot:
        """Install ``snapshot`` unless an already seen one is newer; return the one kept."""
        # The lifetime runs from this fetch even when an older reading keeps its place.
        until = snapshot.fetched_mono + self._freshness.ttl(snapshot)
        with self._lock:
            newest = self._entry[0]
            if newest is not None and _older(snapshot, newest):
                snapshot = newest
            self._entry = (snapshot, until)
            return snapshot

    @property
    def newest(self) -> SessionSnapshot | None:
        """The newest snapshot ever seen, fresh or not."""
        return self._entry[0]

    def fresh_until(self) -> float | None:
        """Monotonic time at which the cached snapshot goes stale, None if none is fresh."""
        snapshot, until = self._entry
        return until if snapshot is not None and self._timer() < until else None


def _older(candidate: SessionSnapshot, newest: SessionSnapshot) -> bool:
    kept, new = newest.view, candidate.view
    if new.read_at is not None and kept.updated_at > new.read_at:
        return False  # the kept reading is stamped after this later response was sent
    if kept.updated_at != new.updated_at:
        return new.updated_at < kept.updated_at
    # Same update time: keep the more conservative reading.
    return new.available > kept.available
